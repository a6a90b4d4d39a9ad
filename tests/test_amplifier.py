"""A real amplifier in a real session, as live LSL streams built from the shared recordings: undeclared units, bad
electrodes, samples lost in transit."""
from __future__ import annotations

import json
import uuid

import mne
import numpy as np
import pytest

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
