"""Real time from raw EEG: online band power equals `prepare`'s, `eeg2arm stream` from a file and from a live LSL
stream (mne-lsl's PlayerLSL replaying a real EDF), through a checkpoint and through its ONNX step graph."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import mne
import requests
import numpy as np
import pytest
from click.testing import CliRunner

from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.cli import cli
from eeg2arm.features import n_frames
from eeg2arm.realtime.online import OnlineFeatures
from eeg2arm.realtime.sources import Chunk, lsl_chunks
from lsl_amp import Amp

from conftest import push_in_chunks

REPO = Path(__file__).resolve().parents[1]

SUMMARY = re.compile(r"^feature_frames=(\d+) decisions=(\d+) switches=(\d+) held=([01]\.\d\d) gaps=0 "
                     r"latency_ms p50=[\d.]+ p99=[\d.]+$", re.M)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def eyes_files(raw_dir):
    return {name: raw_dir / "eyes_open_closed" / f"sub-01_ses-01_task-{name}_run-01_eeg_0-200s_raw.fif"
            for name in ("EC", "EO")}


def train_on(folder, tmp_path_factory, classes: int, elec: int):
    """A small checkpoint trained on a shared band-power set; its meta.json (channels, bands, rate) is taken up."""
    save = tmp_path_factory.mktemp("live") / "ckpt.pt"
    result = invoke("train", "--x", folder / "X.npy", "--y", folder / "y.npy", "--save", save, "--classes", classes,
                    "--elec", elec, "--bands", 4, "--frame-embed", 64, "--epochs", 8, "--workers", 0,
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    return save


@pytest.fixture(scope="module")
def eyes_ckpt(bandpower_dir, tmp_path_factory):
    return train_on(bandpower_dir, tmp_path_factory, 2, 32)


@pytest.fixture(scope="module")
def mmi_ckpt(bandpower_dir, tmp_path_factory):
    return train_on(bandpower_dir / "eegmmidb_imagery", tmp_path_factory, 2, 64)


def test_online_frames_equal_prepare_on_a_whole_recording(eyes_files, eyes_ckpt, tmp_path):
    """The eyes-closed run is one 200 s annotation: prepare --window 200 makes it one window of all its frames."""
    result = invoke("prepare", eyes_files["EC"], "--out", tmp_path / "p", "--window", 200)
    assert result.exit_code == 0, result.output
    X = np.load(tmp_path / "p" / "X.npy")  # (1, 32, 4, T)
    config = load_model_from_checkpoint(eyes_ckpt)[1]["config"]
    raw = mne.io.read_raw(eyes_files["EC"], verbose="error")
    signal = raw.get_data(picks=list(config.channel_names), units="uV")
    frames, _ = push_in_chunks(OnlineFeatures.for_model(config), signal)
    assert frames.shape == X.shape[1:]
    assert np.abs(frames - X[0]).max() <= 1e-4


def summary_of(output: str) -> tuple[int, int, int]:
    """(feature_frames, decisions, switches) of the summary line."""
    m = SUMMARY.search(output)
    assert m, output
    return tuple(int(g) for g in m.groups()[:3])


def held_of(output: str) -> float:
    """The summary's held=: the share of decisions that held a class."""
    m = SUMMARY.search(output)
    assert m, output
    return float(m.group(4))


def decision_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[t=")]


def test_stream_a_recording_with_checkpoint_and_onnx_alike(eyes_files, eyes_ckpt, tmp_path):
    onnx = tmp_path / "model.onnx"
    assert invoke("export", "--ckpt", eyes_ckpt, "--out", onnx).exit_code == 0
    outputs = {}
    for name, model in (("ckpt", ["--ckpt", eyes_ckpt]), ("onnx", ["--onnx", onnx])):
        result = invoke("stream", "--raw", eyes_files["EC"], *model, "--fast", "--device", "cpu",
                        "--out-jsonl", tmp_path / f"{name}.jsonl")
        assert result.exit_code == 0, result.output
        outputs[name] = result.output
    frames, decisions, switches = summary_of(outputs["ckpt"])
    config = load_model_from_checkpoint(eyes_ckpt)[1]["config"]
    n_samples = mne.io.read_raw(eyes_files["EC"], verbose="error").n_times
    assert frames == n_frames(n_samples, config.sfreq, config.frame_window, config.frame_step)
    assert decisions == frames // config.cnn_time_pool and switches >= 1
    lines = decision_lines(outputs["ckpt"])
    assert len(lines) == switches
    assert "label=eyes_closed" in lines[0]  # a model that learned the alpha switch calls the eyes-closed run so
    assert decision_lines(outputs["onnx"]) == lines  # the ONNX step graph decides exactly as PyTorch
    assert summary_of(outputs["onnx"]) == (frames, decisions, switches)
    decided = [json.loads(line) for line in (tmp_path / "ckpt.jsonl").read_text().splitlines()]
    assert [d["index"] for d in decided] == list(range(decisions))
    changes = [d for i, d in enumerate(decided) if d["decision"] != (decided[i - 1]["decision"] if i else -1)]
    assert [f"[t={d['t']:.2f}s #{d['index']}]" for d in changes] == [line.split(" decision")[0] for line in lines]
    t0 = np.array([d["time"] - d["t"] for d in decided])  # a replay stamps sample j at t0 + (j + 1) / sfreq
    assert np.ptp(t0) < 1e-6 and all(d["label"] in ("undecided", "eyes_open", "eyes_closed") for d in decided)
    held = np.mean([d["decision"] != -1 for d in decided])  # the hysteresis needs min_frames before its first class
    assert 0 < held < 1 and held_of(outputs["ckpt"]) == float(f"{held:.2f}") == held_of(outputs["onnx"])


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_end_a_stream_with_its_summary_and_whole_lines(eyes_files, eyes_ckpt, tmp_path, sig):
    """A real process and a real signal, as a service manager stops it or its terminal closes: the summary is
    printed, exit 0, and the decision file holds whole JSON lines, one per decision counted."""
    jsonl = tmp_path / "d.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "eeg2arm", "stream", "--raw", str(eyes_files["EC"]), "--ckpt",
                             str(eyes_ckpt), "--out-jsonl", str(jsonl), "--device", "cpu"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # even under nohup
    deadline = time.monotonic() + 60
    while not (jsonl.is_file() and jsonl.stat().st_size):  # deciding, at the recording's own pace
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert f"stopped by {sig}" in stdout
    decisions = summary_of(stdout)[1]
    assert 0 < decisions < 200 and [json.loads(line)["index"] for line in jsonl.read_text().splitlines()] == \
        list(range(decisions))


def test_stream_from_a_live_lsl_stream(raw_dir, mmi_ckpt):
    """PlayerLSL replays S001R04.edf as a live LSL stream; we receive it, check it is the file's signal, and decode."""
    from mne_lsl.player import PlayerLSL

    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    config = load_model_from_checkpoint(mmi_ckpt)[1]["config"]
    signal = mne.io.read_raw(edf, verbose="error").get_data(picks=list(config.channel_names), units="uV")
    name = f"eeg2arm-test-{uuid.uuid4().hex[:8]}"
    player = PlayerLSL(edf, chunk_size=16, name=name, source_id=name).start()
    try:
        chunks, received = lsl_chunks(name, config, timeout=10), []
        while sum(c.samples.shape[1] for c in received) < 320:  # 2 s at 160 Hz
            received.append(next(chunks))
        chunks.close()
        got = np.concatenate([c.samples for c in received], axis=1)  # (64, n) µV
        stamps = np.concatenate([c.stamps for c in received])  # the player's: one sample period apart, to well
        assert np.abs(np.diff(stamps) - 1 / 160).max() < 1e-3  # within it (clocksync's offset moves by µs)
        start = int(np.argmin(np.abs(signal - got[:, :1]).max(axis=0)))  # where in the file the stream was
        expected = np.take(signal, np.arange(start, start + got.shape[1]), axis=1, mode="wrap")  # it loops
        assert np.abs(got - expected).max() <= 1e-3 * np.abs(signal).max()  # float32 on the wire

        result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 3, "--lsl-timeout", 10,
                        "--device", "cpu")
    finally:
        player.stop()
    assert result.exit_code == 0, result.output
    frames, decisions, _ = summary_of(result.output)
    assert frames * config.frame_step >= 3 and decisions == frames // config.cnn_time_pool


def test_a_live_stream_that_falls_silent_still_prints_its_summary(raw_dir, mmi_ckpt):
    from mne_lsl.player import PlayerLSL

    name = f"eeg2arm-test-{uuid.uuid4().hex[:8]}"
    player = PlayerLSL(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", chunk_size=16, name=name,
                       source_id=name).start()
    stopper = threading.Timer(5.0, player.stop)  # the amplifier drops out after about 5 s
    stopper.start()
    try:
        result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--lsl-timeout", 1, "--device", "cpu")
    finally:
        stopper.join()
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "sent no samples for 1 s" in lines[-1], result.output
    frames, decisions, _ = summary_of("\n".join(lines[:-1]))
    assert frames > 0 and decisions == frames // 2


@pytest.fixture(scope="module")
def unplayable(raw_dir, tmp_path_factory) -> dict[str, Path]:
    """Recordings `stream --raw` must refuse: cut short, epochs, not EEG at all (as `prepare` does), too short for
    one decision."""
    folder = tmp_path_factory.mktemp("unplayable")
    whole = (raw_dir / "eegmmidb" / "S001" / "S001R04.edf").read_bytes()
    (folder / "truncated.edf").write_bytes(whole[:len(whole) // 2])  # a copy cut to half its size
    (folder / "garbage.edf").write_bytes(b"not an EDF file at all")
    raw = mne.io.read_raw(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", verbose="error")
    raw.crop(0, 0.4).save(folder / "short_raw.fif", verbose="error")  # 65 samples: not one 80-sample frame
    return {"truncated": folder / "truncated.edf", "garbage": folder / "garbage.edf",
            "epochs": raw_dir / "SelfRegulationSCP1" / "SelfRegulationSCP1_TRAIN-epo.fif",
            "too_short": folder / "short_raw.fif"}


def test_a_live_stream_whose_stamps_go_back_ends_with_its_summary_and_one_error(raw_dir, mmi_ckpt):
    """2.05 s in, the amplifier sends samples stamped 60 s earlier (a restarted or re-sending source): decoding
    stops before them, as `record` does, instead of deciding on a timeline that went back."""
    raw = mne.io.read_raw(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", preload=True, verbose="error")
    name = unique_name("amp")
    with Amp(raw, name, odd_from=328, shift=60.0):
        result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 6, "--lsl-timeout", 10,
                        "--device", "cpu")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == (f"Error: LSL stream {name!r} sent samples stamped 59.994 s before the last ones (it "
                         f"restarted, or sent old samples again): decoding stopped before them")
    frames, _, _ = summary_of(lines[-2])
    config = load_model_from_checkpoint(mmi_ckpt)[1]["config"]
    assert frames == n_frames(328, 160.0, config.frame_window, config.frame_step)


def test_a_live_stream_that_comes_back_at_another_rate_ends_with_its_summary_and_one_error(raw_dir, mmi_ckpt):
    """The amplifier app restarts at 200 Hz under the same name and source_id, which liblsl's recovery may
    reconnect to (it matches the channel count, not the rate): the model would decode 200 Hz as 160 Hz. The change
    is told apart in the silence any reconnection takes, and ends the stream as `record` ends a recording."""
    raw = mne.io.read_raw(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", preload=True, verbose="error")
    faster = mne.io.RawArray(raw.get_data(), mne.create_info(raw.ch_names, 200.0, "eeg"), verbose="error")
    name, source_id = unique_name("amp"), uuid.uuid4().hex
    first, second = Amp(raw, name, source_id=source_id), Amp(faster, name, source_id=source_id)

    def restart() -> None:
        while first.sent < 320 and first.is_alive():
            time.sleep(0.05)
        first.__exit__(None, None, None)
        second.__enter__()

    restarter = threading.Thread(target=restart, daemon=True)
    with first:
        restarter.start()
        try:
            result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 6, "--lsl-timeout", 10,
                            "--device", "cpu")
        finally:
            restarter.join(timeout=30)
            second.__exit__(None, None, None)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == (f"Error: LSL stream {name!r} changed from 64 channels at 160 Hz to 64 channels at 200 Hz "
                         f"while decoding: decoding stopped there (the model needs the stream it was trained on)")
    frames, _, _ = summary_of(lines[-2])
    assert frames > 0


@pytest.mark.parametrize("case", ["no_source", "two_models", "wrong_montage", "no_recipe", "no_lsl", "bad_hysteresis",
                                  "no_server", "onnx_missing", "onnx_is_ckpt", "jsonl_exists", "jsonl_folder_missing",
                                  "truncated", "garbage", "epochs", "too_short"])
def test_stream_bad_input_one_line_exit_2(case, eyes_files, raw_dir, mmi_ckpt, trained, unplayable, tmp_path):
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    args, expected = {
        "no_source": (["--ckpt", mmi_ckpt], "exactly one source"),
        "two_models": (["--raw", edf, "--ckpt", mmi_ckpt, "--onnx", mmi_ckpt], "exactly one of --ckpt"),
        "wrong_montage": (["--raw", eyes_files["EC"], "--ckpt", mmi_ckpt], "lacks the model's channels"),
        "no_recipe": (["--raw", edf, "--ckpt", trained[0]], "does not record how its band power was made"),
        "no_lsl": (["--lsl", "no-such-stream", "--ckpt", mmi_ckpt, "--lsl-timeout", 0.5], "no LSL stream named"),
        "bad_hysteresis": (["--raw", edf, "--ckpt", mmi_ckpt, "--enter", 0.3, "--exit", 0.6], "exit <= enter"),
        "no_server": (["--raw", edf, "--url", "http://127.0.0.1:9"], "cannot reach the eeg2arm server"),
        "onnx_missing": (["--raw", edf, "--onnx", "no-such.onnx"], "is not an ONNX file"),
        "onnx_is_ckpt": (["--raw", edf, "--onnx", mmi_ckpt], "is not an ONNX file"),
        "jsonl_exists": (["--raw", edf, "--ckpt", mmi_ckpt, "--out-jsonl", tmp_path / "old.jsonl"],
                         "exists: choose a new file name"),
        "jsonl_folder_missing": (["--raw", edf, "--ckpt", mmi_ckpt, "--out-jsonl", tmp_path / "no" / "d.jsonl"],
                                 "cannot be written"),
        "truncated": (["--raw", unplayable["truncated"], "--ckpt", mmi_ckpt], "is truncated"),
        "garbage": (["--raw", unplayable["garbage"], "--ckpt", mmi_ckpt], "cannot read"),
        "epochs": (["--raw", unplayable["epochs"], "--ckpt", mmi_ckpt], "holds epochs, not a continuous recording"),
        "too_short": (["--raw", unplayable["too_short"], "--ckpt", mmi_ckpt, "--out-jsonl", tmp_path / "d.jsonl"],
                      "it gave 0 frames of 0.5 s and the model decides on every 2: give a longer recording"),
    }[case]
    (tmp_path / "old.jsonl").write_text("an earlier run\n")
    result = invoke("stream", *args, "--fast")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output
    assert [p.name for p in tmp_path.iterdir()] == ["old.jsonl"] and (tmp_path / "old.jsonl").read_text() == \
        "an earlier run\n"


def test_a_replay_reads_the_whole_recording_block_by_block(raw_dir, mmi_ckpt, monkeypatch):
    """1 s reads cut into 11-sample chunks (0.07 s at 160 Hz): every sample once, in order, stamped 1/160 s apart."""
    from eeg2arm.realtime import sources

    monkeypatch.setattr(sources, "READ_S", 1.0)
    edf = raw_dir / "eegmmidb" / "S001" / "S001R04.edf"
    config = load_model_from_checkpoint(mmi_ckpt)[1]["config"]
    chunks = list(sources.recording_chunks(edf, config, chunk_s=0.07, realtime=False))
    signal = mne.io.read_raw(edf, verbose="error").get_data(picks=list(config.stream_channels), units="uV")
    assert {c.samples.shape[1] for c in chunks[:-1]} == {11} and len(chunks) == -(-signal.shape[1] // 11)
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks], axis=1), signal)
    stamps = np.concatenate([c.stamps for c in chunks])
    assert len(stamps) == signal.shape[1] and np.abs(np.diff(stamps) - 1 / 160).max() < 1e-9


def test_a_recording_at_another_rate_is_refused(raw_dir, mmi_ckpt, tmp_path):
    raw = mne.io.read_raw(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", verbose="error").crop(0, 20).load_data()
    raw.resample(128, verbose="error").save(tmp_path / "r04_128hz_raw.fif", verbose="error")
    result = invoke("stream", "--raw", tmp_path / "r04_128hz_raw.fif", "--ckpt", mmi_ckpt, "--fast", "--device", "cpu")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path / 'r04_128hz_raw.fif'} runs at 128 Hz but the model's band power was made at 160 Hz: "
        f"stream at 160 Hz (resample the recording, e.g. with MNE's raw.resample) or train on data prepared at "
        f"128 Hz"]


def test_no_lsl_stream_is_one_line_on_a_real_terminal(mmi_ckpt, tmp_path):
    """In a real process (not CliRunner), so that liblsl's own log lines on stderr would show."""
    env = {**os.environ, "HOME": str(tmp_path)}  # no ~/lsl_api/lsl_api.cfg of the user's
    env.pop("LSLAPICFG", None)
    done = subprocess.run([sys.executable, "-m", "eeg2arm", "stream", "--lsl", "no-such-stream", "--ckpt", mmi_ckpt,
                           "--lsl-timeout", "0.5", "--device", "cpu"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.startswith("Error: no LSL stream named 'no-such-stream'")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_stream_through_a_running_server_decides_as_the_checkpoint(eyes_files, eyes_ckpt, tmp_path):
    """`eeg2arm stream --url`: the frames go to the service's /stream endpoints (its ONNX step graph); the printed
    decisions equal decoding the same recording with the checkpoint in-process."""
    from serving.local_server import serve

    onnx = tmp_path / "model.onnx"
    assert invoke("export", "--ckpt", eyes_ckpt, "--out", onnx, "--no-check").exit_code == 0
    local = invoke("stream", "--raw", eyes_files["EO"], "--ckpt", eyes_ckpt, "--fast", "--duration", 30,
                   "--device", "cpu")
    assert local.exit_code == 0, local.output
    with serve({"EEG2ARM_ONNX": str(onnx), "BENTOML_HOME": str(tmp_path / "bentoml")}, tmp_path / "serve.log") as url:
        remote = invoke("stream", "--raw", eyes_files["EO"], "--url", url, "--fast", "--duration", 30)
        sessions = requests.get(f"{url}/metadata", timeout=10).json()["streaming"]
    assert remote.exit_code == 0, remote.output
    assert decision_lines(remote.output) == decision_lines(local.output)
    assert summary_of(remote.output) == summary_of(local.output)
    assert sessions["available"]


def test_streaming_a_whole_recording_equals_forward_seq(raw_dir, mmi_ckpt):
    """eegmmidb run 4 (125 s, far past the context window): online frames pushed one at a time through the
    streaming decoder give forward_seq's per-frame probabilities over the whole recording."""
    import torch

    from eeg2arm.realtime.streamer import Streamer

    model, meta = load_model_from_checkpoint(mmi_ckpt)
    config = meta["config"]
    signal = mne.io.read_raw(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", verbose="error").get_data(
        picks=list(config.channel_names), units="uV")
    frames, _ = push_in_chunks(OnlineFeatures.for_model(config), signal)  # (64, 4, T)
    with torch.no_grad():
        expected = torch.softmax(model.forward_seq(torch.from_numpy(frames[None])), -1)[0].numpy()  # (T', K)
    assert len(expected) > 3 * config.context
    streamer = Streamer.from_model(model)
    got = np.stack([r.probs for t in range(frames.shape[-1]) for r in streamer.push(frames[..., t])])
    assert np.abs(got - expected).max() <= 1e-5


def test_a_nan_sample_costs_no_frame_its_channel_is_replaced_and_named(raw_dir, mmi_ckpt):
    from eeg2arm.realtime.live import run_stream
    from eeg2arm.realtime.streamer import Streamer

    model, meta = load_model_from_checkpoint(mmi_ckpt)
    config = meta["config"]
    signal = mne.io.read_raw(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", verbose="error").get_data(
        picks=list(config.channel_names), units="uV")[:, :1600]  # 10 s
    signal[5, 800] = np.nan  # one dropout sample: replaced at once, its channel bad while it is in the window
    chunks = (Chunk(signal[:, i:i + 16], np.arange(i, min(i + 16, 1600)) / 160) for i in range(0, 1600, 16))
    printed: list[str] = []
    summary = run_stream(chunks, Streamer.from_model(model), echo=printed.append)
    assert summary.feature_frames == n_frames(1600, config.sfreq, config.frame_window, config.frame_step) == 39
    assert summary.decisions == 39 // config.cnn_time_pool
    name = config.channel_names[5]
    assert summary.bad.samples[name] == 160 and summary.bad.reasons[name] == {"NaN"}  # one window, judged 4 times
    assert f"[t=5.25s] bad channels: {name} (NaN) (replaced from the others)" in printed
    assert "[t=6.25s] bad channels: none" in printed


def test_a_step_graph_left_from_another_export_is_refused_or_removed(trained, exported, tmp_path):
    import shutil

    first, second = exported[0], tmp_path / "model.onnx"  # two exports of one checkpoint
    assert invoke("export", "--ckpt", trained[0], "--out", second, "--no-check").exit_code == 0
    shutil.copyfile(first.with_name("model.step.onnx"), second.with_name("model.step.onnx"))  # same config, stale
    from eeg2arm.errors import UserInputError
    from export.step import step_beside

    with pytest.raises(UserInputError, match="comes from another export"):
        step_beside(second, "cpu")
    assert invoke("export", "--ckpt", trained[0], "--out", second, "--no-check", "--no-stream").exit_code == 0
    assert not second.with_name("model.step.onnx").exists()  # an earlier export's step graph is not left behind


class Subscriber(threading.Thread):
    """A controller's side of `stream --out-lsl NAME`: subscribes to NAME and NAME-markers (mne-lsl StreamInlet),
    calls `ready()` once both are open, then collects (sample, timestamp) pairs until `finished` is set and half
    a second has passed without any."""

    def __init__(self, name: str, ready):
        super().__init__(daemon=True)
        self.name, self.ready, self.finished = name, ready, threading.Event()
        self.decisions, self.markers, self.desc = [], [], None

    def run(self) -> None:
        from mne_lsl.lsl import StreamInlet, resolve_streams

        inlets = []
        for name in (self.name, f"{self.name}-markers"):
            found = resolve_streams(timeout=60, name=name)
            assert found, f"{name} never appeared"
            inlets.append(StreamInlet(found[0]))
            inlets[-1].open_stream(timeout=10)
        self.desc = inlets[0].get_sinfo()
        self.ready()
        heard = time.monotonic()
        while not self.finished.is_set() or time.monotonic() - heard < 0.5:
            for inlet, into in zip(inlets, (self.decisions, self.markers)):
                sample, stamp = inlet.pull_sample(timeout=0.01)
                if stamp is not None:
                    into.append((sample.copy() if isinstance(sample, np.ndarray) else sample, stamp))
                    heard = time.monotonic()  # pull_sample returns a view of the inlet's buffer: copied


def unique_name(prefix: str) -> str:
    return f"eeg2arm-{prefix}-{uuid.uuid4().hex[:8]}"


def test_decisions_go_out_over_lsl_exactly_as_stream_prints_them(raw_dir, mmi_ckpt):
    """PlayerLSL replays S001R04.edf; `stream --out-lsl` publishes every decided frame; a real subscriber receives
    exactly the JSON lines `stream` prints (--out-jsonl -), in order, and the markers its change lines."""
    from mne_lsl.player import PlayerLSL

    eeg, out = unique_name("amp"), unique_name("decisions")
    player = PlayerLSL(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", chunk_size=16, name=eeg, source_id=eeg)
    subscriber = Subscriber(out, ready=player.start)  # the amplifier starts once the controller listens
    subscriber.start()
    try:
        result = invoke("stream", "--lsl", eeg, "--ckpt", mmi_ckpt, "--out-lsl", out, "--out-jsonl", "-",
                        "--duration", 3, "--lsl-timeout", 60, "--enter", 0.5, "--exit", 0.5, "--min-frames", 1,
                        "--device", "cpu")
    finally:
        subscriber.finished.set()
        subscriber.join(timeout=30)
        player.stop()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # stdout holds only the JSON lines
    frames, decisions, switches = summary_of(result.stderr)
    assert len(lines) == decisions == frames // 2 >= 6 and [d["index"] for d in lines] == list(range(decisions))

    got = subscriber.decisions
    assert [stamp for _, stamp in got] == [d["time"] for d in lines]
    assert [list(sample) for sample, _ in got] == [d["probs"] + [d["decision"]] for d in lines]
    # the EEG's stamps, a frame apart: to well within a sample (6.25 ms), not to 1e-6, since the inlet's clocksync
    # re-estimates the clock offset as it streams (a 6.7 µs step seen under load); the printing times would be
    # spread by the 0.1 s chunks
    assert np.allclose(np.diff([d["time"] for d in lines]), 0.5, atol=1e-3)
    changes = [d for i, d in enumerate(lines) if i == 0 or d["decision"] != lines[i - 1]["decision"]]
    assert len(changes) == switches == len(decision_lines(result.stderr)) >= 1
    assert subscriber.markers == [([d["label"]], d["time"]) for d in changes]

    config = load_model_from_checkpoint(mmi_ckpt)[1]["config"]
    assert subscriber.desc.get_channel_names() == [f"p_{c}" for c in config.class_names] + ["decision"]
    classes = subscriber.desc.desc.child("classes")
    assert [classes.child("class").child_value(), classes.child("class").next_sibling().child_value()] == \
        list(config.class_names)


def test_the_example_controller_turns_decisions_into_velocity_commands(raw_dir, mmi_ckpt):
    """examples/arm_controller.py, as a lab runs it, against a real decision stream for a few seconds."""
    from mne_lsl.player import PlayerLSL

    eeg, out = unique_name("amp"), unique_name("arm")
    player = PlayerLSL(raw_dir / "eegmmidb" / "S001" / "S001R04.edf", chunk_size=16, name=eeg, source_id=eeg)
    controller = subprocess.Popen([sys.executable, str(REPO / "examples" / "arm_controller.py"), out, "2", "30"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed: list[str] = []

    def read_commands() -> None:  # the player starts once the controller says it is subscribed
        for number, line in enumerate(controller.stdout):
            printed.append(line.rstrip("\n"))
            if number == 0:
                player.start()

    reader = threading.Thread(target=read_commands, daemon=True)
    reader.start()
    try:
        result = invoke("stream", "--lsl", eeg, "--ckpt", mmi_ckpt, "--out-lsl", out, "--out-jsonl", "-",
                        "--duration", 3, "--lsl-timeout", 60, "--enter", 0.5, "--exit", 0.5, "--min-frames", 1,
                        "--device", "cpu")
        decided = len(result.stdout.splitlines())
        deadline = time.monotonic() + 60  # 2 s after the last decision the arm stops; the controller keeps listening
        while not (sum(c.startswith("t=") for c in printed) == decided and printed[-1].startswith("vx=+0.0000 m/s (")) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert controller.poll() is None
        controller.send_signal(signal.SIGINT)  # Ctrl-C ends it
        controller.wait(timeout=30)
        reader.join(timeout=10)  # the reader alone reads stdout, to its end (communicate would race it for the last line)
        errors = controller.stderr.read()
    finally:
        player.stop()
        controller.kill()
    assert result.exit_code == 0, result.output
    config = load_model_from_checkpoint(mmi_ckpt)[1]["config"]
    assert printed[0] == f"subscribed to {out}: classes {list(config.class_names)}", errors
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed[-2:] == ["vx=+0.0000 m/s (stopped: no decisions)", "vx=+0.0000 m/s (stopped: controller ended)"]
    commands = [c for c in printed[1:-2] if c.startswith("t=")]  # (a stop may come before the first decision too)
    expected = []
    for d in lines:
        direction = -1 if "left" in d["label"] else 1 if "right" in d["label"] else 0
        vx = direction * 0.05 * (d["probs"][d["decision"]] if d["decision"] >= 0 else 0.0)
        expected.append(f"t={d['time']:.3f} vx={vx:+.4f} m/s ({d['label']})")
    # (a late decision's stop has its own test below: 30 s of age allowed here, so a loaded machine stops nothing)
    assert commands == expected and any("vx=+0.0000" not in c for c in expected)


def test_the_example_controller_stops_the_arm_on_a_late_decision():
    """A decision stamped 3 s before it arrives (a stalled decoder) stops the arm instead of moving it; a fresh
    one after it moves it again. A real LSL outlet, shaped as `stream --out-lsl` makes it."""
    from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

    name = unique_name("arm")
    info = StreamInfo(name, "Decisions", 3, 0.0, "float64", name)
    info.set_channel_names(["p_left_fist", "p_right_fist", "decision"])
    outlet = StreamOutlet(info)
    controller = subprocess.Popen([sys.executable, str(REPO / "examples" / "arm_controller.py"), name, "30"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in controller.stdout], daemon=True).start()
    try:
        assert lines.get(timeout=60).startswith(f"subscribed to {name}: classes ['left_fist', 'right_fist']")
        assert outlet.wait_for_consumers(timeout=30)
        late, fresh = local_clock() - 3.0, local_clock()  # (the clocks' correction is ~0 on one machine)
        outlet.push_sample(np.array([0.9, 0.1, 0.0]), timestamp=late)
        outlet.push_sample(np.array([0.2, 0.8, 1.0]), timestamp=fresh)
        printed = [lines.get(timeout=30) for _ in range(2)]
    finally:
        controller.kill()
        controller.wait(timeout=30)
    assert re.fullmatch(rf"t={re.escape(f'{late:.3f}')} vx=\+0\.0000 m/s \(stopped: the decision is 3\.\d s old\)",
                        printed[0]), printed
    assert printed[1] == f"t={fresh:.3f} vx=+0.0400 m/s (right_fist)"


def test_closing_the_decision_outlets_takes_both_streams_off_the_network_at_once(mmi_ckpt):
    """LSLDecisions.close destroys its outlets through mne-lsl's public teardown (the last reference goes), not
    its private StreamOutlet._del: right after close neither object exists and neither stream answers."""
    import weakref

    from mne_lsl.lsl import resolve_streams

    from eeg2arm.realtime.outlet import LSLDecisions
    from eeg2arm.realtime.smoothing import Hysteresis

    config, name = load_model_from_checkpoint(mmi_ckpt)[1]["config"], unique_name("decisions")
    outlets = LSLDecisions(name, config, "test", Hysteresis())
    assert {info.name for info in resolve_streams(timeout=2, name=name, minimum=1)} == {name}
    alive = [weakref.ref(outlets.decisions), weakref.ref(outlets.markers)]
    outlets.close()
    assert [ref() for ref in alive] == [None, None]
    assert resolve_streams(timeout=0.5, name=name) == [] and resolve_streams(timeout=0.5, name=f"{name}-markers") == []


def test_an_out_lsl_name_already_in_use_is_refused(raw_dir, mmi_ckpt, tmp_path):
    from mne_lsl.lsl import StreamInfo, StreamOutlet

    taken = unique_name("taken")
    outlet = StreamOutlet(StreamInfo(f"{taken}-markers", "Markers", 1, 0.0, "string", uuid.uuid4().hex))
    result = invoke("stream", "--raw", raw_dir / "eegmmidb" / "S001" / "S001R04.edf", "--ckpt", mmi_ckpt,
                    "--out-lsl", taken, "--out-jsonl", tmp_path / "d.jsonl", "--fast", "--device", "cpu")
    del outlet
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: an LSL stream named '{taken}-markers' is already on the network: choose another --out-lsl name "
        f"(controllers subscribe by name, so it must be unique)"]
    assert list(tmp_path.iterdir()) == []
