"""EEG recordings as BIDS, with mne-bids: `eeg2arm record --bids-root` writes a session into a BIDS tree (the EEG as
BrainVision float32, channels.tsv, events.tsv from the cues, the sidecars), and `prepare` reads a recording from a
BIDS tree with its events (events.tsv's trial_type as annotations, the subject from participants.tsv).

A file is read as BIDS when its name carries BIDS entities (sub-..._eeg.vhdr) and the folder that many levels up holds
dataset_description.json; any other file is read as it is (recordings.open_recording).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import mne

from .errors import UserInputError

DATATYPE = "eeg"


@dataclass(frozen=True)
class BidsTarget:
    """Where one recording goes in a BIDS tree: sub-SUBJECT[_ses-SESSION]_task-TASK[_run-RUN]_eeg."""

    root: Path
    subject: str
    task: str
    session: str | None = None
    run: str | None = None

    def path(self):  # -> mne_bids.BIDSPath
        from mne_bids import BIDSPath

        try:
            return BIDSPath(root=self.root, subject=self.subject, session=self.session, task=self.task,
                            run=self.run, datatype=DATATYPE, suffix=DATATYPE)
        except ValueError as e:
            raise UserInputError(f"--subject/--session/--task/--run: {str(e).splitlines()[0]} (BIDS labels are "
                                 f"letters and digits, --run a number)") from None

    def check(self) -> None:
        """UserInputError before recording when the recording cannot go there or is there already (never written
        over)."""
        path = self.path()
        if not self.root.parent.is_dir():
            raise UserInputError(f"--bids-root {self.root}: its folder {self.root.parent} does not exist")
        if self.root.exists() and not self.root.is_dir():
            raise UserInputError(f"--bids-root {self.root} is a file: give a folder (new or a BIDS tree)")
        existing = sorted(Path(path.directory).glob(f"{path.basename}.*")) if Path(path.directory).is_dir() else []
        if existing:
            raise UserInputError(f"{existing[0]} exists: a recording is never written over; give another --run or "
                                 f"--session")

    def write(self, fif: Path) -> Path:
        """Write the recording saved as `fif` (and its split parts) into the tree; the path of its EEG file."""
        from mne_bids import write_raw_bids

        raw = mne.io.read_raw_fif(fif, verbose="error")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. no power-line frequency known: written as n/a
            written = write_raw_bids(raw, self.path(), overwrite=False, verbose="error")
        return Path(written.fpath)


def bids_path_of(path: Path):  # -> mne_bids.BIDSPath | None
    """The BIDS path of a file inside a BIDS tree, or None for any other file."""
    if not path.name.startswith("sub-"):
        return None
    from mne_bids import get_bids_path_from_fname

    try:
        found = get_bids_path_from_fname(path, check=False, verbose="error")
    except (KeyError, ValueError, RuntimeError):  # a name like BIDS but not BIDS (sub-01_..._eeg_0-200s_raw.fif)
        return None
    if found.root is None or not (Path(found.root) / "dataset_description.json").is_file():
        return None
    return found


def read_bids(path: Path) -> mne.io.BaseRaw:
    """A recording in a BIDS tree with its events as annotations and its subject (mne_bids.read_raw_bids)."""
    from mne_bids import read_raw_bids

    return read_raw_bids(bids_path_of(path), verbose="error")
