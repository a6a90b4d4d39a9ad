"""The view as one of `eeg2arm stream`'s sinks: `send` only appends the decided frame to a bounded inbox (the
oldest go when the page side falls behind) and wakes the publishing thread, which builds the messages (events.py)
and puts them in the feed the pages read (server.py). The stream's thread does nothing else for the view."""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from types import TracebackType

from ..live import Decided, StreamSummary
from .access import Access
from .events import About, Publisher
from .feed import Feed
from .server import ViewServer, listening_socket

INBOX = 256  # decided frames waiting for the publisher at most


class ViewSink:
    """Opens the view at once (bound before the stream starts); a context manager whose exit tells the pages how
    the stream ended (the summary line, or the error) and stops serving."""

    def __init__(self, about: About, summary: StreamSummary, host: str, port: int):
        access = Access(host)  # refuses an exposed host without a token
        self.summary = summary
        self.publisher = Publisher(about, summary)
        self.feed = Feed(keep=int(about.history_s / (about.frame_step * about.pool)) + 2)
        self.inbox: deque[tuple[Decided, bool, float]] = deque(maxlen=INBOX)
        self.wake, self.done = threading.Event(), False
        self.server = ViewServer(listening_socket(host, port), self.feed, about.meta(), access)
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.server.port}/{access.url_hint()}"
        self.thread = threading.Thread(target=self.publish, name="eeg2arm-view-publisher", daemon=True)
        self.thread.start()

    def send(self, decided: Decided, changed: bool) -> None:
        self.inbox.append((decided, changed, time.perf_counter()))
        self.wake.set()

    def publish(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            while self.inbox:
                self.feed.put(self.publisher.decision(*self.inbox.popleft()))
            if self.done:
                return

    def __enter__(self) -> ViewSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()
        how = "interrupted" if self.summary.stopped_by else "error" if error is not None else "ended"
        self.feed.end(json.dumps({"type": "end", "how": how, "summary": self.summary.line(),
                                  "error": None if error is None else str(error)}))
        self.server.close()
