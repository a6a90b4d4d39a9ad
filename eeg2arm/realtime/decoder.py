"""Incremental (streaming) inference: one pooled frame per step, state carried between steps.

A step takes the `cnn_time_pool` newest band-power frames (B, C, F, pool) and returns that pooled frame's logits,
equal to `EEGModel.forward_seq` on the whole stream so far. The state is fixed-size, so a step costs the same
however long the stream has run:

    conv1  (B, C, 1, F, D)        last standardized input frames, for the first causal conv (D = k-1) and the
                                  linear readout (D = max(k-1, N - pool) with config.readout_frames = N)
    conv2  (B, maps, 1, F, k-1)   last pooled outputs of the first block, for the second conv
    keys   (L, B, H, W, hs)       per-layer attention keys of the last W = config.context pooled frames
    values (L, B, H, W, hs)
    seen   ()                     pooled frames seen so far (masks cache slots not yet filled)

StreamingDecoder is a plain nn.Module over tensors so that it exports to ONNX as a step graph. An ensemble
(`train --ensemble N`) streams through EnsembleStreamingDecoder: its members' states side by side in the same five
tensors (conv1 and conv2 along axis 1, keys and values along the layer axis), its logits their mean.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

from ..ensemble import EEGEnsemble
from ..errors import UserInputError
from ..model import EEGModel

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class StreamingDecoder(nn.Module):
    def __init__(self, model: EEGModel):
        super().__init__()
        c = model.config
        if not c.streamable:
            raise UserInputError("streaming needs a model trained without --normalize (its z-score uses the whole "
                                 "window), without clip_length and with a finite context window")
        self.model = model.eval()
        self.pool = c.cnn_time_pool
        distance = torch.arange(c.context - 1, -1, -1, device=model.input_mean.device)[None, :]  # (1, W) per cache slot
        self.register_buffer("slot_distance", distance, persistent=False)
        self.register_buffer("slot_bias", model.attention_bias(distance), persistent=False)  # (H, 1, W)
        self.input_history = max(model.stem[0].history, c.readout_frames - self.pool)  # conv1's frames

    def initial_state(self, batch: int = 1) -> State:
        c, m = self.model.config, self.model
        device = m.input_mean.device
        hist1, hist2 = self.input_history, m.stem[1].history
        maps = c.n_electrodes * c.depth_multiplier
        kv = torch.zeros(c.n_layers, batch, c.n_heads, c.context, c.frame_embed // c.n_heads, device=device)
        return (torch.zeros(batch, c.n_electrodes, 1, c.n_bands, hist1, device=device),
                torch.zeros(batch, maps, 1, c.n_bands, hist2, device=device),
                kv, kv.clone(), torch.zeros((), dtype=torch.int64, device=device))

    def forward(self, frames: torch.Tensor, conv1: torch.Tensor, conv2: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """frames (B, C, F, pool) + state -> logits (B, K), probs (B, K) and the next state."""
        m = self.model
        block1, block2 = m.stem[0], m.stem[1]
        x = torch.cat([conv1, m.standardize(frames).unsqueeze(2)], dim=-1)  # (B, C, 1, F, D + pool)
        h = block1.convolve(x[..., x.shape[-1] - block1.history - self.pool:])  # (B, maps, 1, F, pool)
        h = h.mean(dim=-1, keepdim=True)  # (B, maps, 1, F, 1): the average pool of this step
        h2 = torch.cat([conv2, h], dim=-1)  # (B, maps, 1, F, k)
        e = m.embed_frames(block2.convolve(h2))  # (B, 1, E)

        bias = self.slot_bias.masked_fill(self.slot_distance > seen, float("-inf"))  # (H, 1, W); unfilled slots hidden
        new_keys, new_values = [], []
        for i, block in enumerate(m.blocks):
            e, (k, v) = block(e, bias, past=(keys[i, :, :, 1:], values[i, :, :, 1:]))  # k, v: (B, H, W, hs)
            new_keys.append(k)
            new_values.append(v)
        logits = m.head(m.ln_f(e))[:, 0]  # (B, K)
        if m.config.readout_frames:  # the last N frames, as forward_seq reads them at this pooled frame's end
            logits = logits + m.readout_logits(x[..., x.shape[-1] - m.config.readout_frames:].squeeze(2))[..., 0]
        return (logits, torch.softmax(logits, dim=-1), x[..., x.shape[-1] - self.input_history:],
                h2[..., 1:], torch.stack(new_keys), torch.stack(new_values), seen + 1)


class EnsembleStreamingDecoder(nn.Module):
    """StreamingDecoder's step for an ensemble: the same five state tensors, each member's slice side by side."""

    def __init__(self, ensemble: EEGEnsemble):
        super().__init__()
        self.members = nn.ModuleList(StreamingDecoder(member) for member in ensemble.members)
        one = self.members[0].initial_state(1)
        self.sizes = (one[0].shape[1], one[1].shape[1], one[2].shape[0])  # each member's conv1, conv2 and layers

    def initial_state(self, batch: int = 1) -> State:
        states = [member.initial_state(batch) for member in self.members]
        return (torch.cat([s[0] for s in states], dim=1), torch.cat([s[1] for s in states], dim=1),
                torch.cat([s[2] for s in states]), torch.cat([s[3] for s in states]), states[0][4])

    def forward(self, frames: torch.Tensor, conv1: torch.Tensor, conv2: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """As StreamingDecoder.forward, each member on its slice of the state; logits the members' mean."""
        c1, c2, layers = self.sizes
        outs = [member(frames, conv1[:, i * c1:(i + 1) * c1], conv2[:, i * c2:(i + 1) * c2],
                       keys[i * layers:(i + 1) * layers], values[i * layers:(i + 1) * layers], seen)
                for i, member in enumerate(self.members)]
        logits, _, next_conv1, next_conv2, next_keys, next_values, _ = zip(*outs)
        mean = torch.stack(logits).mean(dim=0)  # (B, K)
        return (mean, torch.softmax(mean, dim=-1), torch.cat(next_conv1, dim=1), torch.cat(next_conv2, dim=1),
                torch.cat(next_keys), torch.cat(next_values), seen + 1)


def streaming_decoder(model: EEGModel | EEGEnsemble) -> StreamingDecoder | EnsembleStreamingDecoder:
    """The step module of a model: one frame group + state in, logits, probs and the next state out."""
    return EnsembleStreamingDecoder(model) if isinstance(model, EEGEnsemble) else StreamingDecoder(model)


class TorchStep:
    """A StreamingDecoder for one stream behind the plain step interface Streamer uses: numpy in, numpy out.

    Other backends (the ONNX step graph in export/) offer the same three members.
    """

    def __init__(self, model: EEGModel | EEGEnsemble):
        self.decoder = streaming_decoder(model)
        self.config = model.config
        self.device = next(model.parameters()).device

    def initial_state(self) -> State:
        return self.decoder.initial_state(1)

    @torch.inference_mode()
    def __call__(self, group: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """group (1, C, F, pool) -> probs (K,) and the next state."""
        with _without_onednn():
            _, probs, *state = self.decoder(torch.from_numpy(group).to(self.device), *state)
        return probs[0].cpu().numpy(), tuple(state)


_onednn_lock = threading.Lock()
_onednn_steps = 0  # steps running now, in any thread
_onednn_was = True  # the switch as the first of them found it


@contextmanager
def _without_onednn() -> Iterator[None]:
    """Run CPU ops on PyTorch's own kernels: for one frame, oneDNN's per-call setup of the convs and GELUs costs
    more than their arithmetic (a step takes ~0.7 ms instead of ~1.0 ms on our 2-core VM, docs/benchmarks.md).
    The switch is process-wide: ops other threads run during a step skip oneDNN too (slower, never wrong). Steps
    in several threads are counted, so the last one out restores the switch as the first one found it."""
    global _onednn_steps, _onednn_was
    with _onednn_lock:
        if _onednn_steps == 0:
            _onednn_was = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
        _onednn_steps += 1
    try:
        yield
    finally:
        with _onednn_lock:
            _onednn_steps -= 1
            if _onednn_steps == 0:
                torch.backends.mkldnn.enabled = _onednn_was
