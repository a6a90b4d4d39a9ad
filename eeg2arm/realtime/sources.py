"""Raw EEG as it arrives: chunks (C, n) in µV with the LSL timestamp of every sample, from a recording (replayed)
or a live Lab Streaming Layer stream; and the LSL plumbing `eeg2arm record` shares (finding a stream, its units).

Both sources pick the model's channels by name, in the model's order, so the online band power matches training.
Timestamps are in the local LSL clock (`mne_lsl.lsl.local_clock`, a monotonic clock in seconds):
- a live stream: the stream's own timestamps, clock offset to the sender corrected (liblsl's clocksync);
- a replayed recording: sample j is stamped t0 + (j + 1) / sfreq, t0 = local_clock() when the replay starts, so a
  sample's stamp is the moment it is released at real speed (with --fast it runs ahead of the clock).

A live stream's stamps jitter (an amplifier app stamps its chunks as the OS schedules it): steps back of up to
JUMP_S are taken as that jitter. Stamps going back further (a restarted source, old samples sent again) or
another stream taking the name with another rate or channel count (an amplifier app restarted with other
settings, which liblsl's recovery would reconnect to when only the rate changed) end a live source with a
one-line error: `stream` and `record` alike.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import mne
import numpy as np

from ..config import EEGConfig
from ..errors import UserInputError
from ..names import pick_channels
from ..recordings import open_recording, same_rate
from .units import StreamUnits

if TYPE_CHECKING:
    from mne_lsl.lsl import StreamInfo, StreamInlet

READ_S = 10.0  # s of a replayed recording read from its file at once: little memory, few reads
LSL_WAIT_S = 0.1  # longest blocking wait for the next sample before the silence check runs again
JUMP_S = 0.1  # stamps this far off the nominal rate are an event (a pause, a restart), closer ones jitter
CHANGE_CHECK_S = 1.0  # after this much silence, look for a stream that took the name with other settings
LSL_CONFIGS = ("lsl_api.cfg", "~/lsl_api/lsl_api.cfg", "/etc/lsl_api/lsl_api.cfg")  # where liblsl looks


class Chunk(NamedTuple):
    samples: np.ndarray  # (C, n) µV
    stamps: np.ndarray  # (n,) LSL timestamps (local clock) of the samples
    gap: float = 0.0  # s of signal lost just before these samples, too long to bridge (eeg2arm.realtime.gaps)


def quiet_liblsl() -> None:
    """Point liblsl at our config (log errors only) unless the user has one: liblsl otherwise writes its own INFO
    lines to stderr around our messages. A lab's own lsl_api.cfg (network settings) always wins."""
    if "LSLAPICFG" not in os.environ and not any(Path(p).expanduser().is_file() for p in LSL_CONFIGS):
        os.environ["LSLAPICFG"] = str(Path(__file__).with_name("lsl_api.cfg"))


def check_rate(sfreq: float, config: EEGConfig, source: str) -> None:
    if not same_rate(sfreq, config.sfreq):
        raise UserInputError(f"{source} runs at {sfreq:g} Hz but the model's band power was made at "
                             f"{config.sfreq:g} Hz: stream at {config.sfreq:g} Hz (resample the recording, e.g. "
                             f"with MNE's raw.resample) or train on data prepared at {sfreq:g} Hz")


def recording_chunks(path: str | Path, config: EEGConfig, chunk_s: float = 0.0625, realtime: bool = True,
                     renames: dict[str, str] | None = None) -> Iterator[Chunk]:
    """Replay a continuous recording (any file `eeg2arm prepare` reads) in chunks of chunk_s seconds, read from the
    file READ_S seconds at a time; its channels picked by the model's names after `renames` (eeg2arm.names).

    With `realtime` each chunk is released when its last sample would have been recorded.
    """
    from mne_lsl.lsl import local_clock

    raw = open_recording(Path(path), resample=None)  # readable and complete, or a one-line error
    if isinstance(raw, mne.BaseEpochs):
        raise UserInputError(f"{path} holds epochs, not a continuous recording: replay the recording they were cut "
                             f"from")
    picks = [raw.ch_names[i] for i in pick_channels(raw.ch_names, config.stream_channels, str(path), renames)]
    check_rate(raw.info["sfreq"], config, str(path))
    n, sfreq = max(1, round(chunk_s * config.sfreq)), config.sfreq
    block = n * max(1, round(READ_S * sfreq / n))  # whole chunks per read
    t0 = local_clock()
    for b0 in range(0, raw.n_times, block):
        data = read_samples(raw, picks, b0, min(b0 + block, raw.n_times))  # (C, <= block)
        for i in range(0, data.shape[1], n):
            stamps = t0 + np.arange(b0 + i + 1, b0 + min(i + n, data.shape[1]) + 1) / sfreq  # (n,)
            if realtime:
                time.sleep(max(0.0, stamps[-1] - local_clock()))
            yield Chunk(data[:, i:i + n], stamps)


def read_samples(raw: mne.io.BaseRaw, picks: list[str], start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the picked channels in µV (C, stop - start), or a one-line error."""
    try:
        return raw.get_data(picks=picks, start=start, stop=stop, units="uV", verbose="error")
    except Exception as e:  # noqa: BLE001 - MNE's readers raise many types (even AssertionError)
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserInputError(f"cannot read {raw.filenames[0]} at sample {start} ({type(e).__name__}: {detail}): "
                             f"give a complete, readable recording") from None


def find_stream(name: str, timeout: float, what: str, hint: str, recover: bool = True) -> "StreamInlet":
    """An open inlet on the LSL stream `name` (clock offsets corrected), or UserInputError after `timeout` s.

    With `recover` liblsl reconnects a lost stream by itself, to any stream with the same source_id (players
    often share one); without it a pull raises mne-lsl's LostError (a RuntimeError) once the stream is gone.
    """
    quiet_liblsl()
    from mne_lsl.lsl import StreamInlet, resolve_streams

    found = resolve_streams(timeout=timeout, name=name, minimum=1) if timeout > 0 else []
    if not found:
        raise UserInputError(f"no LSL {what} named {name!r} answered within {timeout:g} s: {hint}")
    inlet = StreamInlet(found[0], recover=recover, processing_flags=["clocksync"])
    try:
        inlet.open_stream(timeout=max(timeout, 1.0))
    except (TimeoutError, RuntimeError):
        raise UserInputError(f"the LSL {what} {name!r} was found but did not open within {max(timeout, 1.0):g} s: "
                             f"{hint}") from None
    return inlet


def stream_info(inlet: "StreamInlet") -> mne.Info:
    """The stream's channel names, types, units and rate as an mne.Info (mne-lsl reads its XML description)."""
    return inlet.get_sinfo(timeout=5.0).get_channel_info()


def to_volts(info: mne.Info) -> np.ndarray:
    """(C,) factors from the stream's units to SI (volts for EEG): 1e-6 for a stream in microvolts, 1 in volts."""
    return 10.0 ** np.array([ch["unit_mul"] for ch in info["chs"]], dtype=float)


def declared_volts(inlet: "StreamInlet", info: mne.Info) -> np.ndarray | None:
    """(C,) volts per unit as the stream's description declares them; None when a channel declares no unit (then
    liblsl's reading, volts, is a guess: eeg2arm.realtime.units judges them)."""
    units = inlet.get_sinfo(timeout=5.0).get_channel_units()
    return to_volts(info) if units and all(units) else None


def stream_units(inlet: "StreamInlet", info: mne.Info, units: str, source: str) -> StreamUnits:
    return StreamUnits(units, declared_volts(inlet, info), info["sfreq"], source)


def pull(inlet: "StreamInlet", wait: float) -> tuple[np.ndarray, np.ndarray]:
    """Everything the inlet holds, (n, C) and (n,), waiting up to `wait` s for the first sample (n may be 0).

    The blocking pull returns as soon as a sample arrives, so a chunk is not held back by a polling interval.
    """
    first, stamp = inlet.pull_sample(timeout=wait)
    if stamp is None:
        return np.zeros((0, inlet.n_channels)), np.zeros(0)
    rest, stamps = inlet.pull_chunk(timeout=0.0)  # views of the inlet's buffers: copied below
    return np.vstack([np.asarray(first)[None], rest]), np.concatenate([[stamp], stamps])


def going_back(latest: float, stamps: np.ndarray) -> tuple[int, float] | None:
    """(where, by how many s) the stamps (n,) first go back more than JUMP_S before the latest stamp seen (latest:
    -inf before the first chunk); None when they never do. Smaller steps back are jitter."""
    seen = np.maximum.accumulate(np.concatenate([[latest], stamps[:-1]]))  # (n,) the latest stamp before each
    back = np.flatnonzero(stamps < seen - JUMP_S)
    return (int(back[0]), float(seen[back[0]] - stamps[back[0]])) if back.size else None


def went_back(what: str, name: str, seconds: float, consequence: str) -> str:
    return (f"{what} {name!r} sent samples stamped {seconds:.3f} s before the last ones (it restarted, or sent old "
            f"samples again): {consequence}")


class StreamWatch:
    """The name, identity, rate and channel count of the stream an inlet reads, to tell when another stream took
    its name with other settings (an amplifier app restarted with another rate or montage)."""

    def __init__(self, inlet: "StreamInlet", name: str, what: str):
        self.name, self.what, self.uid = name, what, inlet.get_sinfo().uid
        self.sfreq, self.n_channels = inlet.sfreq, inlet.n_channels
        self.looked = time.monotonic()

    def lookup(self, wait: float) -> list["StreamInfo"]:
        from mne_lsl.lsl import resolve_streams

        return resolve_streams(timeout=wait, name=self.name, minimum=1)

    def changed(self, found: list["StreamInfo"]) -> "StreamInfo | None":
        return next((other for other in found if other.uid != self.uid and (
            other.sfreq != self.sfreq or other.n_channels != self.n_channels)), None)

    def changed_after_silence(self, silent_s: float) -> "StreamInfo | None":
        """During a silence, once a CHANGE_CHECK_S: the stream that took the name with other settings, if any."""
        now = time.monotonic()
        if silent_s < CHANGE_CHECK_S or now - self.looked < CHANGE_CHECK_S:
            return None
        self.looked = now
        return self.changed(self.lookup(0.2))

    def change(self, other: "StreamInfo", consequence: str) -> str:
        return (f"{self.what} {self.name!r} changed from {self.n_channels} channels at {self.sfreq:g} Hz to "
                f"{other.n_channels} channels at {other.sfreq:g} Hz {consequence}")


def lsl_chunks(name: str, config: EEGConfig, timeout: float = 5.0, units: str = "auto",
               renames: dict[str, str] | None = None) -> Iterator[Chunk]:
    """Samples of the live LSL stream `name` as they arrive, in µV, with the stream's timestamps; `units` as the
    stream sends them (auto: declared, else judged from the first second, eeg2arm.realtime.units).

    `timeout` bounds both the wait for the stream to answer and any silence after: then UserInputError. liblsl
    reconnects a lost stream by itself (same source_id and channel count); a silence of a second or more (which
    any reconnection takes) is followed by a look for a stream that took the name with other settings, and
    that, or stamps going back, ends the source with UserInputError after the samples before it.
    """
    inlet = find_stream(name, timeout, "stream", "check the name (an amplifier's LSL app, or "
                                                 "mne_lsl.player.PlayerLSL) and the network")
    try:
        info = stream_info(inlet)
        source = f"LSL stream {name!r}"
        picks = pick_channels(info["ch_names"], config.stream_channels, source, renames)
        check_rate(info["sfreq"], config, source)
        scaler = stream_units(inlet, info, units, source)
        watch, latest = StreamWatch(inlet, name, "LSL stream"), -np.inf
        heard = time.monotonic()
        while True:
            samples, stamps = pull(inlet, LSL_WAIT_S)
            silent_s = time.monotonic() - heard
            if len(stamps) and silent_s >= CHANGE_CHECK_S:  # liblsl reconnects after such silences only: to what?
                changed = watch.changed(watch.lookup(0.2))
            else:
                changed = None if len(stamps) else watch.changed_after_silence(silent_s)
            if changed is not None:
                raise UserInputError(watch.change(changed, "while decoding: decoding stopped there (the model "
                                                           "needs the stream it was trained on)"))
            if len(stamps):
                heard = time.monotonic()
                back = going_back(latest, stamps)
                cut = back[0] if back else len(stamps)
                if cut:
                    latest = max(latest, float(stamps[:cut].max()))
                    volts, ready = scaler.push(samples[:cut], stamps[:cut])  # (m, C), (m,)
                    if len(ready):
                        yield Chunk(volts.T[picks] * 1e6, ready)
                if back:
                    raise UserInputError(went_back("LSL stream", name, back[1], "decoding stopped before them"))
            elif silent_s > timeout:
                raise UserInputError(f"LSL stream {name!r} sent no samples for {timeout:g} s: check the amplifier "
                                     f"(or raise --lsl-timeout)")
    finally:
        inlet.close_stream()
