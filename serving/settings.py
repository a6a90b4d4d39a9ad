"""The service's settings, each from an EEG2ARM_* environment variable read once at start-up (docs/serving.md).

    settings = Settings.from_env()       # UserInputError naming the variable when one is not valid
    settings.limits()                    # what /metadata lists under "limits"

The request limits bound the work of any one request. The model's memory grows with the frames it sees (windows
x T, about 11 KB per frame for the demo model) and its attention with T squared per window, so both are capped;
a JSON body is refused from its Content-Length and its counts of numbers, lists and levels before it is parsed, and
a .npy body from its header before its array is allocated (docs/serving.md states the measured bound).
"""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass

from eeg2arm.errors import UserInputError

MiB = 2**20
OPEN_PATHS = frozenset({"/livez", "/readyz"})  # the health probes: they answer without the token
MIN_TOKEN = 16  # characters of EEG2ARM_API_TOKEN: `openssl rand -hex 32` gives 64
# A WebSocket message's limit stays below uvicorn's own (its ws_max_size, 16 MiB, which BentoML gives no way to set):
# over ours the service closes the connection with 1009 once the message is read, which the client receives; over
# uvicorn's, uvicorn closes the socket while the client is still sending, and the close frame is mostly lost.
MAX_MESSAGE_BYTES = 8 * MiB


def env_number(name: str, default: float, kind: type = int) -> float:
    """A positive number from the environment variable `name`, or `default` when it is unset."""
    text = os.environ.get(name, "")
    try:
        value = kind(text) if text else default
    except ValueError:
        value = 0
    if not value > 0:  # also NaN
        raise UserInputError(f"{name}={text!r} is not a positive {kind.__name__}: set it like {name}={default} "
                             f"or unset it (docs/serving.md)")
    return value


def env_flag(name: str, default: bool) -> bool:
    """0 or 1 from the environment variable `name`, or `default` when it is unset."""
    text = os.environ.get(name, "")
    if text not in ("", "0", "1"):
        raise UserInputError(f"{name}={text[:40]!r} must be 0 or 1: set it like {name}={int(default)} or unset it "
                             f"(docs/serving.md)")
    return default if not text else text == "1"


def env_token(name: str) -> str | None:
    """The API token from the environment variable `name`, None when it is unset; UserInputError when it is set
    but empty or short (an empty one used to mean no token at all, silently)."""
    token = os.environ.get(name)
    if token is not None and len(token) < MIN_TOKEN:
        size = "empty" if not token else f"{len(token)} characters long"
        raise UserInputError(f"{name} is set but {size}: use at least {MIN_TOKEN} random characters, e.g. "
                             f"{name}=$(openssl rand -hex 32), or unset it to serve without a token")
    if token is not None and not re.fullmatch(r"[\x21-\x7e]+", token):  # a header value: no spaces, ASCII
        raise UserInputError(f"{name} holds spaces or characters outside printable ASCII, so no request could send "
                             f"it: use e.g. {name}=$(openssl rand -hex 32)")
    return token


def env_hosts(name: str) -> tuple[str, ...]:
    """Bare host names, comma-separated, from the environment variable `name` (lower case, no trailing dot), or
    "*"; UserInputError for an entry with a scheme, a port or a wildcard, which would never match a Host header."""
    names = tuple(n.strip().lower().rstrip(".") for n in os.environ.get(name, "").split(",") if n.strip())
    for host in names:
        if host != "*" and not re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*", host):
            raise UserInputError(f"{name}: {host[:60]!r} is not a bare host name: give names like eeg2arm.lab, "
                                 f"without scheme, port or wildcard ('*' alone means any)")
    return names


def host_allowed(host: str | None, names: Collection[str]) -> bool:
    """Whether a Host header (name or address, maybe with a port) is one a server with these allowed `names`
    (env_hosts) answers to: IP addresses, localhost and names under it, the names, or any with "*"."""
    if host is None:  # HTTP/1.0 may omit it; browsers never do
        return True
    text = host.strip().lower()
    name = text[1:text.find("]")] if text.startswith("[") else text.rsplit(":", 1)[0]  # [::1]:3000, host:3000
    name = name.rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return "*" in names or name in names or name == "localhost" or name.endswith(".localhost")


@dataclass(frozen=True)
class Settings:
    max_T: int = 512  # frames per window
    max_windows: int = 1024  # windows per request
    max_frames: int = 4096  # windows x T per request
    max_stream_frames: int = 1024  # frames per stream step (HTTP request or WebSocket message)
    max_body_bytes: int = 16 * MiB  # one request body
    max_inflight_bytes: int = 32 * MiB  # the bodies a worker works on at once (serving/budget.py)
    body_timeout_s: float = 10.0  # to send a request's body, else 408 (its headers: the proxy's, deploy/)
    max_streams: int = 64  # open stream sessions per worker
    stream_idle_s: float = 60.0  # a stream session idle this long is closed
    workers: int = 1  # server processes
    batching: bool = True  # concurrent /predict requests share model calls
    api_token: str | None = None  # when set, every route but the health probes needs Authorization: Bearer <token>
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides IP addresses and localhost; "*": any

    @classmethod
    def from_env(cls) -> Settings:
        d = cls()
        settings = cls(
            max_T=env_number("EEG2ARM_MAX_T", d.max_T),
            max_windows=env_number("EEG2ARM_MAX_WINDOWS", d.max_windows),
            max_frames=env_number("EEG2ARM_MAX_FRAMES", d.max_frames),
            max_stream_frames=env_number("EEG2ARM_MAX_STREAM_FRAMES", d.max_stream_frames),
            max_body_bytes=int(env_number("EEG2ARM_MAX_BODY_MB", d.max_body_bytes / MiB, float) * MiB),
            max_inflight_bytes=int(env_number("EEG2ARM_MAX_INFLIGHT_MB", d.max_inflight_bytes / MiB, float) * MiB),
            body_timeout_s=env_number("EEG2ARM_BODY_TIMEOUT_S", d.body_timeout_s, float),
            max_streams=env_number("EEG2ARM_MAX_STREAMS", d.max_streams),
            stream_idle_s=env_number("EEG2ARM_STREAM_IDLE_S", d.stream_idle_s, float),
            workers=env_number("EEG2ARM_WORKERS", d.workers),
            batching=env_flag("EEG2ARM_BATCHING", d.batching),
            api_token=env_token("EEG2ARM_API_TOKEN"),
            allowed_hosts=env_hosts("EEG2ARM_ALLOWED_HOSTS"),
        )
        if settings.max_inflight_bytes < settings.max_body_bytes:
            raise UserInputError(f"EEG2ARM_MAX_INFLIGHT_MB ({settings.max_inflight_bytes / MiB:g}) is below "
                                 f"EEG2ARM_MAX_BODY_MB ({settings.max_body_bytes / MiB:g}): a body of the largest "
                                 f"size could never be worked on; raise the first or lower the second")
        return settings

    @property
    def max_message_bytes(self) -> int:
        """One WebSocket message: EEG2ARM_MAX_BODY_MB, at most MAX_MESSAGE_BYTES."""
        return min(self.max_body_bytes, MAX_MESSAGE_BYTES)

    def limits(self) -> dict[str, float]:
        """The per-request limits and timeouts, as /metadata lists them."""
        names = ("max_T", "max_windows", "max_frames", "max_stream_frames", "max_body_bytes", "max_inflight_bytes",
                 "body_timeout_s", "max_streams", "stream_idle_s")
        return {**{k: v for k, v in asdict(self).items() if k in names}, "max_message_bytes": self.max_message_bytes}
