"""The `eeg2arm` command line: thin click commands over the library functions, grouped by what they work on."""
from . import data, model, realtime  # noqa: F401  (importing them registers their commands on the group)
from .common import cli, main

__all__ = ["cli", "main"]
