"""`eeg2arm record --bids-root ROOT --subject S --task T [--session N] [--run R]`: the session recorded as record.py
records it, into a hidden FIF file in ROOT, then written into the BIDS tree with mne-bids (eeg2arm.bids) and the FIF
removed. The target is checked before recording; a recording that cannot be written as BIDS is kept as its FIF
file, named in the error."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..bids import BidsTarget
from ..errors import UserInputError
from .record import ProgressLine, RecordSummary, record


def record_bids(eeg_name: str, markers_name: str, target: BidsTarget, duration: float | None = None,
                timeout: float = 5.0, echo: Callable[[str], None] = print,
                progress: ProgressLine | None = None, units: str = "auto") -> RecordSummary:
    """Record into the BIDS tree `target` (see the module docstring); the summary names the BIDS EEG file."""
    target.check()
    target.root.mkdir(exist_ok=True)
    scratch = target.root / f".{target.path().basename}.fif"  # hidden: BIDS tools ignore dot files

    def write(summary: RecordSummary) -> None:
        parts = [scratch.parent / name for name in summary.parts]
        try:
            written = target.write(scratch)
        except Exception as e:  # noqa: BLE001 - mne-bids raises many types; the session must not be lost
            raise UserInputError(f"the recording could not be written as BIDS ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:200]}); it is kept as {scratch}") from None
        for part in parts:
            part.unlink()
        summary.out, summary.parts = written, [written.name]

    return record(eeg_name, markers_name, scratch, duration, timeout, echo=echo, progress=progress, units=units,
                  saved=write)


def target_of(out: Path | None, root: Path | None, subject: str | None, task: str | None, session: str | None,
              run: str | None) -> BidsTarget | None:
    """The BIDS target of `record`'s flags, or None for a plain --out FIF file; UserInputError for a mix."""
    if root is None:
        if any(v is not None for v in (subject, task, session, run)):
            raise UserInputError("--subject, --task, --session and --run name a BIDS recording: give them with "
                                 "--bids-root ROOT")
        if out is None:
            raise UserInputError("give --out FILE.fif, or --bids-root ROOT --subject S --task T for BIDS")
        return None
    if out is not None:
        raise UserInputError("give --out FILE.fif or --bids-root ROOT, not both")
    if subject is None or task is None:
        raise UserInputError("--bids-root needs --subject and --task (and optionally --session, --run)")
    return BidsTarget(root, subject, task, session, run)
