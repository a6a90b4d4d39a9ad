"""An amplifier app of our own for the live-stream tests (record, stream): a real LSL outlet on loopback sending a
recording's samples at real speed, which can misbehave the ways real amplifiers do."""
from __future__ import annotations

import threading
import time
import uuid

import mne
import numpy as np
from mne_lsl.lsl import StreamInfo, StreamOutlet, local_clock

CHUNK = 16


class Amp(threading.Thread):
    """A StreamOutlet NAME sending `raw`'s samples (float64, at its rate) in chunks of 16, sample j stamped
    start + (j + 1) / sfreq, the end of its period, as it is sent. Started on entering a `with` block; leaving it
    stops the sending and takes the stream off the network.

    Misbehaving: `jitter` moves each chunk's stamps by a uniform draw in ±jitter s (an app stamping its chunks
    as the OS schedules it); from sample `odd_from` on the stamps are `shift` s earlier (a restarted source), or
    with `shift` None nothing more is sent while the stream stays on the network. `cue` = (a numeric marker
    outlet, a sample j, a code): once 1.5 s is sent, the code is sent stamped with sample j's true stamp.

    As amplifier apps send it: with `microvolts` the samples go out as float32 µV and the stream declares channel
    names and types but no units (OpenBCI's GUI and others); `signal` (C, n) in volts replaces the recording's
    (electrodes zeroed or set to NaN), `names` the channel names it declares; the samples in `lost` (slices) are never sent (lost in transit: the stamps of
    the next ones jump).
    """

    def __init__(self, raw: mne.io.BaseRaw, name: str, odd_from: int | None = None, shift: float | None = 0.0,
                 jitter: float = 0.0, cue: tuple[StreamOutlet, int, float] | None = None,
                 source_id: str | None = None, microvolts: bool = False, signal: np.ndarray | None = None,
                 lost: tuple[slice, ...] = (), names: list[str] | None = None):
        super().__init__(daemon=True)
        self.sfreq = raw.info["sfreq"]
        self.info = StreamInfo(name, "eeg", len(raw.ch_names), self.sfreq, "float32" if microvolts else "float64",
                               source_id or uuid.uuid4().hex)
        if microvolts:
            self.info.set_channel_names(names or raw.ch_names)
            self.info.set_channel_types(["eeg"] * len(raw.ch_names))
        else:
            self.info.set_channel_info(raw.info)
        self.outlet: StreamOutlet | None = None  # on the network from entering the `with` block to leaving it
        self.signal = (raw.get_data() if signal is None else signal) * (1e6 if microvolts else 1.0)  # (C, n)
        self.sending = np.ones(self.signal.shape[1], bool)  # (n,) which samples go out
        for part in lost:
            self.sending[part] = False
        self.odd_from = self.signal.shape[1] if odd_from is None else odd_from
        self.shift, self.jitter, self.cue, self.stop = shift, jitter, cue, threading.Event()
        self.sent = 0  # samples pushed so far
        self.rng = np.random.default_rng(0)

    def __enter__(self) -> Amp:
        self.outlet = StreamOutlet(self.info, chunk_size=CHUNK)
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.ident is not None:  # started
            self.join()
        self.outlet = None  # the only reference: the outlet is destroyed, its stream leaves the network

    def run(self) -> None:
        while not self.outlet.wait_for_consumers(timeout=0.1):
            if self.stop.is_set():
                return
        time.sleep(1.0)  # liblsl may drop what is pushed just as an inlet subscribes (mne-lsl waits 0.5 s too)
        start, i, n = local_clock(), 0, self.signal.shape[1]
        while not self.stop.is_set() and i < n:
            j = np.arange(i, min(i + CHUNK, n))
            j = j[self.sending[j]]
            odd = j >= self.odd_from
            if self.shift is None:  # silent from odd_from on
                j, odd = j[~odd], odd[~odd]
            stamps = start + (j + 1) / self.sfreq - np.where(odd, self.shift or 0.0, 0.0)
            if len(j):
                stamps += self.rng.uniform(-self.jitter, self.jitter)
                chunk = np.ascontiguousarray(self.signal[:, j].T, dtype=self.info.dtype)  # (n, C)
                self.outlet.push_chunk(chunk, timestamp=stamps)
                self.sent += len(j)
            i += CHUNK
            if self.cue is not None and i // CHUNK == round(1.5 * self.sfreq) // CHUNK:
                outlet, j, code = self.cue
                outlet.wait_for_consumers(timeout=10)
                outlet.push_sample(np.array([code]), timestamp=start + (j + 1) / self.sfreq)
            time.sleep(max(0.0, start + i / self.sfreq - local_clock()))
