"""A real amplifier in a real session, as live LSL streams built from the shared recordings: undeclared units, bad
electrodes, samples lost in transit."""
from __future__ import annotations

import json
import re
import uuid

import mne
import numpy as np
import pytest

from eeg2arm.checkpoint import load_model_from_checkpoint
from lsl_amp import Amp
from test_live import invoke, train_on


@pytest.fixture(scope="module")
def r04(bandpower_dir) -> mne.io.BaseRaw:
    return mne.io.read_raw(bandpower_dir.parent / "raw" / "eegmmidb" / "S001" / "S001R04.edf", preload=True,
                           verbose="error")


@pytest.fixture(scope="module")
def mmi_ckpt(bandpower_dir, tmp_path_factory):
    return train_on(bandpower_dir / "eegmmidb_imagery", tmp_path_factory, 2, 64)


def unique(prefix: str) -> str:
    return f"eeg2arm-{prefix}-{uuid.uuid4().hex[:8]}"


def rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def replayed(r04, mmi_ckpt) -> list[dict]:
    """The decisions of the first 4 s of the recording replayed from its file: what a live stream of it must give."""
    result = invoke("stream", "--raw", r04.filenames[0], "--ckpt", mmi_ckpt, "--duration", 4, "--fast",
                    "--out-jsonl", "-", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return rows(result.output)


def same_decisions(heard: list[dict], played: list[dict]) -> None:
    assert len(heard) == len(played) >= 7
    assert [r["decision"] for r in heard] == [r["decision"] for r in played]
    assert np.abs(np.array([r["probs"] for r in heard]) - [r["probs"] for r in played]).max() < 1e-3


def test_a_stream_in_undeclared_microvolts_decodes_as_its_recording(r04, mmi_ckpt, replayed):
    """An app that sends µV and declares no unit: judged from the amplitude, said in one line, decoded as the file."""
    name = unique("uv")
    with Amp(r04, name, microvolts=True):
        live = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 4, "--lsl-timeout", 20,
                      "--out-jsonl", "-", "--device", "cpu")
    assert live.exit_code == 0, live.output
    assert f"INFO: LSL stream {name!r} declares no units: its amplitude reads as microvolts" in live.output
    same_decisions(rows(live.output), replayed)


def test_record_writes_volts_from_a_stream_in_undeclared_microvolts(r04, tmp_path):
    from mne_lsl.lsl import StreamInfo, StreamOutlet

    name, cues = unique("uv"), unique("cues")
    outlet = StreamOutlet(StreamInfo(cues, "Markers", 1, 0.0, "float32", cues))
    with Amp(r04, name, microvolts=True, cue=(outlet, 100, 7.0)):
        result = invoke("record", "--lsl", name, "--markers", cues, "--out", tmp_path / "s.fif", "--duration", 3,
                        "--lsl-timeout", 20)
    assert result.exit_code == 0, result.output
    assert "declares no units: its amplitude reads as microvolts" in result.output
    recorded = mne.io.read_raw_fif(tmp_path / "s.fif", verbose="error").get_data()
    expected = r04.get_data()[:, :recorded.shape[1]]
    assert recorded.shape[1] == 480 and np.abs(recorded - expected).max() < 1e-6 * np.abs(expected).max()


@pytest.mark.parametrize("units, gain, message", [
    ("auto", 0.0, "flat everywhere in any unit"),
    ("auto", 1e12, "beyond any amplifier's range in any unit"),
])
def test_a_stream_that_fits_no_unit_is_one_line(r04, mmi_ckpt, units, gain, message):
    name = unique("odd")
    with Amp(r04, name, microvolts=True, signal=r04.get_data() * gain):
        result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 3, "--lsl-timeout", 20,
                        "--units", units, "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: the stream's samples")
    assert message in result.output


def test_given_units_win_over_the_judgement(r04, mmi_ckpt, replayed):
    name = unique("mv")
    with Amp(r04, name, microvolts=True, signal=r04.get_data() * 1e-3):  # millivolts, undeclared
        result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 4, "--lsl-timeout", 20,
                        "--units", "mV", "--out-jsonl", "-", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "declares no units" not in result.output
    same_decisions(rows(result.output), replayed)


def broken(r04: mne.io.BaseRaw) -> tuple[np.ndarray, str, str]:
    """The recording with one electrode off (zero) for the whole session and another NaN from 2 s to 7 s."""
    signal = r04.get_data()
    flat, nan = r04.ch_names[8], r04.ch_names[12]  # C3.., C4..
    signal[8] = 0.0
    signal[12, 320:1120] = np.nan
    return signal, flat, nan


def test_bad_electrodes_do_not_stop_the_arm(r04, mmi_ckpt):
    """A flat electrode and a NaN one on a live stream: every frame is decided, every row names the bad channels,
    the printed lines name each change and the summary how long each was bad."""
    signal, flat, nan = broken(r04)
    name = unique("bad")
    with Amp(r04, name, signal=signal):
        result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 10, "--lsl-timeout", 20,
                        "--out-jsonl", "-", "--device", "cpu")
    assert result.exit_code == 0, result.output
    decided = rows(result.output)
    summary = result.output.strip().splitlines()[-1]
    frames = int(summary.split("feature_frames=")[1].split()[0])
    assert frames * 0.25 >= 10 and len(decided) == frames // 2  # no frame lost
    assert all(np.isfinite(r["probs"]).all() for r in decided)
    assert all(flat in r["bad_channels"] for r in decided if r["t"] >= 1.5)
    assert any(nan in r["bad_channels"] for r in decided) and nan not in decided[-1]["bad_channels"]
    assert [r["t"] for r in decided if nan in r["bad_channels"]][0] == 2.75  # NaN from 2 s, judged bad at 2.25 s
    assert f"[t=1.00s] bad channels: {flat} (flat) (replaced from the others)" in result.output
    assert f"bad channels: {flat} (flat), {nan} (NaN) (replaced from the others)" in result.output
    assert re.search(rf"bad channels: {flat} 9\.\d s \(flat\), {nan} 5\.8 s \(NaN\)$", summary)  # 1 s on, 2.25-8


def test_record_names_bad_electrodes_in_its_progress_and_summary(r04, tmp_path):
    from mne_lsl.lsl import StreamInfo, StreamOutlet

    from eeg2arm.realtime.record import ProgressLine, record

    signal, flat, _ = broken(r04)
    name, cues = unique("bad"), unique("cues")
    outlet = StreamOutlet(StreamInfo(cues, "Markers", 1, 0.0, "float32", cues))
    shown: list[str] = []
    with Amp(r04, name, signal=signal, cue=(outlet, 100, 7.0)):
        summary = record(name, cues, tmp_path / "s.fif", duration=4, timeout=20, echo=shown.append,
                         progress=ProgressLine(shown.append, tty=True))
    assert any(f"bad={flat}(flat)" in line for line in shown)
    assert f"bad channels: {flat} 3.0 s (flat)" in summary.line()
    recorded = mne.io.read_raw_fif(tmp_path / "s.fif", verbose="error").get_data()
    assert np.isnan(recorded[12, 320:640]).all()  # recorded as it came: the repair is the decoder's, not the file's


def test_samples_lost_in_transit_are_bridged_or_restart_the_decoder(r04, mmi_ckpt):
    """A live stream loses 20 samples at 3 s (bridged) and 80 at 6 s (a 0.5 s gap): the decoder restarts there,
    says so on the next JSON row and in one line, and goes on."""
    name = unique("gaps")
    with Amp(r04, name, lost=(slice(480, 500), slice(960, 1040))):
        result = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 10, "--lsl-timeout", 20,
                        "--out-jsonl", "-", "--device", "cpu")
    assert result.exit_code == 0, result.output
    decided = rows(result.output)
    gaps = [r for r in decided if r["gap"]]
    assert len(gaps) == 1 and 6.5 < gaps[0]["t"] <= 7.5
    assert [r["index"] for r in decided] == list(range(len(decided)))  # numbered over the stream: a gap goes on
    assert decided[decided.index(gaps[0]) - 1]["t"] < 6.0
    assert "[t=6.50s] gap: 0.50 s of signal lost: the filters and the decoder start again" in result.output
    assert " gaps=1 " in result.output.strip().splitlines()[-1]
    assert np.diff([r["t"] for r in decided[:decided.index(gaps[0])]]).max() == 0.5  # bridged: no step skipped


def test_gaps_and_bad_channels_do_not_depend_on_how_the_stream_is_chunked(r04, mmi_ckpt):
    """The same stream (NaN runs on every channel, samples lost, a NaN electrode) cut into chunks two ways gives
    the same decisions to the last digit; the decision stream's markers name the gap and the bad channels."""
    from mne_lsl.lsl import StreamInlet, resolve_streams

    from eeg2arm.realtime.live import run_stream
    from eeg2arm.realtime.outlet import LSLDecisions
    from eeg2arm.realtime.smoothing import Hysteresis
    from eeg2arm.realtime.sources import Chunk
    from eeg2arm.realtime.streamer import Streamer

    model, meta = load_model_from_checkpoint(mmi_ckpt)
    signal = r04.get_data(units="uV")[:, :2400]  # 15 s
    signal[:, 400:410] = np.nan  # a 10-sample dropout on every channel: bridged
    signal[:, 1200:1300] = np.nan  # 100 samples: a gap
    signal[20, 1600:1700] = np.nan  # one electrode
    keep = np.ones(2400, bool)
    keep[800:815] = False  # lost in transit: bridged
    stamps = 1000.0 + np.flatnonzero(keep) / 160
    signal = signal[:, keep]

    class Kept:
        def __init__(self):
            self.seen = []

        def send(self, decided, changed):
            self.seen.append(decided)

    def decide(sizes: np.ndarray, sinks=()) -> list:
        kept, bounds = Kept(), np.cumsum(np.concatenate([[0], sizes]))
        chunks = (Chunk(signal[:, a:b], stamps[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if a < len(stamps))
        run_stream(chunks, Streamer.from_model(model), echo=lambda s: None, sinks=[kept, *sinks])
        return kept.seen

    out = unique("dec")
    outlet = LSLDecisions(out, meta["config"], "test", Hysteresis())
    inlet = StreamInlet(resolve_streams(timeout=5, name=f"{out}-markers")[0])
    inlet.open_stream(timeout=5)
    by_16 = decide(np.full(200, 16), [outlet])
    by_random = decide(np.random.default_rng(0).integers(1, 90, 200))
    markers, _ = inlet.pull_chunk(timeout=2.0)
    inlet.close_stream()
    outlet.close()
    assert len(by_16) == len(by_random) > 20
    assert all(a.t == b.t and a.gap == b.gap and a.bad_channels == b.bad_channels and
               np.array_equal(a.result.probs, b.result.probs) for a, b in zip(by_16, by_random))
    assert sum(d.gap for d in by_16) == 1
    bad = r04.ch_names[20]
    assert any(d.bad_channels == (bad,) for d in by_16)
    texts = [m[0] for m in markers]
    assert "gap" in texts and f"bad: {bad}" in texts and "bad: none" in texts


def test_channels_named_otherwise_are_one_line_with_the_fix_and_map_with_rename(r04, mmi_ckpt, replayed, tmp_path):
    """Another amplifier's spelling (FC5 for Fc5.) or no names at all (1, 2, ...): one line naming the missing
    channels and how to map them, exit 2, no decision file; mapped with --rename / --rename-file they decode."""
    spelled = r04.copy().rename_channels(lambda name: name.strip(".").upper())
    spelled.save(tmp_path / "spelled_raw.fif", verbose="error")
    jsonl = tmp_path / "d.jsonl"
    result = invoke("stream", "--raw", tmp_path / "spelled_raw.fif", "--ckpt", mmi_ckpt, "--fast",
                    "--out-jsonl", jsonl, "--device", "cpu")
    assert result.exit_code == 2 and not jsonl.exists()
    error = result.output.strip().splitlines()[-1]
    assert error.startswith(f"Error: {tmp_path / 'spelled_raw.fif'} lacks the model's channels Fc5., Fc3., Fc1.")
    assert "map them with --rename FC5=Fc5. --rename FC3=Fc3. --rename FC1=Fc1. --rename FCZ=Fcz. ..." in error
    (tmp_path / "map.txt").write_text("".join(f"{new} {old}\n" for old, new in zip(r04.ch_names, spelled.ch_names)))
    mapped = invoke("stream", "--raw", tmp_path / "spelled_raw.fif", "--ckpt", mmi_ckpt, "--fast", "--duration", 4,
                    "--rename-file", tmp_path / "map.txt", "--out-jsonl", "-", "--device", "cpu")
    assert mapped.exit_code == 0, mapped.output
    same_decisions(rows(mapped.output), replayed)
    typo = invoke("stream", "--raw", tmp_path / "spelled_raw.fif", "--ckpt", mmi_ckpt, "--fast", "--duration", 4,
                  "--rename-file", tmp_path / "map.txt", "--rename", "C3..=C3", "--device", "cpu")
    assert typo.exit_code == 0 and "has no channel C3.. to rename" in typo.output, typo.output  # was silent
    numbered = [str(i + 1) for i in range(len(r04.ch_names))]
    name = unique("numbered")
    with Amp(r04, name, microvolts=True, names=numbered):
        unnamed = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 4, "--lsl-timeout", 20,
                         "--device", "cpu")
        live = invoke("stream", "--lsl", name, "--ckpt", mmi_ckpt, "--duration", 4, "--lsl-timeout", 20,
                      "--out-jsonl", "-", "--device", "cpu",
                      *[f"--rename={n}={old}" for n, old in zip(numbered, r04.ch_names)])
    assert unnamed.exit_code == 2
    assert "its channels are 1, 2, 3, 4, 5, 6 ...: map them with --rename OLD=NEW" in unnamed.output
    assert live.exit_code == 0, live.output
    same_decisions(rows(live.output), replayed)
