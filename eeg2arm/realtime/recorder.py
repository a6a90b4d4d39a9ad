"""A recording on its way to disk: the signal in pieces as it comes, joined at the end into one FIF file.

The pieces (PIECE_S seconds each, FIF in SI units at the stream's precision) go into a hidden folder beside
--out, named like atomic.py's temps (host, pid). At the end they are read back lazily, joined, given the
annotations and saved once more in that folder, then linked into place: --out appears whole or not at all and is
never written over. A recording larger than SPLIT_SIZE is saved, as MNE does, in parts (session.fif,
session-1.fif, ...; reading session.fif reads them all): every part is linked, session.fif last.

A recorder killed outright (SIGKILL, power loss) leaves its folder: the next `record` into that folder names it
(its pieces are the only copy of that session) rather than deleting it.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import mne
import numpy as np

from ..atomic import fsync, leftovers, new_temp_folder
from ..errors import UserInputError

if TYPE_CHECKING:
    from .record import RecordSummary
    from .timeline import Timeline

PIECE_S = 10.0  # seconds of signal held in memory before they go to disk
SPLIT_SIZE = "2GB"  # the largest FIF file MNE writes (FIF's 32-bit offsets); larger recordings are split in parts
RECORDING = ".recording"  # suffix of the hidden folder of a recording in progress

log = logging.getLogger("eeg2arm")


def check_out(out: Path) -> None:
    if out.suffix != ".fif":
        raise UserInputError(f"--out {out} must end in .fif (the recording is written as FIF)")
    if out.exists():
        raise UserInputError(f"--out {out} exists: choose a new name (a recording is never written over)")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserInputError(f"--out {out} cannot be written: {out.parent} is not a folder we may write to")


def report_unfinished(folder: Path) -> list[Path]:
    """Warn about the hidden folders of recordings whose process is gone (killed before it could save)."""
    found = leftovers(folder, RECORDING)
    for left in found:
        pieces = sorted(left.glob("piece*_raw.fif"))
        log.warning(f"{left} holds {len(pieces)} piece(s) of a recording whose process is gone (killed before it "
                    f"could save): recover it by joining its piece*_raw.fif files in order (mne.concatenate_raws), "
                    f"or delete the folder")
    return found


class Recorder:
    """Pieces of signal on disk, markers in memory; `finish` joins them into --out."""

    def __init__(self, out: Path, info: mne.Info, fmt: str):
        self.out, self.info, self.fmt = out, info, fmt
        self.folder = new_temp_folder(out, RECORDING)
        self.pieces: list[Path] = []
        self.held: list[np.ndarray] = []  # (C, n) volts, not yet on disk
        self.held_samples = 0
        self.markers: list[tuple[float, str, float]] = []  # (LSL stamp, description, duration s)

    def add(self, samples: np.ndarray) -> None:
        self.held.append(samples)
        self.held_samples += samples.shape[1]
        if self.held_samples >= PIECE_S * self.info["sfreq"]:
            self.flush()

    def flush(self) -> None:
        if self.held:
            piece = self.folder / f"piece{len(self.pieces):05d}_raw.fif"
            mne.io.RawArray(np.concatenate(self.held, axis=1), self.info, verbose="error").save(
                piece, fmt=self.fmt, verbose="error")
            self.pieces.append(piece)
            self.held, self.held_samples = [], 0

    def finish(self, timeline: "Timeline", summary: "RecordSummary") -> None:
        """Join the pieces, annotate, save and link into place; the hidden folder goes in any case."""
        try:
            self.flush()
            raw = mne.concatenate_raws([mne.io.read_raw_fif(p, verbose="error") for p in self.pieces],
                                       verbose="error")
            onsets = timeline.index_of(np.array([m[0] for m in self.markers])) / summary.sfreq  # (n_markers,) s
            keep = onsets < raw.n_times / summary.sfreq  # markers before the first sample were refused as they came
            kept = [m for m, k in zip(self.markers, keep) if k]
            summary.left_out, summary.markers = len(self.markers) - len(kept), Counter(m[1] for m in kept)
            # set_annotations replaces all, so the "BAD boundary" marks concatenate_raws puts at the joins go too
            raw.set_annotations(mne.Annotations(np.maximum(onsets[keep], 0.0), [m[2] for m in kept],
                                                [m[1] for m in kept]), verbose="error")
            try:
                summary.parts = self.save(raw, self.out)
            except FileExistsError:
                instead = self.out.with_name(f"{self.out.stem}-{int(time.time())}.fif")
                self.save(raw, instead)
                raise UserInputError(f"{self.out} (or one of its split parts) appeared while recording: the "
                                     f"recording is saved as {instead} instead") from None
        finally:
            self.discard()

    def save(self, raw: mne.io.BaseRaw, out: Path) -> list[str]:
        """Save `raw` as `out` in this recording's folder, in parts past SPLIT_SIZE, then link every part beside
        `out`, `out` itself last, so whoever sees it sees all of it. FileExistsError (nothing linked) when a
        part's name is taken. Returns the parts' names."""
        saved = self.folder / f"save-{out.stem}"  # holds this save's parts only
        saved.mkdir()
        raw.save(saved / out.name, fmt=self.fmt, split_size=SPLIT_SIZE, verbose="error")
        parts = sorted((p for p in saved.iterdir() if p.name != out.name), key=lambda p: int(p.stem.split("-")[-1]))
        linked: list[Path] = []
        try:
            for part in [*parts, saved / out.name]:
                fsync(part)
                os.link(part, out.parent / part.name)  # unlike a rename, never replaces a file that appeared
                linked.append(out.parent / part.name)
        except FileExistsError:
            for link in linked:
                link.unlink()
            raise
        return [out.name] + [p.name for p in parts]

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
