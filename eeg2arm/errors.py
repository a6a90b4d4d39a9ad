"""The one exception type for mistakes a user can fix (bad files, shapes, flags), and how its messages show values."""

from collections.abc import Callable


class UserInputError(ValueError):
    """A problem with the user's input. The message says what was wrong and how to fix it.

    The CLI turns it into one line and exit code 2; the service into a 400 response.
    """


BRIEF = 60  # characters of a value an error message shows


def brief(value: object, show: Callable[[object], str] = repr) -> str:
    """show(value), cut to BRIEF characters (a recipe's 64 channel names or CSP filters would fill a screen)."""
    text = show(value)
    if len(text) <= BRIEF:
        return text
    return f"{text[:BRIEF]}... ({len(value)} in all)" if isinstance(value, (list, tuple)) else f"{text[:BRIEF]}..."


def first_difference(key: str, theirs: object, ours: object) -> tuple[str, object, object]:
    """(key, theirs, ours) narrowed, for long lists of one length (nested too, as CSP filters are), to the first
    entry where they differ: ("key[i][j]", that entry of theirs, of ours)."""
    while isinstance(theirs, (list, tuple)) and isinstance(ours, (list, tuple)) and len(theirs) == len(ours) \
            and len(repr(theirs)) > BRIEF:
        at = next((i for i, (t, o) in enumerate(zip(theirs, ours)) if t != o), None)
        if at is None:
            break
        key, theirs, ours = f"{key}[{at}]", theirs[at], ours[at]
    return key, theirs, ours


def difference(key: str, theirs: object, ours: object) -> str:
    """"key=THEIRS (now OURS)", narrowed to the first entry where long lists differ (first_difference)."""
    key, theirs, ours = first_difference(key, theirs, ours)
    return f"{key}={brief(theirs)} (now {brief(ours)})"
