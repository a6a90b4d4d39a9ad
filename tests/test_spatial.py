"""Learned spatial maps in a recipe: filter-bank CSP fitted by `prepare` on the trials' labels, and Euclidean
alignment of each subject from its own signal; online exactly as offline, refused where they cannot apply."""
from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pytest
import requests
from click.testing import CliRunner

from eeg2arm.cli import cli
from eeg2arm.errors import UserInputError
from eeg2arm.fitting import load_alignment
from eeg2arm.realtime.live import open_features
from eeg2arm.realtime.online import OnlineFeatures, model_recipe
from eeg2arm.recipe import CausalChain
from eeg2arm.spatial import Alignment, SignalMoments
from serving.local_server import serve

from conftest import push_in_chunks
from test_online import MONTAGE, config_of, prepare

MOTOR = ["--channels", "FC3,FC1,C3,C1,Cz,C2,C4,CP3,CP4", "--montage", MONTAGE, "--bandpass", "8-30",
         "--bands", "mu:8-13,beta:13-30"]
CUES = ["--event", "T1=left", "--event", "T2=right", "--tmin", 0, "--tmax", 4]
LEARNED = {"csp": ["--spatial", "csp:2"], "align": ["--align", "euclidean"],
           "csp+align": ["--spatial", "csp:3", "--align", "euclidean"],
           "tangent+align": ["--spatial", "csp-tangent:3", "--align", "euclidean"]}


def signal_of(path: Path, config) -> np.ndarray:
    return mne.io.read_raw(path, verbose="error").get_data(picks=list(config.stream_channels), units="uV")


@pytest.mark.parametrize("name", LEARNED)
def test_learned_recipes_online_equal_prepare(name, raw_dir, tmp_path):
    """prepare fits the filters and the recording's alignment; a live pass over the recording with that alignment
    gives every trial's frames (cues lie on the 0.1 s frame grid)."""
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    X, meta = prepare([edf], tmp_path / "p", *CUES, "--frame-step", 0.1, *MOTOR, *LEARNED[name])
    config = config_of(tmp_path / "p" / "meta.json")
    if "csp" in name:
        k = 3 if name == "csp+align" else 2
        assert config.channel_names == tuple(f"csp{i + 1}" for i in range(k)) and config.band_names == ("mu", "beta")
        assert np.asarray(config.csp_filters).shape == (2, k, 9) and len(config.sensor_channels) == 9
    if "tangent" in name:  # the 6 pairs of 3 components
        assert config.channel_names == ("csp1", "csp1*csp2", "csp1*csp3", "csp2", "csp2*csp3", "csp3")
        assert np.asarray(config.csp_filters).shape == (2, 3, 9) and meta["feature"][0].startswith("upper triangle")
    recipe = model_recipe(config)
    align = load_alignment(tmp_path / "p" / "meta.json", recipe) if "align" in name else None
    online = OnlineFeatures(recipe, align)
    frames, held = push_in_chunks(online, signal_of(edf, config), seed=len(name))
    starts = np.array([round(onset * config.sfreq) for _, onset in meta["trial_sources"]])
    online_trials = np.stack([frames[..., s // 16: s // 16 + X.shape[-1]] for s in starts])
    assert online_trials.shape == X.shape and np.isfinite(X).all() and X.std() > 0.05
    assert np.abs(online_trials - X).max() <= 1e-4
    assert held < online.w + 200


def test_dropped_trials_are_one_warning_when_filters_are_fitted_too(raw_dir, tmp_path):
    """Fitting the CSP filters cuts the trials once more: it said the drop a second time (stop 26's walkthrough)."""
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    result = CliRunner().invoke(cli, ["prepare", str(edf), "--out", str(tmp_path / "p"), *map(str, CUES[:-1]), "40",
                                      *MOTOR, *LEARNED["csp"]])
    assert result.exit_code == 0, result.output
    assert result.output.count("trials dropped (outside the data") == 1, result.output


def test_csp_beyond_two_classes_fits_each_class_against_the_rest(raw_dir, tmp_path):
    X, meta = prepare([raw_dir / "eegmmidb" / "S001" / "S001R04.edf"], tmp_path / "p", "--event", "T0=rest",
                      "--event", "T1=left", "--event", "T2=right", "--tmin", 0, "--tmax", 4, *MOTOR,
                      "--spatial", "csp:2")
    assert X.shape[1:3] == (6, 2) and meta["channels"] == [f"csp{i}" for i in range(1, 7)]
    filters = np.asarray(meta["csp_filters"])  # (bands, 3 classes x 2, channels): each pair its own class
    assert filters.shape == (2, 6, 9) and np.linalg.matrix_rank(filters[0]) == 6


def test_the_stream_estimates_the_alignment_from_its_first_seconds_as_prepare_does(raw_dir, tmp_path):
    """--align-seconds 60 online = `prepare --like` on the recording's first 60 s: the same alignment, so the same
    frames, from the first sample on."""
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    prepare([edf], tmp_path / "train", *CUES, "--frame-step", 0.1, *MOTOR, *LEARNED["csp+align"])
    raw = mne.io.read_raw(edf, preload=True, verbose="error")
    first = tmp_path / "first60_raw.fif"
    raw.copy().crop(0, 60 - 1 / raw.info["sfreq"]).save(first, verbose="error")
    X, meta = prepare([first], tmp_path / "first", "--like", tmp_path / "train" / "meta.json")
    config = config_of(tmp_path / "train" / "meta.json")
    recipe, signal = model_recipe(config), signal_of(edf, config)
    estimated, _ = push_in_chunks(OnlineFeatures.for_model(config, align_seconds=60), signal)
    stored, _ = push_in_chunks(OnlineFeatures(recipe, load_alignment(tmp_path / "first" / "meta.json", recipe)),
                               signal, seed=1)
    assert estimated.shape == stored.shape and np.abs(estimated - stored).max() <= 1e-4
    starts = [round(onset * config.sfreq) for _, onset in meta["trial_sources"]]
    assert len(starts) >= 6  # the left and right cues of the first minute
    assert np.abs(np.stack([estimated[..., s // 16: s // 16 + X.shape[-1]] for s in starts]) - X).max() <= 1e-4


def test_a_new_subject_is_aligned_from_its_own_signal(raw_dir, tmp_path):
    """Trained on S001 and S002 (an alignment per recording), S003 prepared --like them gets its own: its aligned
    signal has the identity as covariance (up to the shrinkage of its smallest eigenvalues); S001's would not."""
    files = [raw_dir / "eegmmidb" / s / f"{s}R04.edf" for s in ("S001", "S002")]
    _, meta = prepare(files, tmp_path / "train", *CUES, *MOTOR, "--align", "euclidean")
    assert sorted(meta["alignment"]["recordings"]) == [str(f) for f in files]
    new = raw_dir / "eegmmidb" / "S003" / "S003R04.edf"
    _, like = prepare([new], tmp_path / "new", "--like", tmp_path / "train" / "meta.json")
    assert list(like["alignment"]["recordings"]) == [str(new)]
    recipe = model_recipe(config_of(tmp_path / "train" / "meta.json"))
    signal = signal_of(new, config_of(tmp_path / "train" / "meta.json"))

    def covariance(align: Alignment) -> np.ndarray:
        moments = SignalMoments(9)
        moments.add(CausalChain(recipe, align).front(signal))
        return moments.total / moments.count

    own = covariance(load_alignment(tmp_path / "new" / "meta.json", recipe))
    assert np.abs(own - np.eye(9)).max() < 0.1
    other = covariance(Alignment(matrix=np.asarray(meta["alignment"]["recordings"][str(files[0])])))
    assert np.abs(other - np.eye(9)).max() > 0.5, np.abs(other - np.eye(9)).max()


def run(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_supervised_recipe_without_labels_is_one_line_and_writes_nothing(raw_dir, tmp_path):
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    result = run("prepare", edf, "--out", tmp_path / "p", "--event", "T1=left", "--tmin", 0, "--tmax", 4, *MOTOR,
                 "--spatial", "csp:2")
    assert result.exit_code == 2 and not (tmp_path / "p").exists()
    assert result.output.startswith("Error: --spatial csp learns its filters from labelled trials of at least two "
                                    "classes") and len(result.output.splitlines()) == 1
    result = run("prepare", edf, "--out", tmp_path / "p", *CUES, *MOTOR, "--spatial", "csp:10")
    assert result.exit_code == 2 and "more filters than the 9 channels" in result.output
    result = run("prepare", edf, "--out", tmp_path / "p", *CUES, *MOTOR, "--spatial", "csp-tangent:12")
    assert result.exit_code == 2 and "csp-tangent:12 asks for more filters than the 9 channels: use at most " \
        "csp-tangent:9" in result.output and not (tmp_path / "p").exists()
    result = run("prepare", edf, "--out", tmp_path / "p", *CUES, *MOTOR, "--spatial", "pca:2")
    assert result.exit_code == 2 and "must be csp:K" in result.output
    result = run("prepare", edf, "--out", tmp_path / "p", *CUES, "--features", "slow", "--spatial", "csp:2")
    assert result.exit_code == 2 and "use it with --features bandpower" in result.output


def test_what_cannot_match_is_refused(raw_dir, tmp_path):
    files = [raw_dir / "eegmmidb" / s / f"{s}R04.edf" for s in ("S001", "S002")]
    prepare(files, tmp_path / "train", *CUES, *MOTOR, *LEARNED["csp+align"])
    meta = tmp_path / "train" / "meta.json"
    result = run("prepare", files[0], "--out", tmp_path / "x", "--like", meta, "--spatial", "csp:2")
    assert result.exit_code == 2 and "drop --spatial" in result.output
    raw = mne.io.read_raw(files[0], preload=True, verbose="error").drop_channels(["C3.."])
    lacking = tmp_path / "lacking_raw.fif"
    raw.save(lacking, verbose="error")
    result = run("prepare", lacking, "--out", tmp_path / "x", "--like", meta)
    assert result.exit_code == 2 and "has no channel C3.." in result.output and not (tmp_path / "x").exists()
    recipe = model_recipe(config_of(meta))
    with pytest.raises(UserInputError, match="holds 2 alignments"):
        load_alignment(meta, recipe)  # two recordings, two alignments: which one?
    prepare([raw_dir / "eegmmidb" / "S001" / "S001R04.edf"], tmp_path / "other", *CUES, "--channels", "C3,C4",
            "--montage", MONTAGE, "--align", "euclidean")
    with pytest.raises(UserInputError, match="was made for channels C3, C4"):
        load_alignment(tmp_path / "other" / "meta.json", recipe)
    with pytest.raises(UserInputError, match="give the subject's alignment"):
        OnlineFeatures(recipe)
    unaligned = config_of(tmp_path / "other" / "meta.json").__class__.from_dict(
        {**config_of(tmp_path / "other" / "meta.json").to_dict(), "align": None})
    with pytest.raises(UserInputError, match="does not align subjects"):
        OnlineFeatures.for_model(unaligned, align_seconds=10)
    with pytest.raises(UserInputError, match="does not align subjects: drop --align-from"):  # was ignored
        open_features(unaligned, align_from=tmp_path / "other" / "meta.json")


@pytest.mark.parametrize("name", ["csp+align", "tangent+align"])
def test_a_csp_aligned_model_streams_alike_in_torch_onnx_and_the_server(name, raw_dir, tmp_path):
    """The filters travel meta.json -> config -> checkpoint -> ONNX metadata; the subject's alignment comes from
    `prepare --like` on its recording (--align-from), and every backend decides alike."""
    from eeg2arm.config import EEGConfig
    from eeg2arm.train import TrainOptions, train
    from export.metadata import read_onnx_metadata
    from export.onnx_export import export_onnx

    runs = sorted((raw_dir / "eegmmidb" / "S001").glob("*.edf"))
    X, _ = prepare(runs[:2], tmp_path / "p", *CUES, *MOTOR, *LEARNED[name], "--group-by", "subject")
    prepare(runs[2:], tmp_path / "new", "--like", tmp_path / "p" / "meta.json")
    config = EEGConfig.from_dict({**config_of(tmp_path / "p" / "meta.json").to_dict(), "frame_embed": 32,
                                  "n_heads": 2, "spatial_filters": 8})
    ckpt = tmp_path / "ckpt.pt"
    train(X, np.load(tmp_path / "p" / "y.npy"), config, ckpt, TrainOptions(epochs=1, batch=16, workers=0,
                                                                            device="cpu"), echo=lambda s: None)
    align = ["--align-from", tmp_path / "new" / "meta.json"]

    def streamed(*backend) -> tuple[list[str], np.ndarray]:
        """(the printed decisions, every decided frame's probabilities from --out-jsonl) of one backend."""
        out = tmp_path / f"{len(list(tmp_path.glob('*.jsonl')))}.jsonl"
        result = run("stream", "--raw", runs[2], *backend, "--fast", *align, "--out-jsonl", out)
        assert result.exit_code == 0, result.output
        return ([line for line in result.output.splitlines() if line.startswith("[t=")],
                np.array([json.loads(line)["probs"] for line in out.read_text().splitlines()]))

    decisions, probs = streamed("--ckpt", ckpt, "--device", "cpu")
    assert len(probs) > 200 and probs.std(axis=0).min() > 1e-3  # the frames move the model
    export_onnx(ckpt, tmp_path / "model.onnx", x_path=tmp_path / "p" / "X.npy", echo=lambda s: None)
    exported, _ = read_onnx_metadata(tmp_path / "model.onnx")
    assert exported == config and exported.csp_filters == config.csp_filters and exported.align == "euclidean"
    onnx_decisions, onnx_probs = streamed("--onnx", tmp_path / "model.onnx", "--device", "cpu")
    with serve({"EEG2ARM_ONNX": str(tmp_path / "model.onnx")}, tmp_path / "serve.log") as url:
        recipe = requests.get(f"{url}/metadata", timeout=10).json()["recipe"]
        served_decisions, served_probs = streamed("--url", url)
    assert recipe["spatial"] == LEARNED[name][1] and recipe["align"] == "euclidean"
    assert onnx_decisions == decisions and served_decisions == decisions
    assert np.abs(onnx_probs - probs).max() <= 1e-4 and np.abs(served_probs - probs).max() <= 1e-4
    estimated = run("stream", "--raw", runs[2], "--ckpt", ckpt, "--fast", "--device", "cpu", "--align-seconds", 30)
    assert estimated.exit_code == 0, estimated.output
    assert estimated.output.startswith("aligning: the subject's alignment is estimated from the first 30 s")
    assert "aligned on the first 30 s of signal" in estimated.output and "not sent" in estimated.output
    jsonl = tmp_path / "decisions.jsonl"  # the first 30 s were decided to carry the state, but never sent
    sent = run("stream", "--raw", runs[2], "--ckpt", ckpt, "--fast", "--device", "cpu", "--align-seconds", 30,
               "--out-jsonl", jsonl)
    times = [json.loads(line)["t"] for line in jsonl.read_text().splitlines()]
    assert sent.exit_code == 0 and times[0] > 30 and len(times) == int(sent.output.split("decisions=")[1].split()[0])
    both = run("stream", "--raw", runs[2], "--ckpt", ckpt, "--fast", "--align-seconds", 30, *align)
    assert both.exit_code == 2 and "not both" in both.output
    for flags, message in [
        (("--align-seconds", 30, "--duration", 20), "--duration 20 s ends before the first decision"),
        (("--align-seconds", 1000), "its signal ended before the 1000 s the subject's alignment"),
        (("--align-from", tmp_path / "nosuch.json"), "nosuch.json: no such file"),
    ]:
        refused = run("stream", "--raw", runs[2], "--ckpt", ckpt, "--fast", "--device", "cpu", *flags)
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert "aligning:" not in refused.output or flags[1] == 1000  # no line but the error before a signal


def test_mean_alignment_takes_the_electrode_offsets_out_of_slow_potentials(raw_dir, tmp_path):
    """FingerMovements' absolute slow levels differ by tens of µV between electrodes (offsets that drift over a
    session); --align mean subtracts each channel's mean over the recording (MNE's average reference of every
    epoch's samples), the same online for every epoch."""
    epo = raw_dir / "FingerMovements" / "FingerMovements_TRAIN-epo.fif"
    slow = ["--event", "left", "--event", "right", "--reference", "average", "--features", "slow",
            "--frame-window", "0.05", "--frame-step", "0.05"]
    raw_X, _ = prepare([epo], tmp_path / "raw", *slow)
    X, meta = prepare([epo], tmp_path / "mean", *slow, "--align", "mean")
    config = config_of(tmp_path / "mean" / "meta.json")
    recipe = model_recipe(config)
    epochs = mne.read_epochs(epo, verbose="error")
    means = epochs.copy().set_eeg_reference("average", verbose="error").get_data(units="uV").mean(axis=(0, 2))
    offsets = np.asarray(meta["alignment"]["recordings"][str(epo)])
    assert meta["alignment"]["method"] == "mean" and np.abs(offsets - means).max() < 1e-3
    assert np.abs(offsets).max() > 20  # µV: electrode offsets
    assert np.abs(raw_X - X - offsets[None, :, None, None]).max() < 1e-3  # a low-pass passes a constant as it is
    data = epochs.get_data(picks=list(config.stream_channels), units="uV")
    for i in (0, 200):
        frames, _ = push_in_chunks(OnlineFeatures(recipe, load_alignment(tmp_path / "mean" / "meta.json", recipe)),
                                   data[i], seed=i)
        assert np.abs(frames - X[i]).max() <= 1e-4


def test_the_decoder_fits_the_same_filters_and_decides_as_the_commands(raw_dir, tmp_path):
    """eeg2arm.Decoder on the recordings fits the filters `prepare` fits and gives the model `train` gives; its
    predictions of a new run are those of the checkpoint on that run prepared --like."""
    import torch

    from eeg2arm import Decoder
    from eeg2arm.infer import predict_logits
    from eeg2arm.checkpoint import load_model_from_checkpoint

    runs = sorted((raw_dir / "eegmmidb" / "S001").glob("*.edf"))
    recipe = {"prepare": [str(a) for a in (*CUES, *MOTOR, *LEARNED["csp+align"])],
              "train": ["--frame-embed", "16", "--epochs", "2", "--cnn-time-pool", "1", "--workers", "0",
                        "--device", "cpu"]}
    X, meta = prepare(runs[:2], tmp_path / "p", *recipe["prepare"])
    result = run("train", "--x", tmp_path / "p" / "X.npy", "--y", tmp_path / "p" / "y.npy", "--save",
                 tmp_path / "cli.pt", "--no-groups", "--classes", 2, "--elec", 3, "--bands", 2, *recipe["train"])
    assert result.exit_code == 0, result.output
    decoder = Decoder(recipe).fit([mne.io.read_raw(f, verbose="error") for f in runs[:2]])
    assert np.array_equal(np.asarray(decoder.meta_["csp_filters"]), np.asarray(meta["csp_filters"]))
    decoder.save(tmp_path / "decoder.pt")
    ours, theirs = (torch.load(tmp_path / name, weights_only=True) for name in ("decoder.pt", "cli.pt"))
    assert all(torch.equal(ours["model_state"][k], theirs["model_state"][k]) for k in ours["model_state"])
    new, _ = prepare(runs[2:], tmp_path / "new", "--like", tmp_path / "p" / "meta.json")
    model, _ = load_model_from_checkpoint(tmp_path / "cli.pt")
    expected = decoder.classes_[predict_logits(model, new).argmax(-1)]
    assert np.array_equal(decoder.predict([mne.io.read_raw(runs[2], verbose="error")]), expected)


def test_a_csp_aligned_model_decides_a_live_lsl_stream_as_its_recording(raw_dir, tmp_path):
    """The learned recipe on a live stream (an outlet sending the recording at real speed) with the subject's
    stored alignment: the decisions of the file's replay."""
    from lsl_amp import Amp

    from eeg2arm.config import EEGConfig
    from eeg2arm.train import TrainOptions, train

    runs = sorted((raw_dir / "eegmmidb" / "S001").glob("*.edf"))
    X, _ = prepare(runs[:2], tmp_path / "p", *CUES, *MOTOR, *LEARNED["csp+align"])
    prepare(runs[2:], tmp_path / "new", "--like", tmp_path / "p" / "meta.json")
    config = EEGConfig.from_dict({**config_of(tmp_path / "p" / "meta.json").to_dict(), "frame_embed": 16,
                                  "n_heads": 2})
    train(X, np.load(tmp_path / "p" / "y.npy"), config, tmp_path / "m.pt", TrainOptions(epochs=2, batch=16,
                                                                                       workers=0, device="cpu"),
          echo=lambda s: None)
    flags = ["--ckpt", tmp_path / "m.pt", "--align-from", tmp_path / "new" / "meta.json", "--duration", 5,
             "--out-jsonl", "-", "--device", "cpu"]
    replay = run("stream", "--raw", runs[2], "--fast", *flags)
    name = f"eeg2arm-csp-{np.random.default_rng().integers(1 << 30)}"
    with Amp(mne.io.read_raw(runs[2], preload=True, verbose="error"), name):
        live = run("stream", "--lsl", name, "--lsl-timeout", 20, *flags)
    assert replay.exit_code == 0 and live.exit_code == 0, live.output
    rows = [[json.loads(line) for line in r.output.splitlines() if line.startswith("{")] for r in (replay, live)]
    assert len(rows[0]) == len(rows[1]) >= 9
    assert [r["decision"] for r in rows[0]] == [r["decision"] for r in rows[1]]
    assert np.abs(np.array([r["probs"] for r in rows[0]]) - [r["probs"] for r in rows[1]]).max() < 1e-4


def test_a_dead_electrode_under_learned_filters_is_named_with_its_weight(raw_dir, tmp_path):
    """A recording with C3 flat, streamed through a CSP + alignment model: the repair keeps it deciding, and a
    warning names C3 with its share of the learned filters' weight (as filter_shares computes it from the model);
    the clean recording prints no such warning."""
    from eeg2arm.checkpoint import load_model_from_checkpoint
    from eeg2arm.realtime.health import ElectrodeRepair, filter_shares
    from eeg2arm.train import TrainOptions, train

    runs = sorted((raw_dir / "eegmmidb" / "S001").glob("*.edf"))
    X, _ = prepare(runs[:2], tmp_path / "p", *CUES, *MOTOR, *LEARNED["csp+align"])
    prepare(runs[2:], tmp_path / "new", "--like", tmp_path / "p" / "meta.json")
    config = config_of(tmp_path / "p" / "meta.json")
    config = type(config).from_dict({**config.to_dict(), "frame_embed": 16, "n_heads": 2})
    train(X, np.load(tmp_path / "p" / "y.npy"), config, tmp_path / "m.pt",
          TrainOptions(epochs=1, batch=16, workers=0, device="cpu"), echo=lambda s: None)
    raw = mne.io.read_raw(runs[2], preload=True, verbose="error")
    c3 = next(name for name in raw.ch_names if name.strip(".").upper() == "C3")
    raw.crop(0, 20).save(tmp_path / "clean_raw.fif", verbose="error")
    raw._data[raw.ch_names.index(c3)] = 0.0
    raw.save(tmp_path / "dead_raw.fif", verbose="error")
    flags = ["--ckpt", tmp_path / "m.pt", "--align-from", tmp_path / "new" / "meta.json", "--fast", "--device", "cpu"]
    dead, clean = (run("stream", "--raw", tmp_path / f"{kind}_raw.fif", *flags) for kind in ("dead", "clean"))
    assert dead.exit_code == 0 and clean.exit_code == 0, dead.output + clean.output
    model_config = load_model_from_checkpoint(tmp_path / "m.pt")[1]["config"]
    recipe = model_recipe(model_config)
    shares = filter_shares(recipe, load_alignment(tmp_path / "new" / "meta.json", recipe))
    assert sum(shares.values()) == pytest.approx(1.0) and shares[c3] > 1 / len(shares)
    assert f"bad channels: {c3} (flat) (replaced from the others)" in dead.output
    warning = (f"warning: {c3} carry {shares[c3]:.0%} of the weight of the recipe's learned spatial filters "
               f"({1 / len(shares):.0%} if spread evenly)")
    assert dead.output.count(warning) == 1
    assert "learned spatial filters" not in clean.output and " decisions=0 " not in clean.output
    # aligned from the stream's first 10 s: the warning waits for the alignment, and weighs the filters with it
    live = run("stream", "--raw", tmp_path / "dead_raw.fif", *flags[:2], "--align-seconds", 10, *flags[4:])
    assert live.exit_code == 0, live.output
    lines = live.output.splitlines()
    aligned = next(i for i, line in enumerate(lines) if line.startswith("aligned on the first 10 s of signal;"))
    assert [i for i, line in enumerate(lines) if "learned spatial filters" in line] == [aligned + 1]
    signal = signal_of(tmp_path / "dead_raw.fif", model_config)[:, :10 * 160]
    repaired = ElectrodeRepair(recipe.input_channels, 160.0, recipe.montage).push(signal)
    moments = SignalMoments(len(recipe.channels))
    moments.add(CausalChain(recipe).front(repaired))
    estimated = filter_shares(recipe, moments.alignment(recipe.align, "the first 10 s"))[c3]
    assert f"warning: {c3} carry {estimated:.0%} of the weight" in lines[aligned + 1]


def test_filter_shares_follow_the_weights_and_ignore_recipes_without_learned_filters():
    from eeg2arm.realtime.health import filter_shares
    from eeg2arm.recipe import Recipe

    names = ("C3", "Cz", "C4")
    kwargs = {"sfreq": 160.0, "input_channels": names, "channels": names, "bands": (("mu", 8.0, 13.0),)}
    one = Recipe(**kwargs, spatial="csp:1", csp_filters=(((0.0, 0.0, 2.0),),))
    assert filter_shares(one, None) == {"C3": 0.0, "Cz": 0.0, "C4": 1.0}
    two = Recipe(**kwargs, spatial="csp:2", csp_filters=(((1.0, 0.0, 0.0), (1.0, 1.0, 0.0)),))
    assert filter_shares(two, None) == pytest.approx({"C3": 0.75, "Cz": 0.25, "C4": 0.0})  # (1 + 1/2) / 2, (1/2) / 2
    swap = Alignment(matrix=np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))  # component reads C4
    assert filter_shares(one, swap) == {"C3": 1.0, "Cz": 0.0, "C4": 0.0}
    assert filter_shares(one, Alignment(offset=np.ones(3))) == filter_shares(one, None)  # an offset weighs nothing
    averaged = Recipe(**kwargs, reference="average", spatial="csp:1", csp_filters=(((0.0, 0.0, 2.0),),))
    assert filter_shares(averaged, None) == pytest.approx({"C3": 1 / 6, "Cz": 1 / 6, "C4": 2 / 3})  # 2(e3 - mean)
    assert filter_shares(Recipe(**kwargs), None) is None


def test_tangent_vectors_are_the_matrix_logarithm_of_each_frames_covariance():
    """The upper triangle of log(S) (scipy's logm), off-diagonals times sqrt(2), so that the vector's norm is the
    Riemannian distance of S to the identity; a frame with a dropout is NaN, its neighbours are not."""
    from scipy.linalg import logm

    from eeg2arm.spatial import tangent_vectors

    rng = np.random.default_rng(0)
    frames = rng.normal(size=(2, 3, 4, 40)) * np.array([1.0, 2.0, 0.5])[:, None, None]  # (N, K, T, w)
    frames[0, 1] += 0.8 * frames[0, 0]  # correlated components: S far from diagonal
    frames[1, 2, 3, 7] = np.nan
    vectors = tangent_vectors(frames)  # (N, 6, T)
    assert vectors.shape == (2, 6, 4)
    S = frames[0, :, 2] @ frames[0, :, 2].T / 40  # (K, K): trial 0, frame 2
    log_S = logm(S).real
    rows, cols = np.triu_indices(3)
    assert np.allclose(vectors[0, :, 2], log_S[rows, cols] * np.where(rows == cols, 1, np.sqrt(2)), atol=1e-10)
    assert np.isclose(np.linalg.norm(vectors[0, :, 2]), np.linalg.norm(log_S), atol=1e-10)
    assert abs(vectors[0, 1, 2]) > 0.3  # the correlation is carried off the diagonal
    assert np.isnan(vectors[1, :, 3]).all() and np.isfinite(vectors[1, :, :3]).all() and np.isfinite(vectors[0]).all()


def test_whitened_filters_give_components_of_identity_mean_covariance():
    """The tangent space's reference: over the trials they were whitened on, the components' mean covariance is the
    identity in every band; the unwhitened filters' is not."""
    from eeg2arm.spatial import component_names, fit_csp, whitened

    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(5, 5))
    bank = np.einsum("cd,nfds->nfcs", mixing, rng.normal(size=(30, 2, 5, 200)))  # (N, F, C, n)
    bank[:15, 0, 0] *= 3  # class 1 stronger on one source in the first band
    y = np.repeat([0, 1], 15)
    filters = fit_csp(bank, y, "csp-tangent:2")  # (F, 2, C)
    for W in (filters, whitened(filters, bank)):
        z = np.einsum("fkc,nfcs->fnks", W, bank)
        covariance = np.einsum("fnks,fnls->fkl", z, z) / (30 * 200)
        identity = np.allclose(covariance, np.eye(2), atol=0.01)  # up to inverse_sqrt's shrinkage (1e-3)
        assert identity == (W is not filters)
    assert component_names(3, tangent=True) == ("csp1", "csp1*csp2", "csp1*csp3", "csp2", "csp2*csp3", "csp3")


def test_a_spatial_method_this_version_does_not_know_asks_for_an_update():
    """A model made by a later eeg2arm (a spatial method unknown here) is refused as unknown features are."""
    from eeg2arm.recipe import Recipe

    names = ("C3", "C4")
    fields = {"sfreq": 160.0, "channel_names": ("csp1",), "sensor_channels": names, "band_names": ("mu",),
              "band_edges": ((8.0, 13.0),), "frame_window": 0.5, "frame_step": 0.25,
              "csp_filters": (((1.0, -1.0),),)}
    assert Recipe.from_fields({**fields, "spatial": "csp:1"}).model_channels == ("csp1",)
    with pytest.raises(UserInputError, match="'laplace-riemann:1' cannot be computed by this eeg2arm version: update"):
        Recipe.from_fields({**fields, "spatial": "laplace-riemann:1"})


def test_filter_designs_are_shared_but_each_caller_gets_its_own_copy():
    from eeg2arm.recipe import iir_sos

    first = iir_sos(160.0, 8.0, 30.0, "--bandpass edge")
    first[:] = 0.0  # a caller that writes into its filter
    again = iir_sos(160.0, 8.0, 30.0, "band mubeta edge")  # the same edges under another name: the same design
    assert again.shape == first.shape and np.abs(again).max() > 0 and not np.shares_memory(first, again)
    with pytest.raises(UserInputError, match="band x edge 90 Hz must lie between 0 and the Nyquist frequency 80"):
        iir_sos(160.0, 8.0, 90.0, "band x edge")
