"""What every command shares: the click group, one-line user errors (exit 2), logging, common options."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import UserInputError

log = logging.getLogger("eeg2arm")
FILE = click.Path(dir_okay=False, path_type=Path)
DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      help="auto = CUDA when present, else CPU")
ATOL = click.option("--atol", type=float, default=1e-4, show_default=True,
                    help="Largest allowed max abs error between PyTorch and ONNX Runtime")


class CLIError(click.ClickException):
    """A user error: printed as one `Error: ...` line, exit code 2."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C in a command that does not end itself on it (stream and record do): one line, exit code 130 as a
    shell's, instead of click's bare "Aborted!"."""

    exit_code = 130


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn UserInputError raised by the library into a one-line CLI error with exit code 2, Ctrl-C into one line."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserInputError as e:
            raise CLIError(str(e)) from None
        except KeyboardInterrupt:
            raise Interrupted("interrupted (Ctrl-C): every file written is whole, none is half-written") from None
    return wrapper


class EchoHandler(logging.Handler):
    """Log records as `LEVEL: message` on the current stderr (click.echo looks it up at each call)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname}: {record.getMessage()}", err=True)


@click.group()
@click.version_option(package_name="eeg2arm")
def cli() -> None:
    """Decode band-power EEG for a robot arm: train, infer, export, serve."""
    if not any(isinstance(h, EchoHandler) for h in log.handlers):
        log.addHandler(EchoHandler())
        log.setLevel(logging.INFO)


def command_context(name: str, args: Sequence[object]) -> click.Context:
    """`eeg2arm NAME ARGS` parsed by the command's own parameters (nothing run): a recipe's argument list read the way
    the shell would have it read; UserInputError naming a bad flag or value."""
    try:
        return cli.commands[name].make_context(name, [str(a) for a in args])
    except click.ClickException as e:
        raise UserInputError(f"{name} {' '.join(map(str, args))}: {e.format_message()}") from None


def main() -> None:
    cli(prog_name="eeg2arm")

