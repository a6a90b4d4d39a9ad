"""eeg2arm export / parity / infer --onnx: a model trained on real EEG, exported, and run in real ONNX Runtime."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.cli import cli
from eeg2arm.config import EEGConfig
from eeg2arm.ensemble import EEGEnsemble
from eeg2arm.errors import UserInputError
from eeg2arm.model import EEGModel
from export.metadata import read_onnx_metadata, set_metadata
from export.onnx_export import export_onnx, opset_of, to_onnx
from export.parity import parity_lengths, real_windows
from export.session import CPU, CUDA, OnnxPredictor
from export.step import OnnxStep

LOGITS_ATOL, PROBS_ATOL = 1e-4, 1e-5  # fp32 on CPU


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def torch_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """The reference straight from EEGModel (not from the module the graph was exported from)."""
    with torch.no_grad():
        xt = torch.from_numpy(x)
        logits = model(xt)
        return {"logits": logits.numpy(), "probs": torch.softmax(logits, -1).numpy(),
                "frame_logits": model.forward_seq(xt).numpy()}


def assert_parity(model, predictor: OnnxPredictor, x: np.ndarray) -> None:
    ref, got = torch_outputs(model, x), predictor.run(x)
    assert np.abs(got["logits"] - ref["logits"]).max() <= LOGITS_ATOL
    assert np.abs(got["probs"] - ref["probs"]).max() <= PROBS_ATOL
    assert np.abs(got["frame_logits"] - ref["frame_logits"]).max() <= LOGITS_ATOL
    assert got["frame_logits"].shape == (len(x), x.shape[3] // model.config.cnn_time_pool, model.config.n_classes)


@pytest.fixture(scope="module")
def torch_model(trained):
    return load_model_from_checkpoint(trained[0])


@pytest.fixture(scope="module")
def predictor(exported):
    return OnnxPredictor(exported[0], device="cpu")


def test_graph_has_named_dynamic_batch_and_time_axes(exported):
    proto = onnx.load(exported[0])
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert dims(proto.graph.input[0]) == ["batch", 32, 4, "time"]
    outputs = {o.name: dims(o) for o in proto.graph.output}
    assert list(outputs) == ["logits", "probs", "frame_logits"]
    assert outputs["logits"] == outputs["probs"] == ["batch", 2]
    assert outputs["frame_logits"][0] == "batch" and outputs["frame_logits"][2] == 2


def test_metadata_gives_back_the_checkpoints_config(trained, exported):
    config, meta = read_onnx_metadata(exported[0])
    _, ckpt_meta = load_model_from_checkpoint(trained[0])
    assert isinstance(config, EEGConfig) and config == ckpt_meta["config"]
    assert meta["version"] == ckpt_meta["version"]
    assert meta["example_input_shape"] == tuple(ckpt_meta["example_input_shape"])
    props = {p.key: p.value for p in onnx.load(exported[0]).metadata_props}
    assert props["eeg2arm.config"] == ckpt_meta["config"].to_json()
    assert props["eeg2arm.n_classes"] == "2"
    err = meta["parity"]["max_abs_err"]
    assert err["logits"] <= LOGITS_ATOL and err["probs"] <= PROBS_ATOL
    assert meta["parity"]["batch_sizes"] == [1, 7, 64]
    assert meta["parity"]["lengths"] == parity_lengths(config, ckpt_meta["example_input_shape"][3])


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("which_T", ["min_frames", "odd", "example", "3x example"])
def test_parity_on_real_windows(torch_model, predictor, bandpower, batch, which_T):
    model, meta = torch_model
    example_T = meta["example_input_shape"][3]
    T = {"min_frames": model.config.min_frames, "odd": 17, "example": example_T, "3x example": 3 * example_T}[which_T]
    assert_parity(model, predictor, real_windows(bandpower[0], batch, T))


def test_time_axis_is_free_of_the_export_length(torch_model, bandpower):
    """A graph exported at T=40 answers at T=17 and T=400."""
    model, _ = torch_model
    proto = to_onnx(model, (1, 32, 4, 40))
    set_metadata(proto, model.config)
    predictor = OnnxPredictor(proto.SerializeToString(), device="cpu")
    for T in (17, 400):
        assert_parity(model, predictor, real_windows(bandpower[0], 3, T))


def test_normalization_is_inside_the_graph(tmp_path, bandpower):
    from eeg2arm.train import TrainOptions, train

    X, y = bandpower
    ckpt, out = tmp_path / "norm.pt", tmp_path / "norm.onnx"
    config = EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, frame_embed=64, normalize=True)
    train(X, y, config, ckpt, TrainOptions(epochs=1, batch=32, workers=0, device="cpu"), echo=lambda s: None)
    result = export_onnx(ckpt, out, echo=lambda s: None)
    assert max(r.probs for r in result.parity) <= PROBS_ATOL

    predictor = OnnxPredictor(out, device="cpu")
    assert predictor.config.normalize
    model, _ = load_model_from_checkpoint(ckpt)
    x = real_windows(X, 7, 17)
    assert_parity(model, predictor, x)
    # a per-electrode z-score inside the graph makes it blind to a per-electrode gain and offset of the raw input
    gain = np.linspace(0.5, 4.0, 32, dtype=np.float32)[None, :, None, None]
    shifted = predictor.run(x * gain + 3.0)["probs"]
    assert np.abs(shifted - predictor.run(x)["probs"]).max() <= 1e-4


def test_infer_onnx_prints_the_same_lines_as_infer_ckpt(trained, exported, bandpower_dir):
    runner = CliRunner()
    x = str(bandpower_dir / "X.npy")
    by_ckpt = runner.invoke(cli, ["infer", "--ckpt", str(trained[0]), "--x", x, "--device", "cpu"])
    by_onnx = runner.invoke(cli, ["infer", "--onnx", str(exported[0]), "--x", x, "--device", "cpu"])
    assert by_ckpt.exit_code == 0 and by_onnx.exit_code == 0, by_onnx.output
    assert len(by_onnx.stdout.splitlines()) == 100
    assert by_onnx.stdout == by_ckpt.stdout


@pytest.mark.parametrize("args", [[], ["--ckpt", "A.pt", "--onnx", "B.onnx"]])
def test_infer_needs_exactly_one_model(bandpower_dir, args):
    result = CliRunner().invoke(cli, ["infer", *args, "--x", str(bandpower_dir / "X.npy")])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: give exactly one of --ckpt (PyTorch checkpoint) or --onnx (exported model)"


def test_infer_refuses_the_step_graph_in_one_line(exported, bandpower_dir):
    """model.step.onnx takes frames and state: infer --onnx with it was a 42-line traceback (review U7)."""
    step = exported[0].with_name("model.step.onnx")
    result = CliRunner().invoke(cli, ["infer", "--onnx", str(step), "--x", str(bandpower_dir / "X.npy"),
                                      "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"Error: {step} is the streaming step graph of an export, which takes frames "
                                     f"and state, not windows: use the batch graph model.onnx written beside it")


@pytest.mark.parametrize("shape,message", [
    ((2, 31, 4, 15), r"\(C=31, F=4\) do not match config \(C=32, F=4\)"),
    ((2, 32, 3, 15), r"\(C=32, F=3\) do not match config \(C=32, F=4\)"),
    ((2, 32, 4, 1), r"T=1 frames but the model needs at least T=2"),
    ((32, 4, 15), r"shape \(32, 4, 15\); expected \(N, C, F, T\)"),
    ((0, 32, 4, 15), r"no samples .* \(C=32, F=4, T>=2\)"),
])
def test_wrong_shape_gives_our_error(predictor, shape, message):
    with pytest.raises(UserInputError, match=message):
        predictor.run(np.zeros(shape, np.float32))


def test_non_numeric_input_is_refused(predictor):
    with pytest.raises(UserInputError, match="must hold numbers"):
        predictor.run(np.full((2, 32, 4, 15), "a"))


def test_non_finite_input_is_refused(predictor, bandpower):
    x = real_windows(bandpower[0], 2, 15)
    x[1, 3, 2, 7] = np.nan
    with pytest.raises(UserInputError, match="NaN"):
        predictor.run(x)


def test_session_reports_providers_and_warns_once(exported, caplog, capfd):
    with caplog.at_level(logging.WARNING, logger="eeg2arm"):
        auto = OnnxPredictor(exported[0])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert auto.providers == auto.session.get_providers()
    if auto.providers[0] == CUDA:
        assert warnings == []
    else:
        assert auto.providers == [CPU]
        assert [r.getMessage() for r in warnings] == ["ONNX Runtime cannot use CUDA here; running on CPU"]
    assert "Failed to load library" not in capfd.readouterr().err  # ONNX Runtime's own chatter stays muted
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2arm"):
        assert OnnxPredictor(exported[0], device="cpu").providers == [CPU]
    assert caplog.records == []


def test_parity_command_prints_the_table(trained, exported):
    result = CliRunner().invoke(cli, ["parity", "--ckpt", str(trained[0]), "--onnx", str(exported[0])])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["batch", "T", "logits_err", "probs_err", "frame_logits_err"]
    assert len(lines) == 1 + 3 * 4 + 1 and lines[-1] == "parity within --atol 0.0001"
    errors = np.array([[float(v) for v in line.split()[2:]] for line in lines[1:-1]])
    assert errors[:, 0].max() <= LOGITS_ATOL and errors[:, 1].max() <= PROBS_ATOL


def test_parity_command_refuses_an_onnx_of_another_model(tmp_path, exported, bandpower):
    from eeg2arm.train import TrainOptions, train

    X, y = bandpower
    other = tmp_path / "other.pt"
    train(X, y, EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, frame_embed=32), other,
          TrainOptions(epochs=1, workers=0, device="cpu"), echo=lambda s: None)
    result = CliRunner().invoke(cli, ["parity", "--ckpt", str(other), "--onnx", str(exported[0])])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {exported[0]} was exported from another model (its config differs from {other}'s): "
        f"export this checkpoint again"]


def test_parity_names_an_onnx_of_another_checkpoint_of_the_same_config(tmp_path, trained, exported):
    """The export records its weights' digest: a checkpoint of the same config with other weights (e.g. calibrated)
    is named as another checkpoint, not reported as a failed parity."""
    from eeg2arm.checkpoint import weights_digest

    recorded = OnnxPredictor(exported[0], device="cpu").meta["weights_sha256"]
    assert recorded == weights_digest(load_model_from_checkpoint(trained[0])[0])
    moved = torch.load(trained[0], weights_only=True)
    name = next(iter(moved["model_state"]))
    moved["model_state"][name] = moved["model_state"][name] + 1e-3
    torch.save(moved, tmp_path / "moved.pt")
    result = CliRunner().invoke(cli, ["parity", "--ckpt", str(tmp_path / "moved.pt"), "--onnx", str(exported[0])])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {exported[0]} was exported from another checkpoint (its weights differ from {tmp_path / 'moved.pt'}'s, "
        f"e.g. before a calibration): export this checkpoint again"]


def test_an_onnx_model_given_as_a_checkpoint_is_named(tmp_path, exported):
    onnx_copy = tmp_path / "model.onnx"
    onnx_copy.write_bytes(exported[0].read_bytes())
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(onnx_copy), "--out", str(tmp_path / "again.onnx")])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"Error: {onnx_copy} is an ONNX model (`eeg2arm export`), not a checkpoint: give it as --onnx (infer, stream, "
        f"parity), or give the .pt it was exported from"]


def test_export_command_writes_a_working_model(trained, tmp_path, bandpower):
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(trained[0]), "--out", str(out), "--no-check"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"wrote {out} (opset {opset_of(onnx.load(out))}, inputs x (batch, C, F, time); outputs logits, probs, "
        f"frame_logits; parity not checked)",
        f"wrote {tmp_path / 'cli.step.onnx'} (streaming step graph: frames (batch, C, F, pool) + state -> probs + state)"]
    predictor = OnnxPredictor(out, device="cpu")
    assert "parity" not in predictor.meta
    assert_parity(load_model_from_checkpoint(trained[0])[0], predictor, real_windows(bandpower[0], 5, 21))


def test_export_failing_parity_writes_nothing(trained, tmp_path):
    out = tmp_path / "strict.onnx"
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(trained[0]), "--out", str(out), "--atol", "1e-12"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 + 12 + 1  # the table, then one error line
    assert lines[-1].startswith("Error: ONNX parity failed: max abs error of ") and "above --atol 1e-12" in lines[-1]
    assert list(tmp_path.iterdir()) == []  # neither the model nor a temp file


def bad_checkpoint(kind: str, tmp_path):
    path = tmp_path / f"{kind}.pt"
    if kind == "corrupt":
        path.write_bytes(b"PK\x03\x04 this is not a torch zip file")
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("missing", "checkpoint not found"),
    ("corrupt", "is corrupt or truncated"),
    ("foreign", "is not an eeg2arm checkpoint"),
])
def test_export_bad_checkpoint(tmp_path, kind, message):
    ckpt = bad_checkpoint(kind, tmp_path)
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(ckpt), "--out", str(out)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("out_rel, extra, message", [
    ("missing/model.onnx", [], "output folder does not exist"),
    ("model.onnx", ["--opset", "5"], "--opset 5 is not supported"),
    ("model.onnx", ["--atol", "0"], "--atol must be a positive number"),
    ("model.pt", [], "must end in .onnx"),
])
def test_export_bad_arguments(trained, tmp_path, out_rel, extra, message):
    out = tmp_path / out_rel
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(trained[0]), "--out", str(out), *extra])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_export_never_overwrites_its_checkpoint(trained, tmp_path):
    ckpt = tmp_path / "model.onnx"  # a checkpoint under an ONNX name, exported onto itself
    ckpt.write_bytes(trained[0].read_bytes())
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(ckpt), "--out", str(ckpt), "--no-check"])
    assert result.exit_code == 2 and "is also an input of this export" in result.output
    assert ckpt.read_bytes() == trained[0].read_bytes() and sorted(tmp_path.iterdir()) == [ckpt]


def test_an_exporter_failure_is_one_line_and_writes_nothing(trained, tmp_path):
    """Opset 26 is valid ONNX but beyond what torch 2.13's exporter can emit for this model (Gelu)."""
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(trained[0]), "--out", str(out), "--opset", "26"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ONNX export failed") and "--opset" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_export_to_a_folder_is_refused(trained, tmp_path):
    with pytest.raises(UserInputError, match="is a folder: give a file path"):
        export_onnx(trained[0], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_foreign_onnx_is_refused(tmp_path):
    foreign = tmp_path / "foreign.onnx"
    h = onnx.helper
    graph = h.make_graph([h.make_node("Identity", ["x"], ["y"])], "foreign",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], ir_version=10), foreign)
    with pytest.raises(UserInputError, match="was not written by `eeg2arm export`"):
        read_onnx_metadata(foreign)
    with pytest.raises(UserInputError, match="was not written by `eeg2arm export`"):
        OnnxPredictor(foreign, device="cpu")


def test_step_graph_is_written_beside_with_its_own_parity(trained, exported):
    from export.step import STEP_INPUTS, STEP_OUTPUTS, step_path

    assert exported[1].step == step_path(exported[0]) == exported[0].with_name("model.step.onnx")
    proto = onnx.load(exported[1].step)
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == list(STEP_INPUTS)
    assert [o.name for o in proto.graph.output] == list(STEP_OUTPUTS)
    assert dims(proto.graph.input[0]) == ["batch", 32, 4, 2]  # one group of cnn_time_pool frames
    config, meta = read_onnx_metadata(exported[1].step)
    assert config == load_model_from_checkpoint(trained[0])[1]["config"] and meta["graph"] == "step"
    parity = meta["parity"]
    assert parity["steps"] > config.context and parity["streams"] == 3  # past the context window, batched
    assert parity["max_abs_err"]["logits"] <= LOGITS_ATOL and parity["max_abs_err"]["probs"] <= PROBS_ATOL


@pytest.mark.parametrize("n_windows", [2, 12])  # streams shorter and longer than the context window W=64
def test_onnx_step_graph_streams_like_forward_seq(trained, exported, bandpower, n_windows):
    from eeg2arm.realtime.streamer import Streamer

    model, _ = load_model_from_checkpoint(trained[0])
    stream = np.concatenate(list(bandpower[0][45:45 + n_windows]), axis=-1)  # real frames (C, F, T)
    with torch.no_grad():
        expected = torch.softmax(model.forward_seq(torch.from_numpy(stream[None])), -1)[0].numpy()  # (T', K)
    step = OnnxStep(exported[1].step, device="cpu")
    streamer = Streamer(step)
    got = np.stack([r.probs for t in range(stream.shape[-1]) for r in streamer.push(stream[..., t])])
    assert got.shape == expected.shape and (len(got) > model.config.context) == (n_windows == 12)
    assert np.abs(got - expected).max() <= PROBS_ATOL
    assert [s.shape for s in streamer.state] == [s.shape for s in step.initial_state()]  # state never grows


def test_no_stream_writes_only_the_batch_graph(trained, tmp_path):
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(trained[0]), "--out", str(out), "--no-check",
                                      "--no-stream"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_export_to_an_unwritable_folder_is_refused_before_exporting(trained, tmp_path):
    import os

    if os.geteuid() == 0:  # root writes through permission bits: /sys refuses new files to everyone
        folder = Path("/sys")
    else:
        folder = tmp_path / "read_only"
        folder.mkdir(mode=0o500)
    result = CliRunner().invoke(cli, ["export", "--ckpt", str(trained[0]), "--out", str(folder / "model.onnx")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"Error: output folder {folder} is not writable (Permission denied): choose another --out"]
    assert not (folder / "model.onnx").exists()


def trained_by_the_cli(tmp_path: Path, bandpower_dir: Path, *flags: str, name: str = "model.pt"
                       ) -> tuple[Path, EEGModel | EEGEnsemble]:
    """A checkpoint `eeg2arm train` made in 2 epochs on the real band power with these extra flags, and its model."""
    ckpt = tmp_path / name
    result = CliRunner().invoke(cli, ["train", "--x", str(bandpower_dir / "X.npy"), "--y", str(bandpower_dir / "y.npy"),
                                      "--save", str(ckpt), "--classes", "2", "--elec", "32", "--bands", "4",
                                      "--frame-embed", "32", "--epochs", "2", "--workers", "0", "--device", "cpu",
                                      *flags])
    assert result.exit_code == 0, result.output
    return ckpt, load_model_from_checkpoint(ckpt)[0]


def assert_exports_and_streams_alike(ckpt: Path, model: EEGModel, tmp_path: Path, bandpower) -> list:
    """Export with the batch graph's parity on real windows, then stream real frames through the PyTorch streamer
    and the ONNX step graph: every step equals forward_seq. Returns the two streamers (their state, to inspect)."""
    from eeg2arm.realtime.streamer import Streamer

    exported = export_onnx(ckpt, tmp_path / "model.onnx", echo=lambda s: None)
    predictor = OnnxPredictor(tmp_path / "model.onnx", device="cpu")
    assert predictor.config == model.config
    assert_parity(model, predictor, real_windows(bandpower[0], 7, 17))
    stream = np.concatenate(list(bandpower[0][45:48]), axis=-1)  # real frames (C, F, T)
    with torch.no_grad():
        expected = torch.softmax(model.forward_seq(torch.from_numpy(stream[None])), -1)[0].numpy()  # (T', K)
    streamers = [Streamer.from_model(model), Streamer(OnnxStep(exported.step, device="cpu"))]
    for streamer in streamers:
        got = np.stack([r.probs for t in range(stream.shape[-1]) for r in streamer.push(stream[..., t])])
        assert got.shape == expected.shape and np.abs(got - expected).max() <= PROBS_ATOL
    return streamers


@pytest.mark.parametrize("n", [1, 9])  # fewer frames than a pooled group; more than the stem's history + a group
def test_a_readout_trains_from_the_cli_and_exports_and_streams_with_parity(n, tmp_path, bandpower, bandpower_dir):
    ckpt, model = trained_by_the_cli(tmp_path, bandpower_dir, "--lr", "3e-3", "--readout", str(n))
    assert model.config.readout_frames == n and model.readout.weight.shape == (2, 32 * 4, n)
    assert model.readout.weight.abs().max() > 0  # trained away from its zero start
    for streamer in assert_exports_and_streams_alike(ckpt, model, tmp_path, bandpower):
        assert [s.shape for s in streamer.state][0][-1] == max(2, n - 2)  # conv1 keeps what the readout needs


@pytest.mark.parametrize("scale", ["shared", "column"])
def test_a_fitted_readout_exports_and_streams_with_parity(tmp_path, bandpower, bandpower_dir, scale):
    """The motor-imagery recipes' training: the readout fitted as a regression, inputs on one shared sd (within a
    subject) or each column of the regression standardized (across subjects), the network off (--epochs 0): the
    regression's weights, the column scaler folded into them, and the input scale are ordinary weights and buffers."""
    ckpt, model = trained_by_the_cli(tmp_path, bandpower_dir, "--readout", "5", "--fit-readout", "--input-scale",
                                     scale, "--epochs", "0", "--val-split", "0", "--select", "last")
    assert not model.head.weight.any() and model.readout.weight.abs().max() > 0
    one_sd = bool(torch.all(model.input_std == model.input_std.flatten()[0]))
    assert one_sd == (scale == "shared")  # column keeps each feature's own sd for the network's input
    assert torch.load(ckpt, weights_only=True)["metrics"]["train_options"]["input_scale"] == scale
    assert_exports_and_streams_alike(ckpt, model, tmp_path, bandpower)


def test_a_linear_stem_trains_from_the_cli_and_exports_with_parity(tmp_path, bandpower, bandpower_dir):
    ckpt, model = trained_by_the_cli(tmp_path, bandpower_dir, "--linear-stem")
    assert model.config.linear_stem and all(isinstance(b.activation, torch.nn.Identity) for b in model.stem)
    assert_exports_and_streams_alike(ckpt, model, tmp_path, bandpower)


def test_an_ensemble_trains_from_the_cli_and_exports_and_streams_as_one_model(tmp_path, bandpower, bandpower_dir):
    ckpt, model = trained_by_the_cli(tmp_path, bandpower_dir, "--lr", "3e-3", "--readout", "4", "--ensemble", "3")
    assert isinstance(model, EEGEnsemble) and model.config.ensemble == 3 and len(model.members) == 3
    _, alone = trained_by_the_cli(tmp_path, bandpower_dir, "--lr", "3e-3", "--readout", "4", "--seed", "1338",
                                  name="alone.pt")
    second = model.members[1].state_dict()  # member i is `train --seed SEED+i` as it trains alone
    assert all(torch.equal(second[k], v) for k, v in alone.state_dict().items())
    assert not torch.equal(model.members[0].head.weight, model.members[1].head.weight)
    metrics = load_model_from_checkpoint(ckpt)[1]["metrics"]
    assert [m["train_options"]["seed"] for m in metrics["members"]] == [1337, 1338, 1339]
    x = torch.from_numpy(bandpower[0][:6])
    with torch.no_grad():  # one model: the members' logits averaged
        assert torch.allclose(model(x), torch.stack([member(x) for member in model.members]).mean(0))
    for streamer in assert_exports_and_streams_alike(ckpt, model, tmp_path, bandpower):
        conv1, conv2, keys, values, _ = (tuple(s.shape) for s in streamer.state)  # the members side by side
        assert (conv1[1], conv2[1], keys[0], values[0]) == (3 * 32, 3 * 32 * 4, 3 * 2, 3 * 2)
