"""EEGConfig: the single source of truth for the model's hyper-parameters and preprocessing.

It is built once by `eeg2arm train`, stored in the checkpoint as a plain dict, written as JSON into the
ONNX metadata and read back by the service into this same class.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .errors import UserInputError

CALIBRATION_WEIGHT = 10.0  # `calibrate --weight`'s default (rule AI, docs/accuracy.md stop 33: 10 against 3 and 30)

DATA_FIELDS = ("class_names", "channel_names", "band_names", "band_edges", "sfreq", "frame_window", "frame_step",
               "features", "reference", "montage", "bandpass", "input_channels", "sensor_channels", "spatial",
               "csp_filters", "align")

SIZED_FIELDS = (("class_names", "n_classes"), ("channel_names", "n_electrodes"), ("band_names", "n_bands"))


@dataclass(frozen=True)
class EEGConfig:
    n_classes: int  # K
    n_electrodes: int  # C
    n_bands: int  # F
    cnn_time_pool: int = 2  # time pooling factor of the first depthwise block
    frame_embed: int = 256  # Transformer width
    dropout: float = 0.1
    normalize: bool = False  # per-sample z-score over (F, T) per electrode, applied inside the model
    clip_length: int | None = None  # None: any T >= min_frames; int: the model sees the last clip_length frames
    depth_multiplier: int = 4  # feature maps per electrode in the depthwise convs
    spatial_filters: int = 32  # output channels of the 1x1x1 electrode mix
    kernel_bands: int = 3
    kernel_time: int = 3
    linear_stem: bool = False  # True: no GELU in the depthwise convs; the first nonlinearity follows the electrode mix
    n_heads: int = 4
    n_layers: int = 2
    context: int | None = 64  # attention window W in pooled frames (None: whole history); bounds streaming memory
    readout_frames: int = 0  # N > 0: a linear map of the last N standardized input frames added to every decision
    ensemble: int = 1  # N > 1: N networks of this config trained apart (seeds seed..seed+N-1), their logits averaged
    # What the data are, when known (from `eeg2arm prepare`'s meta.json); they do not change the network.
    class_names: tuple[str, ...] | None = None  # label order: class_names[k] is class k
    channel_names: tuple[str, ...] | None = None  # the C electrodes, in X's order
    band_names: tuple[str, ...] | None = None  # the F features, in X's order ("slow" for the slow feature)
    band_edges: tuple[tuple[float, float], ...] | None = None  # (lo, hi) Hz per band, lo <= f < hi; slow: (0, cut-off)
    sfreq: float | None = None  # Hz of the EEG the features were computed from
    frame_window: float | None = None  # s per feature frame
    frame_step: float | None = None  # s between frames
    # The feature recipe (eeg2arm.recipe); None in files made before recipes: band power of the unreferenced signal.
    features: tuple[str, ...] | None = None  # kinds in F order: ("bandpower",), ("slow",) or ("slow", "bandpower")
    reference: str | None = None  # "none", "average", "csd" or "CH[,CH...]"
    montage: str | None = None  # MNE built-in montage of the channel positions (csd) and names
    bandpass: tuple[float, float] | None = None  # Hz, causal band-pass before the features
    input_channels: tuple[str, ...] | None = None  # channels read from a recording or stream, if not channel_names
    # Learned spatial maps (eeg2arm.spatial): with `spatial` ("csp:K", "csp-tangent:K") channel_names are the CSP
    # components (or their pairs) and sensor_channels the channels their filters csp_filters (bands, components,
    # sensor channels) read.
    sensor_channels: tuple[str, ...] | None = None
    spatial: str | None = None
    csp_filters: tuple[tuple[tuple[float, ...], ...], ...] | None = None
    align: str | None = None  # "euclidean": each subject's signal is re-centred by its own covariance first

    def __post_init__(self) -> None:
        positive = ("n_classes", "n_electrodes", "n_bands", "cnn_time_pool", "frame_embed", "depth_multiplier",
                    "spatial_filters", "kernel_bands", "kernel_time", "n_heads", "n_layers", "ensemble")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserInputError(f"config.{name} must be a positive integer, got {value!r}")
        if self.n_classes < 2:
            raise UserInputError(f"config.n_classes must be at least 2, got {self.n_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserInputError(f"config.dropout must be in [0, 1), got {self.dropout}")
        if self.context is not None and (isinstance(self.context, bool) or not isinstance(self.context, int)
                                         or self.context < 1):
            raise UserInputError(f"config.context must be a positive integer or None, got {self.context!r}")
        if self.frame_embed % self.n_heads:
            raise UserInputError(f"frame_embed ({self.frame_embed}) must be divisible by n_heads ({self.n_heads})")
        if isinstance(self.readout_frames, bool) or not isinstance(self.readout_frames, int) or self.readout_frames < 0:
            raise UserInputError(f"config.readout_frames must be an integer >= 0, got {self.readout_frames!r}")
        if not isinstance(self.linear_stem, bool):
            raise UserInputError(f"config.linear_stem must be true or false, got {self.linear_stem!r}")
        if self.clip_length is not None and self.clip_length < self.cnn_time_pool:
            raise UserInputError(f"clip_length ({self.clip_length}) must be at least cnn_time_pool ({self.cnn_time_pool})")
        if self.csp_filters is not None:
            object.__setattr__(self, "csp_filters", tuple(tuple(tuple(float(v) for v in row) for row in band)
                                                          for band in self.csp_filters))
        for name in ("features", "input_channels", "sensor_channels"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(str(n) for n in getattr(self, name)))
        if self.bandpass is not None:
            object.__setattr__(self, "bandpass", tuple(float(f) for f in self.bandpass))
        for name, size in SIZED_FIELDS:
            names = getattr(self, name)
            if names is not None:
                object.__setattr__(self, name, tuple(str(n) for n in names))
                if len(getattr(self, name)) != getattr(self, size):
                    raise UserInputError(f"config.{name} has {len(names)} names but {size} is {getattr(self, size)}")
        if self.band_edges is not None:
            edges = tuple((float(lo), float(hi)) for lo, hi in self.band_edges)
            if len(edges) != self.n_bands or any(not 0 <= lo < hi for lo, hi in edges):
                raise UserInputError(f"config.band_edges must be {self.n_bands} (lo, hi) pairs with 0 <= lo < hi, "
                                     f"got {self.band_edges}")
            object.__setattr__(self, "band_edges", edges)
        for name in ("sfreq", "frame_window", "frame_step"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                    raise UserInputError(f"config.{name} must be a positive number, got {value!r}")
                object.__setattr__(self, name, float(value))

    @property
    def streamable(self) -> bool:
        """Whether the model can run frame by frame (StreamingDecoder, the ONNX step graph): a per-window z-score
        (normalize) or a clip needs the whole window up front, and an unbounded context an unbounded cache."""
        return not self.normalize and self.clip_length is None and self.context is not None

    @property
    def stream_channels(self) -> tuple[str, ...] | None:
        """The channels a live stream or replayed recording must provide, in the order the recipe reads them."""
        return self.input_channels or self.channel_names

    @property
    def labels(self) -> list[str]:
        """Class k's name: class_names[k], or k as a string for a model trained without names."""
        return list(self.class_names or [str(k) for k in range(self.n_classes)])

    @property
    def min_frames(self) -> int:
        """The shortest T the model accepts: one pooled frame, or the whole clip when clip_length is set."""
        return self.clip_length if self.clip_length is not None else self.cnn_time_pool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: tuples become lists (from_dict turns them back)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def hyperparameters(self) -> dict[str, Any]:
        """to_dict() without the fields that only describe the data: what must match to resume training."""
        return {k: v for k, v in self.to_dict().items() if k not in DATA_FIELDS}

    def recipe(self) -> dict[str, Any]:
        """The data fields that say how the features were made from raw EEG (eeg2arm.recipe), as /metadata shows
        them; all None for a model trained on arrays of unknown origin."""
        return {k: v for k, v in self.to_dict().items() if k in DATA_FIELDS and k != "class_names"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EEGConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserInputError(f"unknown config keys {unknown}: this file was made by another eeg2arm version")
        try:
            return cls(**{"context": None, **d})  # saved before `context` existed: attention saw the whole history
        except TypeError as e:  # a required key is missing
            raise UserInputError(f"incomplete config ({e}): this file was not made by eeg2arm") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EEGConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserInputError(f"config is not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise UserInputError("config JSON must be an object")
        return cls.from_dict(d)
