"""EEGModel: band-power EEG (B, C electrodes, F bands, T frames) -> class logits.

    (B, C, F, T) --z-score (config.normalize)--> depthwise conv (F, T) per electrode, time pool
    --> depthwise conv (GELU after each, unless config.linear_stem) --> 1x1x1 mix across electrodes, GELU
    --> flatten per frame --> LazyLinear to frame_embed
    --> causal Transformer over frames --> head: per-frame logits (B, T', K); forward() keeps the last frame.

With config.readout_frames = N > 0, a linear readout of the last N standardized input frames (a causal conv over
time, initialised to zero, weight decay like the rest) is added to each pooled frame's logits: a linear map of the
features reads small EEG sets well, and the network learns what it misses (docs/accuracy.md, stop 24).

Everything is causal in time, so forward_seq() on a growing stream never revises a past frame's output.
With config.ensemble = N > 1 the model is N of these with their logits averaged (eeg2arm.ensemble.build_model).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import EEGConfig
from .errors import UserInputError
from .realtime.smoothing import Hysteresis  # noqa: F401  (the guide imports it from the model module)


def zscore(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample z-score over (F, T) for each electrode. x: (B, C, F, T)."""
    var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)  # (B, C, 1, 1)
    return (x - mean) / torch.sqrt(var + eps)


class DepthwiseBlock(nn.Module):
    """Conv over (F, T) within each input channel group, causal in time (left padding), GELU unless linear, then
    time pooling."""

    def __init__(self, ch_in: int, ch_out: int, kernel_bands: int, kernel_time: int, pool: int, linear: bool):
        super().__init__()
        self.activation = nn.Identity() if linear else nn.GELU()
        self.history = kernel_time - 1  # past frames each output needs
        self.band_pad = (0, 0, kernel_bands // 2, (kernel_bands - 1) // 2)  # (T, F): same size over bands
        self.conv = nn.Conv3d(ch_in, ch_out, (1, kernel_bands, kernel_time), groups=ch_in)
        self.pool = nn.AvgPool3d((1, 1, pool)) if pool > 1 else nn.Identity()

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """x holds `history` frames before the T it answers for: (B, ch_in, 1, F, history + T) -> (B, ch_out, 1, F, T)."""
        return self.activation(self.conv(F.pad(x, self.band_pad)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, ch_in, 1, F, T) -> (B, ch_out, 1, F, T // pool)
        return self.pool(self.convolve(F.pad(x, (self.history, 0))))  # zeros before the first frame: causal


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal, windowed mask and ALiBi recency bias.

    ALiBi (a per-head penalty proportional to the distance between frames) gives the model a sense of order
    that depends only on relative position, so any T works and no position table limits the stream.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, E), bias (H, T, past + T) -> (B, T, E) and the keys/values (B, H, past + T, hs) it attended to."""
        B, T, E = x.shape
        q, k, v = (t.view(B, T, self.n_heads, E // self.n_heads).transpose(1, 2)
                   for t in self.qkv(x).split(E, dim=2))  # (B, H, T, hs)
        if past is not None:  # streaming: keys and values of earlier frames come from the cache
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(B, T, E))), (k, v)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, bias: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.ln1(x), bias, past)  # (B, T, E)
        x = x + a
        return x + self.mlp(self.ln2(x)), kv


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Geometric per-head slopes 2^(-8 h / H), as in ALiBi (Press et al., 2022)."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])


class EEGModel(nn.Module):
    def __init__(self, config: EEGConfig):
        super().__init__()
        self.config = config
        c = config
        maps = c.n_electrodes * c.depth_multiplier
        self.stem = nn.Sequential(
            DepthwiseBlock(c.n_electrodes, maps, c.kernel_bands, c.kernel_time, c.cnn_time_pool, c.linear_stem),
            DepthwiseBlock(maps, maps, c.kernel_bands, c.kernel_time, 1, c.linear_stem),
        )
        self.mix = nn.Sequential(nn.Conv3d(maps, c.spatial_filters, 1), nn.GELU(), nn.Dropout(c.dropout))  # 1x1x1: mixes electrodes
        self.embed = nn.LazyLinear(c.frame_embed)  # in_features = spatial_filters * F, found on the first forward
        self.ln_embed = nn.LayerNorm(c.frame_embed)
        self.blocks = nn.ModuleList(TransformerBlock(c.frame_embed, c.n_heads, c.dropout) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.frame_embed)
        self.head = nn.Linear(c.frame_embed, c.n_classes)
        if c.readout_frames:
            self.readout = nn.Conv1d(c.n_electrodes * c.n_bands, c.n_classes, c.readout_frames)
            nn.init.zeros_(self.readout.weight)  # training starts from the network alone
            nn.init.zeros_(self.readout.bias)
        self.register_buffer("slopes", alibi_slopes(c.n_heads), persistent=False)
        # Per (electrode, band) standardization learnt from the training set (set_input_stats); saved with the weights.
        self.register_buffer("input_mean", torch.zeros(c.n_electrodes, c.n_bands, 1))
        self.register_buffer("input_std", torch.ones(c.n_electrodes, c.n_bands, 1))

    @torch.no_grad()
    def silence_network(self) -> None:
        """Zero the head, so the network adds nothing to the logits until it trains (the readout speaks alone)."""
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @torch.no_grad()
    def set_input_stats(self, X: torch.Tensor, shared: bool = False) -> None:
        """Fix the input standardization to the mean and std of training windows X (N, C, F, T) over N and T; with
        `shared`, one std for every feature (the root of their mean variance), so that features already on one scale
        (tangent vectors) keep their relative sizes."""
        std, mean = torch.std_mean(X.float().to(self.input_mean.device), dim=(0, 3), correction=0)  # (C, F)
        if shared:
            std = std.square().mean().sqrt().expand_as(std)
        self.input_mean.copy_(mean[..., None])
        self.input_std.copy_(std.clamp_min(1e-6)[..., None])

    def check_input(self, x: torch.Tensor) -> None:
        """Raise UserInputError unless x is (B, C, F, T) with this model's C, F and T >= min_frames."""
        c = self.config
        if x.dim() != 4:
            raise UserInputError(f"expected input (B, C, F, T) with 4 dims, got shape {tuple(x.shape)}")
        if x.shape[1] != c.n_electrodes or x.shape[2] != c.n_bands:
            raise UserInputError(f"input has C={x.shape[1]}, F={x.shape[2]} but the model expects "
                                 f"C={c.n_electrodes}, F={c.n_bands}")
        if x.shape[3] < c.min_frames:
            raise UserInputError(f"input has T={x.shape[3]} frames; this model needs at least T={c.min_frames}")

    def attention_bias(self, dist: torch.Tensor) -> torch.Tensor:
        """(H, Tq, Tk) additive bias from query-to-key distances dist (Tq, Tk): -slope * distance for the last
        `context` frames up to the query itself, -inf for the future and for frames beyond the context window."""
        bias = -self.slopes[:, None, None] * dist.float()  # (H, Tq, Tk)
        hidden = dist < 0
        if self.config.context is not None:
            hidden = hidden | (dist >= self.config.context)
        return bias.masked_fill(hidden, float("-inf"))

    def standardized_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) band power -> (B, C, F, T_seen): the frames the model sees, standardized."""
        self.check_input(x)
        if self.config.clip_length is not None:
            x = x[..., -self.config.clip_length:]  # the model sees the last clip_length frames
        if self.config.normalize:
            x = zscore(x)
        return self.standardize(x)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, F, T)
        return (x - self.input_mean) / self.input_std

    def embed_frames(self, h: torch.Tensor) -> torch.Tensor:
        """Stem output (B, maps, 1, F, T') -> electrode mix -> (B, T', E) frame embeddings."""
        h = self.mix(h)  # (B, S, 1, F, T')
        B, S, _, F_, T = h.shape
        h = h.reshape(B, S * F_, T).transpose(1, 2)  # (B, T', S*F)
        return self.ln_embed(self.embed(h))  # (B, T', E)

    def readout_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Standardized frames (B, C, F, n) -> the linear readout's logits (B, K, n - N + 1): one per frame that
        has N frames up to it."""
        return self.readout(x.flatten(1, 2))

    def forward_seq(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame logits (B, T', K); frame t only sees input frames up to its own."""
        x = self.standardized_input(x)  # (B, C, F, T)
        h = self.embed_frames(self.stem(x.unsqueeze(2)))  # (B, T', E), T' = T // cnn_time_pool
        pos = torch.arange(h.shape[1], device=h.device)  # built from the runtime T, so T stays free in ONNX
        bias = self.attention_bias(pos[:, None] - pos[None, :])
        for block in self.blocks:
            h, _ = block(h, bias)
        logits = self.head(self.ln_f(h))  # (B, T', K)
        if not self.config.readout_frames:
            return logits
        pool = self.config.cnn_time_pool
        padded = F.pad(x, (self.config.readout_frames - 1, 0))  # zeros before the first frame: causal
        ends = self.readout_logits(padded)[..., pool - 1::pool]  # (B, K, T'): at each pooled frame's last frame
        return logits + ends[..., :logits.shape[1]].transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the last frame (B, K)."""
        return self.forward_seq(x)[:, -1]

    @torch.no_grad()
    def materialize(self, example_input_shape: tuple[int, ...]) -> "EEGModel":
        """Run one dry forward so the lazy layers get their shapes (before loading weights or building an optimizer)."""
        _, C, F_, T = example_input_shape
        was_training = self.training
        self.eval()
        self(torch.zeros(2, C, F_, max(T, self.config.min_frames), device=self.slopes.device))
        self.train(was_training)
        return self
