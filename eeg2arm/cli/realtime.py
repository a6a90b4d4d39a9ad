"""The real-time commands: stream (decisions from raw EEG) and record (a calibration session)."""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import click

from ..errors import UserInputError
from .common import DEVICE, FILE, cli, user_errors

UNITS = click.option("--units", type=click.Choice(["auto", "uV", "mV", "V"]), default="auto", show_default=True,
                     help="The live stream's units: auto takes the declared ones, or judges undeclared ones from the "
                          "amplitude of the first second (one info line says which)")


@cli.command()
@click.option("--raw", "raw_path", type=FILE, default=None,
              help="Replay this recording (EDF, BDF, GDF, FIF, BrainVision, ...) as a stream")
@click.option("--lsl", "lsl_name", default=None, help="Read the live Lab Streaming Layer stream with this name")
@click.option("--ckpt", type=FILE, default=None, help="Decode with this checkpoint (PyTorch)")
@click.option("--onnx", "onnx_path", type=FILE, default=None,
              help="Decode with this export (model.onnx or model.step.onnx) in ONNX Runtime")
@click.option("--url", default=None, help="Decode on this running eeg2arm server, e.g. http://127.0.0.1:3000")
@click.option("--fast", is_flag=True, default=False, help="With --raw: as fast as possible, not at real speed")
@click.option("--chunk", type=float, default=0.0625, show_default=True, help="With --raw: seconds per chunk")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds of signal")
@click.option("--lsl-timeout", type=float, default=5.0, show_default=True,
              help="Seconds to wait for the LSL stream to answer, and to wait for samples before giving up")
@UNITS
@click.option("--enter", type=float, default=0.7, show_default=True, help="Hysteresis: probability to enter a class")
@click.option("--exit", "exit_", type=float, default=0.5, show_default=True,
              help="Hysteresis: probability below which the decision is released")
@click.option("--min-frames", type=int, default=3, show_default=True,
              help="Hysteresis: consecutive frames above --enter needed to switch")
@click.option("--out-lsl", default=None,
              help="Publish every decided frame as the LSL stream NAME (class probabilities + decision, stamped "
                   "with its last EEG sample) and each change as NAME-markers")
@click.option("--out-jsonl", default=None,
              help="Write one JSON line per decided frame to this new file, or - for stdout (the other lines then "
                   "go to stderr)")
@click.option("--rename", "renames", multiple=True,
              help="OLD=NEW: the source's channel OLD is the model's NEW (another amplifier's spelling); repeat it")
@click.option("--rename-file", type=FILE, default=None,
              help="Channel renames from a file: a JSON object {\"OLD\": \"NEW\"} or lines 'OLD NEW'")
@click.option("--align-from", type=FILE, default=None,
              help="A model that aligns each subject (prepare --align): the subject's alignment from the meta.json "
                   "of `prepare --like` on the subject's own recording")
@click.option("--align-seconds", type=float, default=None,
              help="A model that aligns each subject: estimate the alignment from the first this many seconds of "
                   "the stream (no decisions before)  [default: 60]")
@click.option("--view", is_flag=True, default=False,
              help="Serve a live page of the stream while it runs (decision, probabilities, signal health, a "
                   "simulated arm): open the printed URL in a browser")
@click.option("--view-port", type=int, default=None, help="The view's port (0: any free one)  [default: 8765]")
@click.option("--view-host", default=None,
              help="The view's address; beyond this machine (e.g. 0.0.0.0) only with EEG2ARM_API_TOKEN set  "
                   "[default: 127.0.0.1]")
@DEVICE
@user_errors
def stream(raw_path, lsl_name, ckpt, onnx_path, url, fast, chunk, duration, lsl_timeout, units, enter, exit_,
           min_frames, out_lsl, out_jsonl, renames, rename_file, align_from, align_seconds, view, view_port,
           view_host, device) -> None:
    """Decode raw EEG frame by frame: print each change of the smoothed decision, then a summary."""
    from ..names import parse_renames
    from ..realtime.live import StreamSummary, open_decoder, open_features, run_stream
    from ..realtime.outlet import open_sinks
    from ..realtime.smoothing import Hysteresis
    from ..realtime.sources import lsl_chunks, recording_chunks

    if (raw_path is None) == (lsl_name is None):
        raise UserInputError("give exactly one source: --raw FILE or --lsl NAME")
    if chunk <= 0 or (duration is not None and duration <= 0) or (align_seconds is not None and align_seconds <= 0):
        raise UserInputError("--chunk, --duration and --align-seconds must be positive numbers of seconds")
    if not view and (view_port is not None or view_host is not None):
        raise UserInputError("--view-port and --view-host go with --view")
    if view_port is not None and not 0 <= view_port <= 65535:
        raise UserInputError(f"--view-port {view_port} is not a port: give 1-65535, or 0 for any free one")
    hysteresis = Hysteresis(enter, exit_, min_frames)  # UserInputError naming enter/exit/min_frames
    renames = parse_renames(renames, rename_file)
    echo = functools.partial(click.echo, err=out_jsonl == "-")  # stdout carries only JSON lines then
    with contextlib.ExitStack() as stack:
        decoder = open_decoder(ckpt, onnx_path, url, hysteresis, device)
        online = open_features(decoder.config, align_from, align_seconds)
        wait_s = online.align_wait_s
        if duration is not None and duration <= wait_s:
            raise UserInputError(f"--duration {duration:g} s ends before the first decision: the subject's alignment "
                                 f"is estimated from the first {wait_s:g} s of signal; give a longer --duration, a "
                                 f"shorter --align-seconds or a stored alignment (--align-from)")
        if url is not None:
            stack.callback(decoder.close)  # ends the server session
        source = f"LSL stream {lsl_name}" if lsl_name is not None else str(raw_path)
        # before the source connects, so that a controller can subscribe before the first decision
        sinks = open_sinks(stack, out_lsl, out_jsonl, decoder.config, source, hysteresis)
        summary = StreamSummary()
        if view:
            from ..realtime.view import open_view

            backend = f"server {url}" if url else f"ONNX Runtime {onnx_path}" if onnx_path else f"PyTorch {ckpt}"
            page = open_view(stack, decoder.config, online.recipe.input_channels, hysteresis, source, backend,
                             summary, view_host, view_port)
            sinks.append(page)
            echo(f"view: {page.url} (open it in a browser)")
        chunks = (recording_chunks(raw_path, decoder.config, chunk, not fast, renames) if raw_path is not None
                  else lsl_chunks(lsl_name, decoder.config, lsl_timeout, units, renames))
        stack.callback(chunks.close)  # disconnects an LSL stream
        try:
            run_stream(chunks, decoder, echo, duration, summary, sinks, online)
        except UserInputError:  # e.g. a live stream that fell silent: what was decoded until then still counts
            if summary.feature_frames:
                echo(summary.line())
            raise
    if not summary.decisions and not summary.stopped_by:  # e.g. a recording shorter than one pooled frame
        if summary.align_s:
            ended = "just after" if summary.aligned else "before"
            raise UserInputError(f"no decision from {source}: its signal ended {ended} the {summary.align_s:g} s the "
                                 f"subject's alignment is estimated from; give a longer recording, a shorter "
                                 f"--align-seconds or a stored alignment (--align-from)")
        config = decoder.config
        raise UserInputError(f"no decision from {source}: it gave {summary.feature_frames} frames of "
                             f"{config.frame_window:g} s and the model decides on every {config.cnn_time_pool}: give "
                             f"a longer recording or --duration")
    echo(summary.line())



@cli.command()
@click.option("--lsl", "lsl_name", required=True, help="The live EEG stream (LSL name) to record")
@click.option("--markers", "markers_name", required=True,
              help="The cue program's LSL marker stream (string markers, numeric codes or mne-lsl's one-hot "
                   "annotations): its markers become annotations")
@click.option("--out", type=FILE, default=None,
              help="New FIF file to write, e.g. session.fif (never written over)  [required unless --bids-root]")
@click.option("--bids-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the session into this BIDS tree instead (mne-bids: BrainVision EEG, channels.tsv, "
                   "events.tsv from the cues, sidecars), as sub-SUBJECT[_ses-SESSION]_task-TASK[_run-RUN]_eeg")
@click.option("--subject", default=None, help="With --bids-root: the subject label (letters and digits)")
@click.option("--task", default=None, help="With --bids-root: the task label (letters and digits)")
@click.option("--session", default=None, help="With --bids-root: the session label")
@click.option("--run", default=None, help="With --bids-root: the run number")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds of signal [default: Ctrl-C]")
@click.option("--lsl-timeout", type=float, default=5.0, show_default=True,
              help="Seconds to wait for each stream to answer; a silence this long ends the recording")
@UNITS
@user_errors
def record(lsl_name, markers_name, out, bids_root, subject, task, session, run, duration, lsl_timeout, units) -> None:
    """Record a live EEG stream with its cue markers into one FIF file (or a BIDS tree), the markers as annotations
    (events.tsv)."""
    import sys

    from ..realtime.record import ProgressLine, record as run_record
    from ..realtime.record_bids import record_bids, target_of

    if (duration is not None and not duration > 0) or not lsl_timeout > 0:
        raise UserInputError("--duration and --lsl-timeout must be positive numbers of seconds")
    target = target_of(out, bids_root, subject, task, session, run)
    progress = ProgressLine(lambda text: click.echo(text, err=True, nl=False), sys.stderr.isatty())
    if target is None:
        run_record(lsl_name, markers_name, out, duration, lsl_timeout, echo=click.echo, progress=progress, units=units)
    else:
        record_bids(lsl_name, markers_name, target, duration, lsl_timeout, echo=click.echo, progress=progress,
                    units=units)
