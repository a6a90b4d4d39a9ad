"""`eeg2arm stream --view`: a page that shows a running stream as it goes, for the operator and the subject.

    sink.py     ViewSink: one of the stream's sinks; hands each decided frame to a bounded inbox, nothing more
    events.py   Publisher: decided frames -> the page's messages (probabilities, decision and how long it held,
                signal health, the simulated arm, frame rate and latency), on a thread of its own
    arm.py      SimulatedArm: the decisions as examples/arm_controller.py turns them into arm movements
    feed.py     Feed: a ring of the latest messages that each page reads at its own pace
    server.py   ViewServer: the page (static/: plain HTML, CSS and JavaScript, no build step, nothing fetched
                from elsewhere) and its WebSocket, one thread per page
    access.py   who may watch: loopback by default, the service's token rule beyond it

Nothing here runs unless --view is given; closing or reloading a page, or many pages, never touch the stream.
"""
from __future__ import annotations

import contextlib

from ...config import EEGConfig
from ..live import StreamSummary
from ..smoothing import Hysteresis
from .events import About
from .sink import ViewSink

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"


def open_view(stack: contextlib.ExitStack, config: EEGConfig, channels: tuple[str, ...], hysteresis: Hysteresis,
              source: str, backend: str, summary: StreamSummary, host: str | None = None,
              port: int | None = None) -> ViewSink:
    """The view of one stream (on DEFAULT_HOST:DEFAULT_PORT unless told otherwise), serving from now until `stack`
    closes (then the pages are told how it ended)."""
    classes = tuple(config.class_names or [str(k) for k in range(config.n_classes)])
    about = About(classes, tuple(channels), hysteresis, config.frame_step, config.cnn_time_pool, source, backend)
    return stack.enter_context(ViewSink(about, summary, host or DEFAULT_HOST, DEFAULT_PORT if port is None else port))
