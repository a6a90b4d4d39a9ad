"""EEG recordings opened with MNE and checked: readable, complete, one sampling rate, the channels to read, the
subject. `eeg2arm prepare` reads its files through here, and `eeg2arm stream --raw` its recording.

A file's subject is the `his_id` of its subject_info (MNE's reading of the EDF patient field or the FIF subject)
unless that is empty or the EDF+ placeholder "X", and otherwise the name of the file's folder (e.g. S001 for
eegmmidb/S001/S001R04.edf).
"""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import mne

from .bids import bids_path_of, read_bids
from .errors import UserInputError
from .names import channel_fix, warn_unknown
from .recipe import montage_names, reference_channels

EPOCHS_SUFFIXES = ("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")
READABLE = "EDF, BDF, GDF, FIF, BrainVision .vhdr, EEGLAB .set, MNE epochs *-epo.fif, or a recording in a BIDS tree"
TRUNCATED = ("does not match the file size", "Invalid tag with only")  # MNE's warnings: EDF/BDF/GDF, FIF cut short
log = logging.getLogger("eeg2arm")

Recording = mne.io.BaseRaw | mne.BaseEpochs
RATE_RTOL = 1e-6  # FIF stores a rate as float32 (about 6e-8 relative); a real difference is far larger


def same_rate(a: float, b: float) -> bool:
    """Whether two sampling rates (Hz) are the same rate, read from different files, streams or flags."""
    return math.isclose(a, b, rel_tol=RATE_RTOL)


def is_epochs_file(path: Path) -> bool:
    return path.name.endswith(EPOCHS_SUFFIXES)


def open_recording(path: Path, resample: float | None) -> Recording:
    """Read one file lazily with MNE (epochs by the MNE name convention, else continuous); resample if asked."""
    if not path.is_file():
        raise UserInputError(f"input file not found: {path}")
    try:
        # MNE's warnings go to a log kept to spot a file cut short (MNE reads what is there and only warns)
        with warnings.catch_warnings(), mne.utils.catch_logging(verbose="warning") as logged:
            warnings.simplefilter("ignore")
            if is_epochs_file(path):
                inst = mne.read_epochs(path, preload=False, verbose="warning")
            elif bids_path_of(path) is not None:  # its events and subject are in the tree's tables
                inst = read_bids(path)
            else:
                inst = mne.io.read_raw(path, preload=False, verbose="warning")
    except Exception as e:  # noqa: BLE001 - MNE's readers raise many types (even AssertionError) on foreign files
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserInputError(f"cannot read {path} ({type(e).__name__}{': ' + detail if detail else ''}): give a "
                             f"readable {READABLE}") from None
    cut = [line for line in logged.getvalue().splitlines() if any(sign in line for sign in TRUNCATED)]
    if cut:
        raise UserInputError(f"{path} is truncated (MNE: {cut[0][:150]}): give the complete recording")
    return resampled(inst, resample)


def renamed(recordings: dict[Path, Recording], renames: dict[str, str]) -> dict[str, str]:
    """Rename channels in place (`prepare --rename OLD=NEW`: a file's own name, the recipe's), each file the ones it
    has; warn of an OLD no file has (a typo). Returns the renames some file took."""
    unknown = [old for old in renames if not any(old in inst.ch_names for inst in recordings.values())]
    warn_unknown(unknown, "no file has a channel", "file")
    taken = {old: new for old, new in renames.items() if old not in unknown}
    for path, inst in recordings.items():
        mapping = {old: new for old, new in renames.items() if old in inst.ch_names and old != new}
        try:
            inst.rename_channels(mapping, verbose="error")
        except ValueError as e:  # e.g. NEW is already a channel of the file
            raise UserInputError(f"cannot rename the channels of {path} ({str(e).splitlines()[0][:150]}): give each "
                                 f"NEW once, and none the file already has") from None
    return taken


def resampled(inst: Recording, rate: float | None) -> Recording:
    """The recording at `rate` Hz (MNE's resample, in place), or as it is when rate is None or its own."""
    if rate is not None and not same_rate(inst.info["sfreq"], rate):
        inst.load_data(verbose="error").resample(rate, verbose="error")
    return inst


def common_sfreq(recordings: dict[Path, Recording]) -> float:
    rates = {path: inst.info["sfreq"] for path, inst in recordings.items()}
    first = next(iter(rates.values()))
    if not all(same_rate(r, first) for r in rates.values()):
        listed = ", ".join(f"{p.name} {r:g} Hz" for p, r in rates.items())
        raise UserInputError(f"sampling rates differ between files ({listed}): pass --resample RATE")
    return float(first)


def eeg_channels(inst: Recording) -> list[str]:
    return [inst.ch_names[i] for i in mne.pick_types(inst.info, eeg=True, exclude="bads")]


def require_channels(recordings: dict[Path, Recording], channels: tuple[str, ...], why: str | None = None) -> None:
    """Refuse a file that lacks one of `channels` (by its own names); `why` says what to do about it (default: the
    --rename its names suggest)."""
    for path, inst in recordings.items():
        lacking = [ch for ch in channels if ch not in inst.ch_names]
        if lacking:
            raise UserInputError(f"{path} has no channel {', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''}"
                                 f": {why or channel_fix(lacking, inst.ch_names)}")


def pick_channels(recordings: dict[Path, Recording], channels: tuple[str, ...] | None) -> list[str]:
    """The channels to keep, in output order: --channels, or the EEG channels of the first file (all must match)."""
    if channels is not None:
        if len(set(channels)) != len(channels):
            raise UserInputError(f"--channels names a channel twice: {', '.join(channels)}")
        require_channels(recordings, channels, "pass --channels with channels that every file has")
        return list(channels)
    (first, inst), *rest = recordings.items()
    chosen = eeg_channels(inst)
    if not chosen:
        raise UserInputError(f"{first} has no EEG channels: name the channels to use with --channels")
    for path, other in rest:
        theirs = eeg_channels(other)
        if set(theirs) != set(chosen):
            lacking, extra = [c for c in chosen if c not in theirs], [c for c in theirs if c not in chosen]
            common = [c for c in chosen if all(c in eeg_channels(r) for r in recordings.values())]
            raise UserInputError(f"channels differ between files: {path} lacks {lacking[:5]} and adds {extra[:5]} "
                                 f"compared with {first}; pass --channels with the channels to keep "
                                 f"({len(common)} are common to all files)")
    return chosen


def common_eeg_channels(recordings: dict[Path, Recording]) -> tuple[list[str], list[str]]:
    """(the EEG channels every file has and none marks bad, in the first file's order; the EEG channels of some
    files only)."""
    every = [eeg_channels(inst) for inst in recordings.values()]
    common = [c for c in every[0] if all(c in theirs for theirs in every[1:])]
    return common, sorted({c for theirs in every for c in theirs} - set(common))


def choose_channels(recordings: dict[Path, Recording], channels: tuple[str, ...] | None, reference: str = "none",
                    montage: str | None = None) -> tuple[list[str], list[str]]:
    """(input channels, read from every file by its own names; the model's C channels, in X's order) for
    --channels (None: every EEG channel less the reference channels), --reference and --montage.

    A reference reads every EEG channel that all files have: one that some file lacks or marks bad is left out of
    every file (with a warning), so that each trial is referenced to the same channels.
    """
    if reference == "none" and montage is None:  # no spatial map: read exactly the channels kept
        chosen = pick_channels(recordings, channels)
        return chosen, chosen
    eeg, partial = common_eeg_channels(recordings)
    if not eeg:
        raise UserInputError("the files share no EEG channel (that none marks bad): a reference or montage needs the "
                             "EEG channels of one montage in every file")
    if partial and (reference != "none" or channels is None):
        log.warning("EEG channels %s%s are missing or bad in some files: the %d channels all files have are used",
                    ", ".join(partial[:8]), " ..." if len(partial) > 8 else "", len(eeg))
    rename = montage_names(eeg, montage) if montage else {c: c for c in eeg}
    refs = reference_channels(reference)
    named = {std: c for c, std in rename.items()}  # the montage's spelling -> the recording's name
    lacking = [c for c in (*refs, *(channels or ())) if c not in named]
    if lacking:
        raise UserInputError(f"--channels/--reference name {', '.join(lacking[:5])}, which are not EEG channels of "
                             f"every file (they have {', '.join(list(named)[:8])} ...)")
    kept = list(channels or [rename[c] for c in eeg if rename[c] not in refs])
    flat = [c for c in kept if c in refs]
    if flat:
        raise UserInputError(f"--channels keeps the reference channel {', '.join(flat)}, which has no signal of its "
                             f"own after re-referencing (flat when it is the only one): drop it from --channels")
    return (eeg if reference != "none" else [named[c] for c in kept]), kept


def subject_of(path: Path, inst: Recording) -> str:
    """The subject of a recording (module docstring): subject_info's his_id, else the file's folder name."""
    his_id = str((inst.info.get("subject_info") or {}).get("his_id") or "").strip()
    return his_id if his_id and his_id.upper() != "X" else path.resolve().parent.name
