"""What `bentoml serve` says at start-up, before any worker starts: one line `Error: ...` for a setting or model it
cannot serve with (instead of a 61-line traceback ending in the reason), one warning line for a network bind
without a token.

    with one_line_errors():              # UserInputError -> SystemExit("Error: ..."): exit code 1, one line
        settings = Settings.from_env()
        warn_if_exposed(settings)
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import Iterator

import click

from eeg2arm.errors import UserInputError

from .settings import Settings

log = logging.getLogger("eeg2arm")

EXPOSED = ("serving on {host} without EEG2ARM_API_TOKEN: anyone who can reach this machine can use the model; set "
           "EEG2ARM_API_TOKEN=$(openssl rand -hex 32) and send it as 'Authorization: Bearer <token>' (docs/deploy.md)")


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """A UserInputError raised inside ends the process with its message as one line on stderr and exit code 1."""
    try:
        yield
    except UserInputError as e:
        raise SystemExit(f"Error: {e}") from None


def serve_host() -> str | None:
    """The address `bentoml serve` was asked to bind (--host or BENTOML_HOST: click has parsed both into the serve
    command's parameters), or None where there is no such command (a worker, `bentoml build`, an import) or none
    was given (then the service's own default, 127.0.0.1)."""
    context = click.get_current_context(silent=True)
    return None if context is None else context.params.get("host")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def warn_if_exposed(settings: Settings) -> None:
    """One warning line when the server is asked to listen beyond loopback and no token guards it."""
    host = serve_host()
    if host is not None and not is_loopback(host) and settings.api_token is None:
        log.warning(EXPOSED.format(host=host))
