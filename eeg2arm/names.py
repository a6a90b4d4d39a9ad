"""A source's channels matched to the model's by name, after the user's renames (`--rename OLD=NEW`,
`--rename-file`): another amplifier spells them otherwise (`C3..`, `EEG C3`) or does not name them at all."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from .errors import UserInputError

log = logging.getLogger("eeg2arm")


def parse_renames(pairs: tuple[str, ...] = (), path: Path | None = None) -> dict[str, str]:
    """{source's name: the model's name} from OLD=NEW pairs and a file (JSON object, or OLD NEW per line)."""
    mapped: list[tuple[str, str]] = []  # (OLD, NEW) in the order given
    if path is not None:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UserInputError(f"--rename-file {path} cannot be read ({type(e).__name__})") from None
        try:
            loaded = json.loads(text, object_pairs_hook=list)  # [(OLD, NEW), ...]: a key given twice stays visible
        except json.JSONDecodeError:
            loaded = [tuple(line.split(None, 1)) for line in text.splitlines() if len(line.split(None, 1)) == 2]
        if not isinstance(loaded, list) or not loaded or not all(isinstance(p, tuple) for p in loaded):
            raise UserInputError(f"--rename-file {path} maps no channel: give a JSON object {{\"OLD\": \"NEW\"}} or "
                                 f"lines 'OLD NEW'")
        mapped += [(str(old).strip(), str(new).strip()) for old, new in loaded]
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UserInputError(f"--rename {pair!r} must be OLD=NEW (the source's name = the model's), e.g. C3..=C3")
        mapped.append((old.strip(), new.strip()))
    olds = [old for old, _ in mapped]
    twice = sorted({old for old in olds if olds.count(old) > 1})
    if twice:
        raise UserInputError(f"--rename/--rename-file map {', '.join(twice[:4])} more than once: give each channel "
                             f"one new name")
    return dict(mapped)


def warn_unknown(unknown: list[str], lacking: str, reader: str) -> None:
    """One warning naming the renames' OLD names nothing read has (`lacking`: "X has no channel", "no file has a
    channel"; `reader`: "source", "file"): a typo, or a rename file written for another amplifier."""
    if unknown:
        log.warning("%s %s to rename: --rename OLD=NEW takes the %s's own name as OLD", lacking,
                    ", ".join(unknown[:6]) + (" ..." if len(unknown) > 6 else ""), reader)


def pick_channels(available: list[str], wanted: tuple[str, ...], source: str,
                  renames: dict[str, str] | None = None) -> list[int]:
    """Indices into `available` of the `wanted` channels, in their order, after `renames`; a one-line error naming
    the missing ones and how to map them."""
    warn_unknown([old for old in renames or {} if old not in available], f"{source} has no channel", "source")
    renamed = [(renames or {}).get(name, name) for name in available]
    missing = [c for c in wanted if c not in renamed]
    if not missing:
        return [renamed.index(c) for c in wanted]
    listed = f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
    raise UserInputError(f"{source} lacks the model's channels {listed}: {channel_fix(missing, renamed)}")


def channel_fix(missing: list[str], names: list[str]) -> str:
    """How to give the `missing` channels from a source's `names`: the --rename each seems to be spelled as, or its
    names and the options to map them."""
    def loose(name: str) -> str:  # what spellings of one electrode share: C3.., c3, EEG C3
        return name.strip(" .").lower().removeprefix("eeg").strip(" -_")

    spelled = {loose(name): name for name in names}
    guesses = {c: spelled[loose(c)] for c in missing if loose(c) in spelled}
    if guesses:
        shown = " ".join(f"--rename {old}={new}" for new, old in list(guesses.items())[:4])
        more = f" ... ({len(guesses)} in all: a --rename-file of OLD NEW lines takes them at once)"
        return f"map them with {shown}" + (more if len(guesses) > 4 else " (or a --rename-file of OLD NEW lines)")
    return (f"its channels are {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}: map them with --rename "
            f"OLD=NEW or a --rename-file of OLD NEW lines, or use the montage the model was trained on")
