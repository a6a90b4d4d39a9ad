"""`eeg2arm record`: mne-lsl's PlayerLSL replays a real EEGMMIDB recording and its annotations (a real cue stream,
PLAYER-annotations) on loopback; we record them into FIF and compare with the file, then cut trials with prepare.

Start alignment: the recorder joins a replay already running, so its first sample is some sample k of the file;
k is found where the file's samples equal the recording's first 16 samples exactly (the stream is float64), and
cue onsets are compared on the file's timeline (recorded onset + k / sfreq)."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import mne
import numpy as np
import pytest
from click.testing import CliRunner

from mne_lsl.lsl import StreamInfo, StreamOutlet

from eeg2arm.atomic import HOST
from eeg2arm.cli import cli
from eeg2arm.errors import UserInputError
from eeg2arm.realtime import recorder
from eeg2arm.realtime.record import RecordSummary, Session
from eeg2arm.realtime.timeline import ANCHOR_S, Timeline
from lsl_amp import Amp

CLOCK_JITTER_S = 0.5e-3  # two inlets' clock-offset estimates (liblsl: within ±0.2 ms each) plus float32 onsets
CUE_ARGS = ("--event", "T0=rest", "--event", "T1=left", "--event", "T2=right", "--tmin", 0, "--tmax", 1.5)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def edf(bandpower_dir):
    return bandpower_dir.parent / "raw" / "eegmmidb" / "S001" / "S001R04.edf"


@pytest.fixture(scope="module")
def r04(edf):
    return mne.io.read_raw(edf, preload=True, verbose="error")


def unique(prefix: str) -> str:
    return f"eeg2arm-{prefix}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def playing(raw: mne.io.BaseRaw, name: str, annotations: bool = True, encoding: str = "string"):
    """PlayerLSL replaying `raw` as NAME (and its annotations as NAME-annotations: one string per cue, or one-hot,
    a channel per description valued the duration, as `mne-lsl player --annotations` sends them)."""
    from mne_lsl.player import PlayerLSL

    player = PlayerLSL(raw, chunk_size=16, name=name, annotations=annotations,
                       annotations_encoding=encoding, source_id=uuid.uuid4().hex).start()
    try:
        yield player
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped by the test
            player.stop()


def start_in_file(recorded: np.ndarray, signal_: np.ndarray) -> int:
    """The sample k of the file where the recording (C, n) begins: its first 16 samples equal the file's there."""
    n = 16
    hits = [k for k in range(signal_.shape[1] - n) if np.array_equal(signal_[:, k:k + n], recorded[:, :n])]
    assert len(hits) == 1, hits
    return hits[0]


def onset_errors(recording: mne.io.BaseRaw, original: mne.io.BaseRaw, k: int) -> np.ndarray:
    """Recorded cue onsets minus the original ones (s), on the file's timeline; every original cue inside the
    recorded span must be there, with its description, in order."""
    sfreq = original.info["sfreq"]
    start, end = k / sfreq, (k + recording.n_times) / sfreq
    on, desc = original.annotations.onset, original.annotations.description
    inside = (on >= start) & (on < end - 1 / sfreq)
    assert list(recording.annotations.description) == list(desc[inside])
    return recording.annotations.onset + start - on[inside]


def segment(raw: mne.io.BaseRaw, start: float, stop: float, shift: float = 0.0,
            durations: bool = False) -> mne.io.RawArray:
    """Seconds [start, stop) of a recording as a new one beginning at 0, with the cues that begin inside it
    (their onsets moved `shift` s later; with `durations` they keep theirs, cut at the end)."""
    sfreq = raw.info["sfreq"]
    part = mne.io.RawArray(raw.get_data(start=round(start * sfreq), stop=round(stop * sfreq)), raw.info,
                           verbose="error")
    cues = raw.annotations
    inside = (cues.onset >= start) & (cues.onset < stop)
    onsets = cues.onset[inside] - start + shift
    lengths = np.minimum(cues.duration[inside], stop - start - onsets) if durations else 0.0
    part.set_annotations(mne.Annotations(onsets, lengths, cues.description[inside]))
    return part


def test_a_recording_is_the_files_signal_and_prepare_cuts_its_trials(edf, r04, tmp_path, monkeypatch):
    """PlayerLSL stamps a cue at its chunk's start time plus the cue's offset in the chunk, one sample period
    before the stamp it gives that cue's sample (see the next test). Replayed with its cues moved one sample later,
    the cue stream says exactly when each cue sample was recorded: then the recording reproduces the file to the
    sample, and prepare of the recording gives prepare's trials of the original file. The pieces on disk are 1 s
    here (10 s in use), so the 8 s recording is joined from eight of them."""
    monkeypatch.setattr(recorder, "PIECE_S", 1.0)
    sfreq = r04.info["sfreq"]
    replay = segment(r04, 2.2, 22.2, shift=1 / sfreq)  # cues at 2.0 (T2), 6.1 (T0), 10.3 (T1) s after the start
    name, out = unique("amp"), tmp_path / "session.fif"
    with playing(replay, name):
        result = invoke("record", "--lsl", name, "--markers", f"{name}-annotations", "--out", out, "--duration", 8)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}: 64 channels at 160 Hz, 8.00 s (1280 samples), ")
    assert "ended by --duration 8 s" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["session.fif"]  # the pieces' hidden folder is gone

    recording = mne.io.read_raw(out, preload=True, verbose="error")
    assert recording.ch_names == r04.ch_names and recording.info["sfreq"] == sfreq
    assert {ch["unit"] for ch in recording.info["chs"]} == {mne.io.constants.FIFF.FIFF_UNIT_V}
    signal_ = r04.get_data(start=round(2.2 * sfreq))
    k = start_in_file(recording.get_data(), signal_)
    assert np.array_equal(recording.get_data(), signal_[:, k:k + recording.n_times])  # volts, bit for bit
    errors = onset_errors(recording, segment(r04, 2.2, 22.2), k)  # the original cues, not the moved ones
    print(f"recording from {k / sfreq:.2f} s; cue onset errors, cues moved one sample (ms): "
          f"{np.round(errors * 1e3, 3)}")
    assert len(errors) >= 1 and np.abs(errors).max() <= CLOCK_JITTER_S, errors

    assert invoke("prepare", out, "--out", tmp_path / "rec", *CUE_ARGS).exit_code == 0
    assert invoke("prepare", edf, "--out", tmp_path / "orig", *CUE_ARGS).exit_code == 0
    X_rec, y_rec = np.load(tmp_path / "rec" / "X.npy"), np.load(tmp_path / "rec" / "y.npy")
    X_orig, y_orig = np.load(tmp_path / "orig" / "X.npy"), np.load(tmp_path / "orig" / "y.npy")
    on = r04.annotations.onset  # the file's cues in time order, as prepare takes them
    first = int(np.searchsorted(on, 2.2 + k / sfreq - 1e-9))  # the first cue of the recording
    assert len(y_rec) >= 1
    assert np.array_equal(y_rec, y_orig[first:first + len(y_rec)])
    assert np.array_equal(X_rec, X_orig[first:first + len(y_rec)])


def test_cue_onsets_of_an_unchanged_replay_are_within_one_sample_period(r04, tmp_path):
    """The bound the issue asks for: with PlayerLSL as it is, every cue lands within one sample period plus the
    clock jitter of the original (measured here: 6.250 ms early ± a few µs on every cue, the player's offset).
    The cues come one-hot here, as `mne-lsl player --annotations` sends them, durations with them."""
    sfreq = r04.info["sfreq"]
    replay = segment(r04, 2.2, 12.2, durations=True)
    name, out = unique("amp"), tmp_path / "session.fif"
    with playing(replay, name, encoding="one-hot"):
        result = invoke("record", "--lsl", name, "--markers", f"{name}-annotations", "--out", out, "--duration", 4)
    assert result.exit_code == 0, result.output
    recording = mne.io.read_raw(out, preload=True, verbose="error")
    k = start_in_file(recording.get_data(), replay.get_data())
    errors = onset_errors(recording, replay, k)
    print(f"cue onset errors (ms): {np.round(errors * 1e3, 3)}")
    assert len(errors) >= 1 and np.abs(errors).max() <= 1 / sfreq + CLOCK_JITTER_S, errors
    ends = np.minimum(replay.annotations.onset + replay.annotations.duration, (k + recording.n_times) / sfreq)
    inside = (replay.annotations.onset >= k / sfreq) & (replay.annotations.onset < (k + recording.n_times) / sfreq)
    recorded_ends = recording.annotations.onset + recording.annotations.duration + k / sfreq
    assert np.abs(recorded_ends - ends[inside]).max() <= 1 / sfreq + CLOCK_JITTER_S  # durations, cut at the end


@pytest.mark.parametrize("sig, ended_by", [("SIGINT", "Ctrl-C"), ("SIGTERM", "SIGTERM"), ("SIGHUP", "SIGHUP")])
def test_ctrl_c_sigterm_and_sighup_leave_a_whole_file_with_everything_received(r04, tmp_path, sig, ended_by):
    """A real process and a real signal, as a lab ends a session by hand, a service manager stops it, or its
    terminal closes: each saves the recording."""
    name, out = unique("amp"), tmp_path / "session.fif"
    with playing(r04, name):
        proc = subprocess.Popen([sys.executable, "-m", "eeg2arm", "record", "--lsl", name, "--markers",
                                 f"{name}-annotations", "--out", str(out)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # even under nohup
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".recording") for p in tmp_path.iterdir()):  # streams open, recording
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.5)
        proc.send_signal(getattr(signal, sig))
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stdout.startswith(f"wrote {out}: 64 channels at 160 Hz") and f"ended by {ended_by}" in stdout
    recording = mne.io.read_raw(out, verbose="error")
    assert recording.n_times >= 1.0 * 160
    k = start_in_file(recording.get_data(), r04.get_data())
    assert np.array_equal(recording.get_data(), r04.get_data()[:, k:k + recording.n_times])
    assert [p.name for p in tmp_path.iterdir()] == ["session.fif"]


def test_a_killed_recorders_pieces_are_reported_not_deleted(tmp_path):
    """A recorder killed outright (SIGKILL, power loss) leaves its hidden folder, the only copy of that session:
    the next record into the folder names it, and leaves a live recorder's and another host's alone."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = tmp_path / f".monday.fif.{HOST}.{dead.pid}.abcd1234.recording"
    live = tmp_path / f".tuesday.fif.{HOST}.{os.getpid()}.efgh5678.recording"
    remote = tmp_path / f".monday.fif.lab-pc-2.{dead.pid}.ijkl9012.recording"
    for folder in (killed, live, remote):
        folder.mkdir()
        (folder / "piece00000_raw.fif").write_bytes(b"a piece")
    result = invoke("record", "--lsl", unique("nothing"), "--markers", "x", "--out", tmp_path / "s.fif",
                    "--lsl-timeout", 0.2)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"WARNING: {killed} holds 1 piece(s) of a recording whose process is gone (killed before it could save): "
        f"recover it by joining its piece*_raw.fif files in order (mne.concatenate_raws), or delete the folder")
    assert len(result.stderr.splitlines()) == 2 and "no LSL EEG stream named" in result.stderr
    assert killed.exists() and live.exists() and remote.exists()


def test_a_session_that_fails_to_open_leaves_no_inlet_open(tmp_path):
    """The EEG stream opens, then the marker stream is refused: the EEG inlet is closed, not left to the garbage
    collector (the raised error's traceback holds the Session being built, and with it any inlet it opened)."""
    sfreq = 100.0
    described = StreamInfo(unique("amp"), "eeg", 4, sfreq, "float32", uuid.uuid4().hex)
    described.set_channel_info(mne.create_info(4, sfreq, "eeg"))
    eeg = StreamOutlet(described)
    two = StreamOutlet(StreamInfo(unique("cues"), "Markers", 2, 0.0, "string", uuid.uuid4().hex))
    with pytest.raises(UserInputError, match="has 2 channels") as raised:
        Session(eeg.name, two.name, tmp_path / "s.fif", timeout=5)
    deadline = time.monotonic() + 5
    while (eeg.has_consumers or two.has_consumers) and time.monotonic() < deadline:
        eeg.push_sample(np.zeros(4, dtype=np.float32))  # an outlet notices a consumer gone when it sends
        two.push_sample(["", ""])
        time.sleep(0.05)
    assert not eeg.has_consumers and not two.has_consumers, raised.traceback[-1]
    assert list(tmp_path.iterdir()) == []


def test_a_silent_stream_ends_the_recording_with_its_summary(r04, tmp_path):
    """The amplifier stops sending after 2 s but its stream stays on the network. A cue program sending numeric
    codes stamps code 7 at sample 100: it lands there exactly."""
    name, out = unique("amp"), tmp_path / "session.fif"
    cues = StreamOutlet(StreamInfo(unique("cues"), "Markers", 1, 0.0, "float32", uuid.uuid4().hex))
    with Amp(r04, name, odd_from=320, shift=None, cue=(cues, 100, 7.0)):
        result = invoke("record", "--lsl", name, "--markers", cues.name, "--out", out, "--lsl-timeout", 1)
    assert result.exit_code == 2
    assert result.stdout.strip() == (f"wrote {out}: 64 channels at 160 Hz, 2.00 s (320 samples), 1 markers (7 1); "
                                     f"ended by silence (no EEG for 1 s)")
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: EEG stream {name!r} sent no samples for 1 s: the recording ends there (check the amplifier, or "
        f"raise --lsl-timeout)")
    recording = mne.io.read_raw(out, verbose="error")
    assert np.array_equal(recording.get_data(), r04.get_data()[:, :320])
    assert list(recording.annotations.description) == ["7"]
    assert abs(recording.annotations.onset[0] - 100 / 160) <= CLOCK_JITTER_S


def test_a_stream_that_leaves_the_network_ends_the_recording_with_its_summary(r04, tmp_path):
    name, out = unique("amp"), tmp_path / "session.fif"
    with playing(r04, name) as player:
        stopper = threading.Timer(2.5, player.stop)  # the amplifier app quits
        stopper.start()
        result = invoke("record", "--lsl", name, "--markers", f"{name}-annotations", "--out", out,
                        "--lsl-timeout", 1)
        stopper.join()
    assert result.exit_code == 2
    summary, error = result.stdout.strip(), result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"wrote {out}: 64 channels at 160 Hz") and "ended by the EEG stream's end" in summary
    assert error == f"Error: EEG stream {name!r} left the network (its app stopped, or the connection broke): the " \
                    f"recording ends there"
    recording = mne.io.read_raw(out, verbose="error")
    k = start_in_file(recording.get_data(), r04.get_data())
    assert np.array_equal(recording.get_data(), r04.get_data()[:, k:k + recording.n_times])
    assert 0.5 * 160 <= recording.n_times <= 3 * 160


def test_an_eeg_stream_that_changes_rate_and_channels_ends_the_recording(r04, bandpower_dir, tmp_path):
    """The amplifier app restarts with other settings under the same name: a FIF file has one rate and one
    channel set, so what came before is saved and the change is one error line."""
    eyes = bandpower_dir.parent / "raw" / "eyes_open_closed" / "sub-01_ses-01_task-EO_run-01_eeg_0-200s_raw.fif"
    name, out = unique("amp"), tmp_path / "session.fif"
    from mne_lsl.player import PlayerLSL

    second = PlayerLSL(mne.io.read_raw(eyes, preload=True, verbose="error"), chunk_size=16, name=name,
                       source_id=uuid.uuid4().hex)
    with playing(r04, name) as first:
        def swap() -> None:
            first.stop()
            second.start()

        swapper = threading.Timer(2.5, swap)
        swapper.start()
        try:
            result = invoke("record", "--lsl", name, "--markers", f"{name}-annotations", "--out", out,
                            "--lsl-timeout", 10)
        finally:
            swapper.join()
            second.stop()
    assert result.exit_code == 2, result.output
    assert result.stdout.startswith(f"wrote {out}: 64 channels at 160 Hz") and "a change of the EEG" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: EEG stream {name!r} changed from 64 channels at 160 Hz to 32 channels at 250 Hz during the "
        f"recording: what came before is saved; record the new settings into another file")
    recording = mne.io.read_raw(out, verbose="error")
    assert recording.info["nchan"] == 64 and recording.n_times >= 160


def test_markers_before_the_first_eeg_sample_are_refused(r04, tmp_path):
    """A cue stream of our own, as a cue program's, whose first marker is stamped 30 s before now: before the
    EEG began (the recorder's first samples are at most a few seconds old)."""
    from mne_lsl.lsl import local_clock

    name, out = unique("amp"), tmp_path / "session.fif"
    cues = StreamOutlet(StreamInfo(unique("cues"), "Markers", 1, 0.0, "string", uuid.uuid4().hex))

    def cue_from_the_past() -> None:
        if cues.wait_for_consumers(timeout=30):
            cues.push_sample(["T1"], timestamp=local_clock() - 30.0)

    with playing(r04, name, annotations=False):
        pusher = threading.Thread(target=cue_from_the_past)
        pusher.start()
        result = invoke("record", "--lsl", name, "--markers", cues.name, "--out", out, "--duration", 10)
        pusher.join()
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    found = re.fullmatch(r"Error: a marker \('T1'\) came ([\d.]+) s before the first EEG sample: start the EEG "
                         r"stream before the cue program sends cues, then record again \(nothing was written\)",
                         lines[-1])
    assert len(lines) == 1 and found and 25 < float(found[1]) < 30, result.output
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the pieces' folder


def test_a_marker_from_before_the_recording_in_its_middle_ends_it_and_keeps_it(r04, tmp_path):
    """Mid-session, a cue program whose clock went back (or mne-lsl's looping player, which re-sends the file's
    first cue stamped a file length early) sends a marker stamped before the first EEG sample: it used to throw the
    whole session away; now what came before it is saved, markers and all, and the error says why."""
    from mne_lsl.lsl import local_clock

    name, out = unique("amp"), tmp_path / "session.fif"
    cues = StreamOutlet(StreamInfo(unique("cues"), "Markers", 1, 0.0, "string", uuid.uuid4().hex))

    def cues_then_one_from_the_past() -> None:
        if cues.wait_for_consumers(timeout=30):
            time.sleep(2.0)
            cues.push_sample(["left"])
            time.sleep(6.0)  # past the recording's first 5 s
            cues.push_sample(["right"], timestamp=local_clock() - 60.0)

    with playing(r04, name, annotations=False):
        pusher = threading.Thread(target=cues_then_one_from_the_past)
        pusher.start()
        result = invoke("record", "--lsl", name, "--markers", cues.name, "--out", out, "--duration", 30)
        pusher.join()
    assert result.exit_code == 2, result.output
    found = re.fullmatch(r"Error: a marker \('right'\) came stamped ([\d.]+) s before the first EEG sample, in the "
                         r"middle of the recording \(the cue program's clock went back, or it sent old cues again\): "
                         r"what came before it is saved", result.stderr.strip().splitlines()[-1])
    assert found and 50 < float(found[1]) < 60, result.output
    assert "ended by a marker stamped before the recording" in result.stdout
    recording = mne.io.read_raw(out, verbose="error")
    assert list(recording.annotations.description) == ["left"] and recording.times[-1] > 5.0


@pytest.mark.parametrize("case", ["markers_never_appear", "eeg_never_appears", "out_exists", "out_folder_missing",
                                  "out_not_fif", "markers_is_eeg"])
def test_record_bad_input_one_line_exit_2_nothing_written(case, r04, tmp_path):
    name = unique("amp")
    out = tmp_path / "session.fif"
    args, expected = {
        "markers_never_appear": (["--markers", unique("cues")], "no LSL marker stream named"),
        "eeg_never_appears": (["--lsl", unique("nothing"), "--markers", "x"], "no LSL EEG stream named"),
        "out_exists": (["--markers", "x"], "exists: choose a new name"),
        "out_folder_missing": (["--markers", "x", "--out", tmp_path / "no" / "s.fif"], "cannot be written"),
        "out_not_fif": (["--markers", "x", "--out", tmp_path / "s.edf"], "must end in .fif"),
        "markers_is_eeg": (["--markers", name], "is a signal at 160 Hz (64 channels), not a marker stream"),
    }[case]
    if case == "out_exists":
        out.write_bytes(b"an earlier session")
    args = ["--lsl", name, "--out", out, "--lsl-timeout", 0.5, *args]  # later flags win
    with playing(r04, name, annotations=False):
        result = invoke("record", *args, "--duration", 2)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output
    assert [p.name for p in tmp_path.iterdir()] == (["session.fif"] if case == "out_exists" else [])
    if case == "out_exists":
        assert out.read_bytes() == b"an earlier session"


def test_eeg_timestamps_that_go_back_end_the_recording(r04, tmp_path):
    """2.05 s in, in the middle of a chunk, the amplifier sends samples stamped 60 s earlier, as a restarted or
    re-sending source does: markers could no longer be placed, so the recording ends before those samples, is
    saved, and says why."""
    name, out = unique("amp"), tmp_path / "session.fif"
    cues = StreamOutlet(StreamInfo(unique("cues"), "Markers", 1, 0.0, "string", uuid.uuid4().hex))
    with Amp(r04, name, odd_from=328, shift=60.0):
        result = invoke("record", "--lsl", name, "--markers", cues.name, "--out", out, "--lsl-timeout", 5)
    assert result.exit_code == 2, result.output
    assert result.stdout.startswith(f"wrote {out}: 64 channels at 160 Hz, 2.05 s (328 samples)")
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: EEG stream {name!r} sent samples stamped 59.994 s before the last ones (it restarted, or sent old "
        f"samples again): the recording ends before them")
    assert np.array_equal(mne.io.read_raw(out, verbose="error").get_data(), r04.get_data()[:, :328])


def test_ordinary_timestamp_jitter_does_not_end_the_recording(r04, tmp_path):
    """An amplifier at 1 kHz stamping its 16-sample chunks with ±1.5 ms of jitter: stamps step back by up to 2 ms
    at the joins, which once ended the recording (at half a sample period, 0.5 ms). It records to the end, bit for
    bit, and a cue stamped at sample 1000's true time lands within the jitter of it."""
    sfreq, jitter = 1000.0, 1.5e-3
    fast = mne.io.RawArray(r04.get_data(picks=range(8)), mne.create_info(r04.ch_names[:8], sfreq, "eeg"),
                           verbose="error")
    name, out = unique("amp"), tmp_path / "session.fif"
    cues = StreamOutlet(StreamInfo(unique("cues"), "Markers", 1, 0.0, "float32", uuid.uuid4().hex))
    with Amp(fast, name, jitter=jitter, cue=(cues, 1000, 3.0)):
        result = invoke("record", "--lsl", name, "--markers", cues.name, "--out", out, "--duration", 3)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (f"wrote {out}: 8 channels at 1000 Hz, 3.00 s (3000 samples), 1 markers (3 1); "
                                     f"ended by --duration 3 s")
    recording = mne.io.read_raw(out, verbose="error")
    assert np.array_equal(recording.get_data(), fast.get_data()[:, :3000])
    assert abs(recording.annotations.onset[0] - 1000 / sfreq) <= jitter + CLOCK_JITTER_S


def test_the_timeline_follows_a_drifting_amplifier_clock_and_a_pause():
    """An amplifier whose clock runs 0.1 % fast (its 500 Hz are 500.5 Hz of this machine's clock) and that pauses
    for 2 s after 60 s: at the nominal rate alone a marker would be 30 samples off by then; the timeline's anchors
    place every marker on its sample, in memory that grows with the anchors (one a second), not the samples."""
    sfreq, drift, pause_at = 500.0, 1e-3, 30_000
    k = np.arange(40_000)
    stamps = 1000.0 + k / (sfreq * (1 + drift)) + np.where(k >= pause_at, 2.0, 0.0)  # (n,) local clock
    timeline = Timeline(sfreq)
    for i in range(0, len(k), 32):
        timeline.add(i, stamps[i:i + 32])
    probe = np.array([0, 1, 499, 12_345, 29_999, 30_000, 30_001, 39_999])
    assert np.abs(timeline.index_of(stamps[probe]) - probe).max() < 1e-6
    halfway = (stamps[12_345] + stamps[12_346]) / 2
    assert abs(timeline.index_of(np.array([halfway]))[0] - 12_345.5) < 1e-6
    assert abs(timeline.index_of(np.array([stamps[-1] + 1.0]))[0] - (39_999 + sfreq)) < 1e-6  # past: nominal rate
    assert len(timeline.index) <= len(k) / sfreq / ANCHOR_S + 2


def test_a_recording_past_the_split_size_is_saved_in_parts_all_linked(tmp_path, monkeypatch):
    """MNE writes a FIF past 2 GB (64 channels at 2048 Hz in float64: 34 min) as parts session.fif,
    session-1.fif, ...; every part must be linked beside --out. The split size is 3 MB here."""
    monkeypatch.setattr(recorder, "SPLIT_SIZE", "3MB")
    monkeypatch.setattr(recorder, "PIECE_S", 20.0)
    sfreq, n = 1000.0, 60_000  # 16 channels: 7.7 MB
    info = mne.create_info([f"EEG{i:02d}" for i in range(16)], sfreq, "eeg")
    signal_ = np.random.default_rng(0).standard_normal((16, n)) * 1e-5  # (C, n) volts
    out = tmp_path / "session.fif"
    rec, timeline = recorder.Recorder(out, info, "double"), Timeline(sfreq)
    for i in range(0, n, 500):
        rec.add(signal_[:, i:i + 500])
        timeline.add(i, 100.0 + np.arange(i, i + 500) / sfreq)
    rec.markers = [(100.0 + 2_000 / sfreq, "T1", 0.0), (100.0 + 55_000 / sfreq, "T2", 1.0)]  # first, last part
    summary = RecordSummary(out, 16, sfreq, samples=n, ended_by="--duration 60 s")
    rec.finish(timeline, summary)

    assert len(summary.parts) >= 3
    assert summary.parts == ["session.fif"] + [f"session-{j}.fif" for j in range(1, len(summary.parts))]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(summary.parts)  # the hidden folder is gone
    assert all((tmp_path / part).stat().st_size <= 3 * 2**20 for part in summary.parts)
    recording = mne.io.read_raw_fif(out, preload=True, verbose="error")  # reads every part
    assert np.array_equal(recording.get_data(), signal_)
    assert list(recording.annotations.description) == ["T1", "T2"]
    assert np.allclose(recording.annotations.onset, [2.0, 55.0]) and recording.annotations.duration[1] == 1.0
    assert summary.line().startswith(f"wrote {out} (split in {len(summary.parts)} files, keep them together: "
                                     f"session.fif, session-1.fif")


def test_a_split_part_whose_name_is_taken_saves_the_recording_under_another_name(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder, "SPLIT_SIZE", "3MB")
    sfreq, n = 1000.0, 30_000
    info = mne.create_info([f"EEG{i:02d}" for i in range(16)], sfreq, "eeg")
    signal_ = np.random.default_rng(1).standard_normal((16, n)) * 1e-5
    out = tmp_path / "session.fif"
    (tmp_path / "session-1.fif").write_bytes(b"another session's part")
    rec, timeline = recorder.Recorder(out, info, "double"), Timeline(sfreq)
    rec.add(signal_)
    timeline.add(0, 100.0 + np.arange(n) / sfreq)
    with pytest.raises(UserInputError, match=r"appeared while recording: the recording is saved as .*session-\d+\.fif"):
        rec.finish(timeline, RecordSummary(out, 16, sfreq, samples=n))
    assert not out.exists() and (tmp_path / "session-1.fif").read_bytes() == b"another session's part"
    saved = [p for p in tmp_path.iterdir() if p.name not in ("session-1.fif",) and not p.name.startswith(".")]
    first = min(saved, key=lambda p: len(p.name))
    assert np.array_equal(mne.io.read_raw_fif(first, preload=True, verbose="error").get_data(), signal_)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
