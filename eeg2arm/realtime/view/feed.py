"""The view's events on their way from the stream to the pages: a bounded ring that every page reads at its own
pace. A page that falls behind loses the oldest events (it is told how many), never slows the stream or the other
pages; a page that opens gets the events the ring still holds (the traces' history), then the new ones."""
from __future__ import annotations

import threading
from collections import deque


class Feed:
    """Numbered events (1, 2, ...) in a ring of the last `keep`, and the end of the stream."""

    def __init__(self, keep: int):
        self._events: deque[tuple[int, str]] = deque(maxlen=keep)
        self._last = 0  # the number of the newest event
        self._end: str | None = None
        self._changed = threading.Condition()

    def put(self, event: str) -> None:
        with self._changed:
            self._last += 1
            self._events.append((self._last, event))
            self._changed.notify_all()

    def end(self, event: str) -> None:
        """The stream ended: `event` says how; pages get it after the events before it."""
        with self._changed:
            self._end = event
            self._changed.notify_all()

    def after(self, seen: int, wait: float) -> tuple[list[tuple[int, str]], int, str | None]:
        """The events numbered after `seen` (waiting up to `wait` s for one or for the end), how many of those the
        ring no longer holds, and the end event once the stream has ended (it follows the events returned)."""
        with self._changed:
            self._changed.wait_for(lambda: self._last > seen or self._end is not None, wait)
            new = [(n, event) for n, event in self._events if n > seen]
            lost = (new[0][0] if new else self._last + 1) - seen - 1
            return new, lost, self._end
