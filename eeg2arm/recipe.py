"""A feature recipe: what turns EEG in µV into the model's (C, F, T) input, the same in `prepare` and online.

Every recipe is, in this order (MNE does the signal processing):

1. a spatial linear map from the recording's channels (`input_channels`, as the file or stream names them) to the
   model's C electrodes (`channels`): none, a common average or named-channel reference (MNE's
   `set_eeg_reference`) or a surface Laplacian (`compute_current_source_density`, in µV/cm², which needs electrode
   positions from `montage`). All are instantaneous and linear, so the map is a matrix, found once by applying MNE to
   an identity signal, and applied to any piece of signal;
2. causal IIR filters, Butterworth of order 4 designed by MNE with phase='forward': an optional band-pass, and for
   the `slow` feature a low-pass at `slow_cutoff` Hz. Each filter starts in the steady state of the signal's first
   sample (scipy.signal.sosfilt_zi) and carries its state from piece to piece, so a stream that starts with the
   recording reproduces the whole recording's result;
3. per-frame features stacked along F in the order of `features`: `bandpower` (features.band_power_frames of the
   band-passed signal, one per band) and `slow` (features.slow_frames of the low-passed signal, one).

Two spatial maps are learned from the data (eeg2arm.spatial). With `align` each subject's or recording's
re-centring (Euclidean: R^-1/2, joined to step 1; mean: the channels' means, subtracted after step 2's band-pass) is
estimated from the output of steps 1-2 of its own signal, so it is given to the chain, not stored in the recipe. With `spatial` ("csp:K", filter-bank CSP) step 3 is replaced: for each band,
its K filters `csp_filters[band]` (fitted by `prepare` on the training trials) project the signal, a causal
Butterworth band-pass of that band follows, and the feature is log10 of the mean square per frame; the model's C
"electrodes" are the components (csp1..), its F the bands: X (N, components, bands, T). With "csp-tangent:K" the
feature is instead the tangent vector of the components' covariance per frame (spatial.tangent_vectors; the filters
are stored whitened): X (N, K'(K'+1)/2 pairs, bands, T), K' the components per band.

`prepare` runs a continuous recording through 1-2 whole, from its first sample, before cutting trials; an epoch
from its own first sample. `realtime.online.OnlineFeatures` runs the same `CausalChain` on a live stream.
With --montage, channel names are matched to the montage ignoring case and dots (EEGMMIDB's `Fcz.` is `FCz`) and
the model's channels take the montage's spelling; `input_channels` keep the recording's own names.
"""
from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import mne
import numpy as np
from scipy.signal import sosfilt, sosfilt_zi

from .errors import UserInputError
from .features import (DEFAULT_BANDS, LOG_FLOOR, Band, band_power_frames, check_bands, frame_geometry, frame_view,
                       slow_frames)
from .spatial import (ALIGN_METHODS, SPATIAL_METHODS, Alignment, component_names, is_tangent, parse_spatial,
                      spatial_method, tangent_vectors)

FEATURE_KINDS = ("bandpower", "slow")
log = logging.getLogger("eeg2arm")
SLOW = "slow"  # the name of the slow feature along F
BANK = "bank"  # the signal of a filter-bank CSP recipe: (..., bands, components or channels, n)
FILTER_ORDER = 4
CSD_UV_PER_CM2 = 1e-4  # MNE's surface Laplacian of µV is in µV/m²; µV/cm² keeps it near the µV of the EEG
REFERENCES = ("none", "average", "csd")  # or a comma-separated list of reference channels
RECIPE_NEEDS = ("channel_names", "band_names", "band_edges", "sfreq", "frame_window", "frame_step")  # EEGConfig
# fields without which a config records no recipe; the others have defaults (Recipe.from_fields)


def parse_features(text: str) -> tuple[str, ...]:
    """'slow,bandpower' -> ('slow', 'bandpower'): the feature kinds, in F order."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FEATURE_KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise UserInputError(f"--features {text!r} must list {', '.join(FEATURE_KINDS)} (each at most once, "
                             f"comma-separated, in F order), e.g. slow,bandpower")
    return kinds


def parse_bandpass(text: str) -> tuple[float, float]:
    """'8-30' -> (8.0, 30.0)."""
    lo, _, hi = text.partition("-")
    try:
        edges = float(lo), float(hi)
    except ValueError:
        raise UserInputError(f"--bandpass {text!r} must be LO-HI in Hz, e.g. 8-30") from None
    if not (np.isfinite(edges).all() and 0 < edges[0] < edges[1]):
        raise UserInputError(f"--bandpass {text!r} must have 0 < LO < HI, e.g. 8-30")
    return edges


def reference_channels(reference: str) -> tuple[str, ...]:
    """The named reference channels of a reference spec ('A1,A2'), () for none/average/csd."""
    if reference in REFERENCES:
        return ()
    names = tuple(c.strip() for c in reference.split(",") if c.strip())
    if not names:
        raise UserInputError(f"--reference {reference!r} names no channel: give none, average, csd or the reference "
                             f"channels, e.g. Cz or A1,A2")
    return names


def parse_reference(text: str) -> str:
    """The --reference spec as recorded: a keyword, or the channel names joined by ',' (' A1 , A2' -> 'A1,A2')."""
    spec = text.strip()
    return spec if spec in REFERENCES else ",".join(reference_channels(text))


@functools.lru_cache(maxsize=8)
def standard_montage(montage: str) -> mne.channels.DigMontage:
    """MNE's built-in montage `montage`; a deprecation MNE warns about is logged once, as one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FutureWarning)
        try:
            found = mne.channels.make_standard_montage(montage)
        except ValueError:
            raise UserInputError(f"--montage {montage!r} is not one of MNE's built-in montages "
                                 f"({', '.join(mne.channels.get_builtin_montages()[:6])}, ...)") from None
    for warning in caught:
        log.warning("--montage %s: %s", montage, str(warning.message).splitlines()[0][:200])
    return found


def montage_names(names: list[str], montage: str) -> dict[str, str]:
    """{recording's name: the montage's spelling}, matching ignoring case and dots ('Fcz.' -> 'FCz')."""
    known = standard_montage(montage).ch_names
    lookup = {n.lower(): n for n in known}
    rename = {n: lookup.get(n.strip(" .").lower()) for n in names}
    unknown = [n for n, std in rename.items() if std is None]
    if unknown:
        raise UserInputError(f"channels {', '.join(unknown[:5])} are not in montage {montage}: pass --channels "
                             f"without them, or another --montage")
    return rename


def iir_sos(sfreq: float, l_freq: float | None, h_freq: float | None, what: str) -> np.ndarray:
    """Second-order sections of MNE's causal Butterworth filter (phase='forward'): a copy (scipy's sosfilt needs a
    writable array) of the design made once per rate and edges, since a recipe asks for its filters on every chain
    and check. `what` names the edges in the error."""
    for edge in (l_freq, h_freq):
        if edge is not None and not 0 < edge < sfreq / 2:
            raise UserInputError(f"{what} {edge:g} Hz must lie between 0 and the Nyquist frequency {sfreq / 2:g} Hz "
                                 f"of {sfreq:g} Hz data")
    return _designed_sos(sfreq, l_freq, h_freq).copy()


@functools.lru_cache(maxsize=64)
def _designed_sos(sfreq: float, l_freq: float | None, h_freq: float | None) -> np.ndarray:
    params = mne.filter.create_filter(None, sfreq, l_freq, h_freq, method="iir", phase="forward", verbose="error",
                                      iir_params=dict(order=FILTER_ORDER, ftype="butter", output="sos"))
    return params["sos"]


@dataclass(frozen=True)
class Recipe:
    """Everything needed to compute (C, F, T) frames from a recording's samples; see the module docstring."""

    sfreq: float
    input_channels: tuple[str, ...]  # read from the recording or stream, in this order, by its own names
    channels: tuple[str, ...]  # the model's C electrodes, in X's order
    features: tuple[str, ...] = ("bandpower",)
    bands: tuple[Band, ...] = DEFAULT_BANDS  # the band-power bands
    slow_cutoff: float = 4.0  # Hz, low-pass of the slow feature
    frame_window: float = 0.5  # s
    frame_step: float = 0.25  # s
    reference: str = "none"  # none | average | csd | CH[,CH...]
    montage: str | None = None  # MNE built-in montage: electrode positions (csd) and channel spelling
    bandpass: tuple[float, float] | None = None  # Hz, causal band-pass before every feature
    spatial: str | None = None  # "csp:K" | "csp-tangent:K": filter-bank CSP (eeg2arm.spatial), fitted on labels
    csp_filters: tuple[tuple[tuple[float, ...], ...], ...] | None = None  # (bands, components, channels); None: unfitted
    align: str | None = None  # "euclidean" | "mean": every subject's signal re-centred (given to CausalChain)

    def __post_init__(self) -> None:
        frame_geometry(self.sfreq, self.frame_window, self.frame_step)
        if self.spatial is not None:
            object.__setattr__(self, "spatial", parse_spatial(self.spatial))
            if self.features != ("bandpower",):
                raise UserInputError("--spatial csp learns filters of band power: use it with --features bandpower")
        if self.align is not None and self.align not in ALIGN_METHODS:
            raise UserInputError(f"--align {self.align!r} must be one of {', '.join(ALIGN_METHODS)}")
        if self.csp_filters is not None:
            filters = np.asarray(self.csp_filters, dtype=float)
            if (self.spatial is None or filters.ndim != 3 or filters.shape[0] != len(self.bands)
                    or filters.shape[2] != len(self.channels) or not np.isfinite(filters).all()):
                raise UserInputError(f"the recipe's csp_filters {filters.shape} do not fit its {len(self.bands)} bands "
                                     f"and {len(self.channels)} channels: use the meta.json or model eeg2arm wrote")
            object.__setattr__(self, "csp_filters", tuple(tuple(tuple(map(float, row)) for row in band)
                                                          for band in filters))
        if "bandpower" in self.features:
            check_bands(self.bands, self.sfreq, self.frame_window, self.frame_step)
        if SLOW in self.features and SLOW in [b[0] for b in self.bands]:
            raise UserInputError(f"--bands names a band {SLOW!r}, the name of the slow feature: rename the band")
        reference_channels(self.reference)  # a named reference must name a channel
        if self.reference == "csd" and self.montage is None:
            raise UserInputError("--reference csd needs electrode positions: pass --montage (e.g. colin27_1005)")
        self.filters()  # checks the cut-off frequencies against the rate

    @property
    def n_features(self) -> int:  # F
        return sum(len(self.bands) if kind == "bandpower" else 1 for kind in self.features)

    @property
    def model_channels(self) -> tuple[str, ...]:
        """The model's C 'electrodes': the channels, or a fitted CSP recipe's components."""
        if self.spatial is None:
            return self.channels
        if self.csp_filters is None:
            raise UserInputError(f"--spatial {self.spatial} is not fitted yet: its filters come from labelled trials")
        return component_names(len(self.csp_filters[0]), is_tangent(self.spatial))

    def bank_filters(self) -> list[np.ndarray]:
        """One causal band-pass (second-order sections) per band of a CSP recipe."""
        return [iir_sos(self.sfreq, lo, hi, f"band {name} edge") for name, lo, hi in self.bands]

    @property
    def feature_bands(self) -> tuple[Band, ...]:
        """One (name, lo Hz, hi Hz) per F: the bands, and ('slow', 0, slow_cutoff) for the slow feature."""
        return tuple(b for kind in self.features
                     for b in (self.bands if kind == "bandpower" else ((SLOW, 0.0, self.slow_cutoff),)))

    def filters(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(band-pass, slow low-pass) second-order sections; None where the recipe has no such filter."""
        bandpass = (iir_sos(self.sfreq, *self.bandpass, "--bandpass edge") if self.bandpass is not None else None)
        lowpass = iir_sos(self.sfreq, None, self.slow_cutoff, "--slow-cutoff") if SLOW in self.features else None
        if self.spatial is not None:
            self.bank_filters()  # checks the band edges against the rate
        return bandpass, lowpass

    def spatial_matrix(self) -> np.ndarray | None:
        """(C, C_in) map from input_channels to channels; None when it only picks channels (no reference)."""
        if self.reference == "none":
            return None
        rename = (montage_names(list(self.input_channels), self.montage) if self.montage
                  else {c: c for c in self.input_channels})
        names = [rename[c] for c in self.input_channels]
        eye = mne.io.RawArray(np.eye(len(names)), mne.create_info(names, self.sfreq, "eeg"), verbose="error")
        if self.montage:
            eye.set_montage(standard_montage(self.montage), match_case=False, verbose="error")
        try:
            if self.reference == "csd":
                mapped = mne.preprocessing.compute_current_source_density(eye, verbose="error")
                scale = CSD_UV_PER_CM2
            else:
                ref = "average" if self.reference == "average" else list(reference_channels(self.reference))
                mapped, scale = mne.set_eeg_reference(eye, ref, projection=False, verbose="error")[0], 1.0
        except (ValueError, RuntimeError) as e:
            raise UserInputError(f"--reference {self.reference} failed ({str(e).splitlines()[0][:200]})") from None
        matrix = mapped.get_data() * scale  # (C_in, C_in): column j is the response to channel j alone
        return matrix[[names.index(c) for c in self.channels]]

    def frames(self, signals: dict[str, np.ndarray]) -> np.ndarray:
        """The features of CausalChain's signals (..., C, n) -> float32 (..., C, F, T)."""
        if self.spatial is not None:  # bank (..., F, K, n): each band's components
            frames = frame_view(signals[BANK], self.sfreq, self.frame_window, self.frame_step)  # (..., F, K, T, w)
            if is_tangent(self.spatial):  # the tangent vector of their covariance per frame (..., F, K(K+1)/2, T)
                return np.moveaxis(tangent_vectors(frames), -3, -2).astype(np.float32)  # (..., P, F, T)
            power = (frames ** 2).mean(axis=-1)  # log mean square per frame (..., F, K, T)
            return np.moveaxis(np.log10(power + LOG_FLOOR), -3, -2).astype(np.float32)  # (..., K, F, T)
        parts = [band_power_frames(signals["bandpower"], self.sfreq, self.bands, self.frame_window, self.frame_step)
                 if kind == "bandpower" else
                 slow_frames(signals[SLOW], self.sfreq, self.frame_window, self.frame_step)
                 for kind in self.features]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-2)

    def to_meta(self) -> dict[str, Any]:
        """The recipe as `eeg2arm prepare` records it in meta.json, in JSON types; data.data_fields reads these keys
        back into EEGConfig's fields, and from_fields turns those into this recipe again."""
        learned = {"sensor_channels": list(self.channels), "spatial": self.spatial,
                   "csp_filters": [[list(row) for row in band] for band in self.csp_filters]} if self.spatial else {}
        return {"sfreq": self.sfreq, "channels": list(self.model_channels), "input_channels": list(self.input_channels),
                "features": list(self.features), "bands": [list(b) for b in self.feature_bands],
                "reference": self.reference, "montage": self.montage,
                "bandpass": list(self.bandpass) if self.bandpass else None, "frame_window_s": self.frame_window,
                "frame_step_s": self.frame_step, **learned, "align": self.align}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> "Recipe":
        """A recipe from EEGConfig's data fields (e.g. data.data_fields of a meta.json); a config made before recipes
        is band power of the unreferenced signal. Raises UserInputError naming what is missing."""
        missing = [n for n in RECIPE_NEEDS if fields.get(n) is None]
        if missing:
            raise UserInputError(f"the model does not record how its band power was made ({', '.join(missing)}): "
                                 f"train it on data from `eeg2arm prepare` (its meta.json) to stream raw EEG")
        features = tuple(fields.get("features") or ("bandpower",))
        unknown = [k for k in features if k not in FEATURE_KINDS]
        if unknown:
            raise UserInputError(f"features {', '.join(unknown)} cannot be computed by this eeg2arm version: "
                                 f"update eeg2arm")
        named = [(str(n), float(lo), float(hi)) for n, (lo, hi) in zip(fields["band_names"], fields["band_edges"])]
        slow = [b for b in named if b[0] == SLOW] if SLOW in features else []
        if SLOW in features and not slow:
            raise UserInputError(f"the recipe lists the slow feature but no band named {SLOW!r} giving its cut-off: "
                                 f"use the meta.json or model that eeg2arm wrote, unedited")
        channels = tuple(fields.get("sensor_channels") or fields["channel_names"])
        extra = {"slow_cutoff": slow[0][2]} if slow else {}
        if fields.get("spatial"):
            if spatial_method(str(fields["spatial"])) not in SPATIAL_METHODS:
                raise UserInputError(f"spatial filters {str(fields['spatial'])[:40]!r} cannot be computed by this "
                                     f"eeg2arm version: update eeg2arm")
            if not fields.get("csp_filters") or not fields.get("sensor_channels"):
                raise UserInputError("the recipe names --spatial but records no fitted filters: use the meta.json or "
                                     "model that eeg2arm wrote, unedited")
            extra.update(spatial=fields["spatial"], csp_filters=fields["csp_filters"])
        return cls(sfreq=float(fields["sfreq"]), input_channels=tuple(fields.get("input_channels") or channels),
                   channels=channels, features=features, bands=tuple(b for b in named if b not in slow),
                   frame_window=float(fields["frame_window"]), frame_step=float(fields["frame_step"]),
                   reference=fields.get("reference") or "none", montage=fields.get("montage"),
                   bandpass=tuple(fields["bandpass"]) if fields.get("bandpass") else None,
                   align=fields.get("align"), **extra)


class CausalChain:
    """The recipe's spatial map and causal filters over a signal that arrives in pieces (..., C_in, n) in µV.

    `push` returns {"bandpower": (..., C, n), "slow": (..., C, n)} (the signal each feature reads; slow only when the
    recipe has it), or for a CSP recipe {"bank": (..., F, K, n)}: each band's components, band-passed (an unfitted
    recipe's bank holds each band's channels, K = C, the trials CSP is fitted on). Leading axes are independent
    signals (e.g. epochs), each with its own filter state. The cost of a push is linear in its samples: the state is
    a few numbers per filter section and channel. `align` is the subject's re-centring of an aligned recipe.
    """

    def __init__(self, recipe: Recipe, align: Alignment | None = None):
        matrix = recipe.spatial_matrix()  # (C, C_in) or None
        self.unaligned = recipe.align is not None and align is None
        rotation = None if align is None else align.matrix  # (C, C) or None
        self.matrix = matrix if rotation is None else rotation if matrix is None else rotation @ matrix
        self.offset = None if align is None or align.offset is None else align.offset[:, None]  # (C, 1)
        self.bandpass, self.lowpass = recipe.filters()
        self.bank = recipe.bank_filters() if recipe.spatial is not None else None
        self.projections = None if recipe.csp_filters is None else np.asarray(recipe.csp_filters)  # (F, K, C)
        self.state: dict[str, np.ndarray] = {}  # filter name -> zi (n_sections, ..., C, 2)

    def front(self, x: np.ndarray) -> np.ndarray:
        """The spatial map (with the alignment, if given) and the band-pass: (..., C_in, n) -> (..., C, n); what an
        alignment is estimated from (with none given)."""
        if self.matrix is not None:
            x = self.matrix @ x  # (..., C, n)
        if self.bandpass is not None:
            x = self.filter("bandpass", self.bandpass, x)
        return x if self.offset is None else x - self.offset

    def push(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.unaligned:
            raise UserInputError("this recipe aligns each subject's signal (--align): give its alignment, estimated "
                                 "from the subject's own signal")
        x = self.front(x)
        if self.bank is not None:
            bands = [self.filter(f"band{f}", sos, x if self.projections is None else self.projections[f] @ x)
                     for f, sos in enumerate(self.bank)]  # each (..., K, n)
            return {BANK: np.stack(bands, axis=-3)}  # (..., F, K, n)
        signals = {"bandpower": x}
        if self.lowpass is not None:
            signals[SLOW] = self.filter(SLOW, self.lowpass, x)
        return signals

    def filter(self, name: str, sos: np.ndarray, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] == 0:
            return x
        zi = self.state.get(name)
        # The first piece, or a NaN (an amplifier dropout) went through: start again from the steady state. After a
        # dropout the frames depend on where pieces begin, but without the restart they would all be NaN.
        if zi is None or not np.isfinite(zi).all():
            zi = sosfilt_zi(sos).reshape(len(sos), *[1] * (x.ndim - 1), 2) * x[None, ..., :1]  # steady state
        y, self.state[name] = sosfilt(sos, x, axis=-1, zi=zi)
        return y
