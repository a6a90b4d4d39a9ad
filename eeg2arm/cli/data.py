"""`eeg2arm prepare`: EEG recordings in, feature arrays out."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserInputError
from .common import FILE, cli, user_errors


RECIPE_FLAGS = ("events", "tmin", "tmax", "window", "bands", "frame_window", "frame_step", "channels", "features",
                "slow_cutoff", "reference", "montage", "bandpass", "spatial", "align")  # what `prepare --like` takes from meta.json


@cli.command()
@click.argument("raw", nargs=-1, required=True, type=FILE)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder for X.npy, y.npy, groups.npy, meta.json (must not exist yet)")
@click.option("--like", "like", type=FILE, default=None,
              help="meta.json of earlier prepared data: apply its recipe (channels, reference, features, frames, "
                   "events, span) to these files; only --resample and --group-by may be given with it")
@click.option("--event", "events", multiple=True,
              help="NAME or NAME=CLASS (annotation or epochs event name); repeat it, its order is the label order "
                   "[default: every annotation name, sorted]")
@click.option("--tmin", type=float, default=None, help="Start of each trial, s from the event onset (with --tmax)")
@click.option("--tmax", type=float, default=None,
              help="End of each trial (exclusive), s from the event onset [default: cut annotations by --window]")
@click.option("--window", type=float, default=4.0, show_default=True,
              help="Without --tmax: cut each annotation into consecutive windows of this many seconds")
@click.option("--features", default="bandpower", show_default=True,
              help="Feature kinds per electrode, in F order: bandpower (log band power, one per band), slow (mean "
                   "of the low-passed signal per frame, uV, one), or both: slow,bandpower")
@click.option("--bands", default=None,
              help="NAME:LO-HI,... in Hz [default: theta:4-8,alpha:8-13,beta:13-30,gamma:30-45]")
@click.option("--slow-cutoff", type=float, default=4.0, show_default=True,
              help="Hz: causal low-pass (Butterworth, order 4) of the slow feature")
@click.option("--reference", default="none", show_default=True,
              help="Re-reference first (MNE): none, average (common average), csd (surface Laplacian, uV/cm^2, "
                   "needs --montage) or CH[,CH...] (mean of these channels); a reference reads every EEG channel")
@click.option("--montage", default=None,
              help="MNE built-in montage, e.g. colin27_1005 (standard_1005 before MNE 1.13): electrode positions "
                   "for csd; channel names are matched ignoring case and dots (C3.. is C3) and written in its "
                   "spelling")
@click.option("--bandpass", default=None, help="LO-HI: causal Butterworth band-pass (Hz) before the features")
@click.option("--spatial", default=None,
              help="csp:K: filter-bank CSP learned from the trials' labels: K spatial filters per band of --bands (K "
                   "per class against the rest beyond two classes); X becomes (N, components, bands, T), the log "
                   "power of each component in its band")
@click.option("--align", type=click.Choice(["euclidean", "mean"]), default=None,
              help="Re-centre each recording's signal from its own samples, no labels needed: euclidean (by "
                   "R^-1/2, R its spatial covariance) or mean (less each channel's mean: electrode offsets and drift, "
                   "for slow potentials); a new subject is aligned from its own signal, a live stream from its first "
                   "seconds")
@click.option("--frame-window", type=float, default=0.5, show_default=True, help="Seconds per feature frame")
@click.option("--frame-step", type=float, default=0.25, show_default=True, help="Seconds between frames")
@click.option("--channels", default=None,
              help="Comma-separated channels to keep, in this order; not a --reference channel [default: the EEG "
                   "channels, equal in all files (with --reference or --montage: those all files have), less the "
                   "--reference channels]")
@click.option("--resample", type=float, default=None, help="Resample every file to this rate (Hz) first")
@click.option("--group-by", type=click.Choice(["recording", "subject"]), default=None,
              help="groups.npy: one group per file, or per subject (subject_info's his_id, else the file's folder "
                   "name)  [default: recording, or the --like data's]")
@click.pass_context
@user_errors
def prepare(ctx, raw, out, like, events, tmin, tmax, window, features, bands, slow_cutoff, reference, montage,
            bandpass, spatial, align, frame_window, frame_step, channels, resample, group_by) -> None:
    """Read EEG files (EDF, BDF, GDF, FIF, BrainVision, EEGLAB, *-epo.fif) into features X.npy (N,C,F,T).

    Each trial goes through one recipe: re-reference (--reference), causal filters (--bandpass, and the low-pass
    of slow), then per-frame features (--features). meta.json records it; `prepare --like` and `stream` reuse it.
    """
    from ..features import DEFAULT_BANDS, parse_bands
    from ..prepare import PrepareOptions, options_like, parse_event, prepare as run_prepare
    from ..recipe import parse_bandpass, parse_features, parse_reference
    from ..spatial import parse_spatial

    if like is not None:
        given = [f"--{name.replace('_', '-')}" for name in RECIPE_FLAGS
                 if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise UserInputError(f"--like takes the recipe from {like}: drop {', '.join(given)}")
        opts = options_like(like, resample, group_by)
    else:
        if channels is not None:
            channels = tuple(c.strip() for c in channels.split(",") if c.strip())
            if not channels:
                raise UserInputError("--channels names no channel: give a comma-separated list such as Oz,O1,O2")
        opts = PrepareOptions(
            events=tuple(parse_event(e) for e in events), tmin=tmin, tmax=tmax, window=window,
            bands=parse_bands(bands) if bands is not None else DEFAULT_BANDS, frame_window=frame_window,
            frame_step=frame_step, resample=resample, channels=channels, features=parse_features(features),
            slow_cutoff=slow_cutoff, reference=parse_reference(reference), montage=montage,
            bandpass=parse_bandpass(bandpass) if bandpass is not None else None, group_by=group_by or "recording",
            spatial=parse_spatial(spatial) if spatial is not None else None, align=align)
    meta = run_prepare(raw, out, opts)
    counts = ", ".join(f"{name} {n}" for name, n in meta["class_counts"].items())
    learned = "".join([f"; {meta['spatial']} filters fitted" if meta.get("spatial") and like is None else "",
                       f"; {len(meta['alignment']['recordings'])} recording(s) aligned" if "alignment" in meta else ""])
    click.echo(f"wrote {out}: X {tuple(meta['shape'])} from {len(meta['source_files'])} file(s); {counts}{learned}")
