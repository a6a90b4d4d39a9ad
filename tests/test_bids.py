"""BIDS: `eeg2arm record --bids-root` on a live replay of a real EEGMMIDB recording (mne-lsl's PlayerLSL, its cues a
real marker stream) writes the session with mne-bids; mne_bids.read_raw_bids gives back the file's samples and cue
onsets, `prepare` reads the recording from the tree with its events, and the BIDS validator (npm bids-validator,
where installed) accepts the tree."""
from __future__ import annotations

import json
import shutil
import subprocess

import mne
import numpy as np
import pytest
from mne_bids import BIDSPath, read_raw_bids

from test_record import CLOCK_JITTER_S, CUE_ARGS, invoke, onset_errors, playing, segment, unique

SUBJECT, TASK, SESSION, RUN = "01", "imagery", "1", "1"
FLOAT32 = 1e-6  # relative: mne-bids writes the EEG as BrainVision float32 (µV, resolution 0.1)


@pytest.fixture(scope="module")
def r04(bandpower_dir) -> mne.io.BaseRaw:
    return mne.io.read_raw(bandpower_dir.parent / "raw" / "eegmmidb" / "S001" / "S001R04.edf", preload=True,
                           verbose="error")


@pytest.fixture(scope="module")
def session(r04, tmp_path_factory):
    """(BIDS root, the record command's result, the replayed recording): 8 s of S001R04 from 2.2 s, its cues moved
    one sample later so that the cue stream says when each cue sample was sent (test_record.py says why)."""
    sfreq = r04.info["sfreq"]
    replay = segment(r04, 2.2, 22.2, shift=1 / sfreq)
    root, name = tmp_path_factory.mktemp("bids") / "study", unique("amp")
    with playing(replay, name):
        result = invoke("record", "--lsl", name, "--markers", f"{name}-annotations", "--bids-root", root,
                        "--subject", SUBJECT, "--task", TASK, "--session", SESSION, "--run", RUN, "--duration", 8)
    return root, result, replay


def start_near(recorded: np.ndarray, signal_: np.ndarray) -> int:
    """The sample k of the file where the recording (C, n) begins, its first 16 samples equal to float32 precision."""
    n, scale = 16, np.abs(signal_).max()
    errors = [np.abs(signal_[:, k:k + n] - recorded[:, :n]).max() for k in range(signal_.shape[1] - n)]
    k = int(np.argmin(errors))
    assert errors[k] <= FLOAT32 * scale and sorted(errors)[1] > 100 * FLOAT32 * scale
    return k


def test_record_writes_bids_read_back_with_the_files_samples_and_cues(session, r04):
    root, result, replay = session
    assert result.exit_code == 0, result.output
    eeg = root / f"sub-{SUBJECT}" / f"ses-{SESSION}" / "eeg" / f"sub-{SUBJECT}_ses-{SESSION}_task-{TASK}_run-{RUN}"
    assert result.stdout.startswith(f"wrote {eeg}_eeg.vhdr: 64 channels at 160 Hz, 8.00 s (1280 samples), ")
    for suffix in ("_eeg.vhdr", "_eeg.eeg", "_eeg.vmrk", "_eeg.json", "_channels.tsv", "_events.tsv"):
        assert eeg.with_name(eeg.name + suffix).is_file(), suffix
    assert (root / "dataset_description.json").is_file() and (root / "participants.tsv").is_file()
    assert not [p for p in root.rglob(".*")]  # the FIF it was recorded into is gone

    path = BIDSPath(root=root, subject=SUBJECT, session=SESSION, task=TASK, run=RUN, datatype="eeg")
    bids = read_raw_bids(path, verbose="error")
    assert bids.ch_names == r04.ch_names and bids.info["sfreq"] == 160 and bids.n_times == 1280
    signal_ = replay.get_data()
    k = start_near(bids.get_data(), signal_)
    assert np.abs(bids.get_data() - signal_[:, k:k + bids.n_times]).max() <= FLOAT32 * np.abs(signal_).max()
    errors = onset_errors(bids, segment(r04, 2.2, 22.2), k)  # the original cues, in events.tsv
    assert len(errors) >= 1 and np.abs(errors).max() <= CLOCK_JITTER_S, errors
    channels = (eeg.with_name(eeg.name + "_channels.tsv")).read_text().splitlines()
    assert channels[0].split("\t")[:3] == ["name", "type", "units"] and len(channels) == 65
    assert all(line.split("\t")[1:3] == ["EEG", "µV"] for line in channels[1:])


def test_prepare_reads_the_recording_from_the_tree_with_its_events(session, r04, bandpower_dir, tmp_path):
    root, result, _ = session
    assert result.exit_code == 0, result.output
    vhdr = next(root.rglob("*_eeg.vhdr"))
    done = invoke("prepare", vhdr, "--out", tmp_path / "bids", *CUE_ARGS)
    assert done.exit_code == 0, done.output
    edf = bandpower_dir.parent / "raw" / "eegmmidb" / "S001" / "S001R04.edf"
    assert invoke("prepare", edf, "--out", tmp_path / "orig", *CUE_ARGS).exit_code == 0
    meta = json.loads((tmp_path / "bids" / "meta.json").read_text())
    assert meta["source_files"][0]["subject"] == f"sub-{SUBJECT}"  # participants.tsv, not the folder name `eeg`
    y, y_orig = np.load(tmp_path / "bids" / "y.npy"), np.load(tmp_path / "orig" / "y.npy")
    onsets = [onset for _, onset in meta["trial_sources"]]
    bids = read_raw_bids(BIDSPath(root=root, subject=SUBJECT, session=SESSION, task=TASK, run=RUN,
                                  datatype="eeg"), verbose="error")
    assert len(y) >= 1 and np.allclose(onsets, bids.annotations.onset[:len(y)], atol=1 / 160)
    first = int(np.searchsorted(r04.annotations.onset, 2.2 + onsets[0] - 0.5))  # the recording's first cue
    assert np.array_equal(y, y_orig[first:first + len(y)])


def test_the_bids_validator_accepts_the_tree(session):
    root, result, _ = session
    assert result.exit_code == 0, result.output
    validator = shutil.which("bids-validator")
    if validator is None:
        pytest.skip("bids-validator is not installed (npm install -g bids-validator; .ci/run installs it)")
    done = subprocess.run([validator, str(root), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    assert report["issues"]["errors"] == [], report["issues"]["errors"]
    assert done.returncode == 0


@pytest.mark.parametrize("case", ["exists", "no subject", "bids flags without root", "both", "bad label"])
def test_bad_bids_flags_are_one_line_before_any_stream(case, tmp_path):
    """Refused before the streams are looked for (there are none here): one line, exit 2, nothing written."""
    root = tmp_path / "study"
    target = ["--bids-root", root, "--subject", "01", "--task", "rest"]
    if case == "exists":
        (root / "sub-01" / "eeg").mkdir(parents=True)
        (root / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr").write_text("")
    args, message = {
        "exists": (target, "sub-01_task-rest_eeg.vhdr exists"),
        "no subject": (["--bids-root", root, "--task", "rest"], "--bids-root needs --subject and --task"),
        "bids flags without root": (["--out", tmp_path / "s.fif", "--subject", "01"], "give them with --bids-root"),
        "both": ([*target, "--out", tmp_path / "s.fif"], "not both"),
        "bad label": (["--bids-root", root, "--subject", "0_1", "--task", "rest"], "--subject/--session"),
    }[case]
    before = sorted(tmp_path.rglob("*"))
    result = invoke("record", "--lsl", "nothing-here", "--markers", "nothing-here-either", *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert message in result.output
    assert sorted(tmp_path.rglob("*")) == before
