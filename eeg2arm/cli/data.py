"""`eeg2arm prepare`: EEG recordings in, feature arrays out; `eeg2arm recipes`: the named recipes."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import UserInputError
from .common import FILE, cli, command_context, user_errors

if TYPE_CHECKING:
    from ..prepare import PrepareOptions


RECIPE_FLAGS = ("events", "tmin", "tmax", "window", "bands", "frame_window", "frame_step", "channels", "features",
                "slow_cutoff", "reference", "montage", "bandpass", "spatial", "align")  # what `prepare --like` takes from meta.json


@cli.command()
@click.argument("raw", nargs=-1, required=True, type=FILE)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder for X.npy, y.npy, groups.npy, meta.json (must not exist yet)")
@click.option("--like", "like", type=FILE, default=None,
              help="meta.json of earlier prepared data: apply its recipe (channels, reference, features, frames, "
                   "events, span) to these files; only --resample, --group-by, --rename/--rename-file and --event "
                   "(your cue names onto its classes: --event left=left_fist) may be given with it")
@click.option("--recipe", "recipe_name", default=None,
              help="A named recipe (`eeg2arm recipes` lists them): its arguments are this run's defaults, and the "
                   "flags given here override them (e.g. --event with the names of your cues)")
@click.option("--event", "events", multiple=True,
              help="NAME or NAME=CLASS (annotation or epochs event name); repeat it, its order is the label order "
                   "(with --like: NAME=CLASS onto the recipe's classes, in its order) [default: every annotation "
                   "name, sorted]")
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
                   "power of each component in its band. csp-tangent:K: the same filters, and per frame the tangent "
                   "vector of the components' covariance, X (N, K'(K'+1)/2 pairs, bands, T), K' the components per band")
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
@click.option("--rename", "renames", multiple=True,
              help="OLD=NEW: the files' channel OLD is the recipe's NEW (another amplifier's spelling, e.g. "
                   "C3=C3..); repeat it; allowed with --like")
@click.option("--rename-file", type=FILE, default=None,
              help="Channel renames from a file: a JSON object {\"OLD\": \"NEW\"} or lines 'OLD NEW'")
@click.option("--group-by", type=click.Choice(["recording", "subject"]), default=None,
              help="groups.npy: one group per file, or per subject (subject_info's his_id, else the file's folder "
                   "name)  [default: recording, or the --like data's]")
@click.pass_context
@user_errors
def prepare(ctx, raw, out, **_) -> None:
    """Read EEG files (EDF, BDF, GDF, FIF, BrainVision, EEGLAB, *-epo.fif, BIDS) into features X.npy (N,C,F,T).

    Each trial goes through one recipe: re-reference (--reference), causal filters (--bandpass, and the low-pass
    of slow), then per-frame features (--features). meta.json records it; `prepare --like` and `stream` reuse it.
    """
    from ..names import parse_renames
    from ..prepare import prepare as run_prepare

    opts = options_of(ctx)
    meta = run_prepare(raw, out, opts, renames=parse_renames(ctx.params["renames"], ctx.params["rename_file"]))
    counts = ", ".join(f"{name} {n}" for name, n in meta["class_counts"].items())
    learned = "".join([f"; {meta['spatial']} filters fitted" if meta.get("spatial") and opts.csp_filters is None
                       else "", f"; {len(meta['alignment']['recordings'])} recording(s) aligned" if "alignment" in meta
                       else ""])
    click.echo(f"wrote {out}: X {tuple(meta['shape'])} from {len(meta['source_files'])} file(s); {counts}{learned}")


def given(ctx: click.Context) -> set[str]:
    """The parameters given on the command line (not left at their defaults)."""
    return {name for name in ctx.params if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}


def options_of(ctx: click.Context) -> PrepareOptions:
    """The options a parsed `prepare` command line says: --like's recipe, or the recipe flags over --recipe's."""
    from ..features import DEFAULT_BANDS, parse_bands
    from ..prepare import PrepareOptions, events_onto, options_like, parse_event
    from ..recipe import parse_bandpass, parse_features, parse_reference
    from ..spatial import parse_spatial

    p = ctx.params
    if p["like"] is not None:
        flags = {param.name: param.opts[0] for param in ctx.command.params}  # "events" is --event
        clash = [flags[name] for name in (*RECIPE_FLAGS, "recipe_name") if name in given(ctx) and name != "events"]
        if clash:
            raise UserInputError(f"--like takes the recipe from {p['like']}: drop {', '.join(clash)}")
        opts = options_like(p["like"], p["resample"], p["group_by"])
        if not p["events"]:
            return opts
        events = events_onto(tuple(parse_event(e) for e in p["events"]), opts.events, f"--like {p['like']}")
        return dataclasses.replace(opts, events=events)
    p = with_named_recipe(ctx)
    channels = p["channels"]
    if channels is not None:
        channels = tuple(c.strip() for c in channels.split(",") if c.strip())
        if not channels:
            raise UserInputError("--channels names no channel: give a comma-separated list such as Oz,O1,O2")
    return PrepareOptions(
        events=tuple(parse_event(e) for e in p["events"]), tmin=p["tmin"], tmax=p["tmax"], window=p["window"],
        bands=parse_bands(p["bands"]) if p["bands"] is not None else DEFAULT_BANDS,
        frame_window=p["frame_window"], frame_step=p["frame_step"], resample=p["resample"], channels=channels,
        features=parse_features(p["features"]), slow_cutoff=p["slow_cutoff"],
        reference=parse_reference(p["reference"]), montage=p["montage"],
        bandpass=parse_bandpass(p["bandpass"]) if p["bandpass"] is not None else None,
        group_by=p["group_by"] or "recording", spatial=parse_spatial(p["spatial"]) if p["spatial"] is not None else None,
        align=p["align"])


def with_named_recipe(ctx: click.Context) -> dict[str, Any]:
    """A parsed `prepare` command line's parameters, --recipe's arguments filling those not given on it."""
    from ..named_recipes import named_recipe

    if ctx.params["recipe_name"] is None:
        return ctx.params
    named = command_context("prepare", ["IN", "--out", "OUT", *named_recipe(ctx.params["recipe_name"]).prepare])
    return {**ctx.params, **{name: named.params[name] for name in given(named) - given(ctx)}}


def recipe_params(args: Sequence[str]) -> dict[str, Any]:
    """`eeg2arm prepare`'s parameters for a recipe's prepare arguments, a --recipe among them filled in: what the
    benchmarks read a row's events, span and channels from."""
    return with_named_recipe(command_context("prepare", ["IN", "--out", "OUT", *args]))


def prepare_options(args: Sequence[str]) -> PrepareOptions:
    """The options of a recipe's prepare arguments (`eeg2arm prepare`'s, less the files and --out), parsed by the
    command's own parameters: what eeg2arm.Decoder and the benchmarks read recipes with."""
    return options_of(command_context("prepare", ["IN", "--out", "OUT", *args]))


@cli.command()
@click.argument("name", required=False)
@user_errors
def recipes(name: str | None) -> None:
    """List the named recipes (`prepare --recipe NAME`, `eeg2arm.Decoder(recipe=NAME)`): signal, task, channels;
    with NAME, the `prepare` and `train` commands that use it."""
    from ..named_recipes import named_recipe, named_recipes

    if name is not None:
        return click.echo(named_recipe(name).commands())
    for recipe in named_recipes().values():
        click.echo(recipe.line())
