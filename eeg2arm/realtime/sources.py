"""Raw EEG as it arrives: chunks (C, n) in µV from a recording (replayed) or a live Lab Streaming Layer stream.

Both pick the model's channels by name, in the model's order, so the online band power matches training.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import mne
import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError

LSL_BUFFER_S = 5.0  # the receiver's ring buffer; polled far more often than it can fill
LSL_POLL_S = 0.005
LSL_CONFIGS = ("lsl_api.cfg", "~/lsl_api/lsl_api.cfg", "/etc/lsl_api/lsl_api.cfg")  # where liblsl looks


def quiet_liblsl() -> None:
    """Point liblsl at our config (log errors only) unless the user has one: liblsl otherwise writes its own INFO
    lines to stderr around our messages. A lab's own lsl_api.cfg (network settings) always wins."""
    if "LSLAPICFG" not in os.environ and not any(Path(p).expanduser().is_file() for p in LSL_CONFIGS):
        os.environ["LSLAPICFG"] = str(Path(__file__).with_name("lsl_api.cfg"))


def check_channels(available: list[str], config: EEGConfig, source: str) -> list[str]:
    missing = [c for c in config.stream_channels if c not in available]
    if missing:
        raise UserInputError(f"{source} lacks the model's channels {missing[:5]}{' ...' if len(missing) > 5 else ''}"
                             f": stream the montage the model was trained on")
    return list(config.stream_channels)


def check_rate(sfreq: float, config: EEGConfig, source: str) -> None:
    if abs(sfreq - config.sfreq) > 1e-6:
        raise UserInputError(f"{source} runs at {sfreq:g} Hz but the model's band power was made at "
                             f"{config.sfreq:g} Hz: stream at {config.sfreq:g} Hz (resample the recording, e.g. "
                             f"with MNE's raw.resample) or train on data prepared at {sfreq:g} Hz")


def recording_chunks(path: str | Path, config: EEGConfig, chunk_s: float = 0.0625,
                     realtime: bool = True) -> Iterator[np.ndarray]:
    """Replay a recording (any format mne.io.read_raw reads) in chunks of chunk_s seconds, (C, n) in µV.

    With `realtime` each chunk is released when its last sample would have been recorded.
    """
    try:
        raw = mne.io.read_raw(path, preload=False, verbose="error")
    except (OSError, ValueError, RuntimeError, TypeError) as e:
        raise UserInputError(f"cannot read {path} ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    picks = check_channels(raw.ch_names, config, str(path))
    check_rate(raw.info["sfreq"], config, str(path))
    data = raw.get_data(picks=picks, units="uV", verbose="error")  # (C, n_samples)
    n = max(1, round(chunk_s * config.sfreq))
    start = time.perf_counter()
    for i in range(0, data.shape[1], n):
        if realtime:
            time.sleep(max(0.0, start + (i + n) / config.sfreq - time.perf_counter()))
        yield data[:, i:i + n]


def lsl_chunks(name: str, config: EEGConfig, timeout: float = 5.0) -> Iterator[np.ndarray]:
    """Samples of the live LSL stream `name` as they arrive, (C, n) in µV (mne-lsl gives volts, MNE's unit).

    `timeout` bounds both the wait for the stream to answer and any silence after: then UserInputError.

    New samples are told apart by their LSL timestamps, so a sample is never yielded twice or skipped while the
    poll interval stays far below the buffer length.
    """
    quiet_liblsl()
    from mne_lsl.stream import StreamLSL

    stream = StreamLSL(bufsize=LSL_BUFFER_S, name=name)
    try:
        stream.connect(timeout=timeout)
    except RuntimeError:
        raise UserInputError(f"no LSL stream named {name!r} answered within {timeout:g} s: check the name "
                             f"(an amplifier's LSL app, or mne_lsl.player.PlayerLSL) and the network") from None
    try:
        picks = check_channels(stream.ch_names, config, f"LSL stream {name!r}")
        check_rate(stream.info["sfreq"], config, f"LSL stream {name!r}")
        last, heard = 0.0, time.monotonic()
        while True:
            data, ts = stream.get_data(picks=picks)  # the whole ring buffer: (C, n), (n,)
            new = ts > last
            if new.any():
                last, heard = ts[new][-1], time.monotonic()
                yield data[:, new] * 1e6
            elif time.monotonic() - heard > timeout:
                raise UserInputError(f"LSL stream {name!r} sent no samples for {timeout:g} s: check the amplifier "
                                     f"(or raise --lsl-timeout)")
            else:
                time.sleep(LSL_POLL_S)
    finally:
        stream.disconnect()
