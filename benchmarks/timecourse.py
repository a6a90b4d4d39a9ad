"""How soon after the cue a motor-rhythm decision is right, decided as `eeg2arm stream` decides it.

For each fold of benchmarks/accuracy.py's motor-rhythm rows (eegmmidb_within_mu: a subject's model, one imagery run
held out; eegmmidb_cross_mu: the cross-subject model, three subjects held out; eegmmidb_new_subject_mu: that model
calibrated for each held-out subject on the first 10 trials of its first run, which are then not counted) the row's
Decoder is fitted on the fold's training files, and every held-out imagery run is replayed from its first sample:
its signal in µV through OnlineFeatures and the Streamer (the PyTorch step; hysteresis as `stream`'s defaults unless
--enter/--exit/--min-frames say otherwise). Each run is aligned by its own whole signal, as `prepare --like` aligns
it offline and `stream --align-from` applies that estimate. With --align-seconds S each row is also streamed as a
live session without a stored alignment is (`stream --align-seconds S`: aligned from its first S s), and both rows
then count only the cues after those S s ("offline" stays every cue's; a cue within a frame step after S may be read
from a frame that `stream` decided on the held signal and did not send). At each time t after a cue, the decision
of the newest frame that had ended by then is compared with the cue: the raw one (the class of highest probability)
and the hysteresis one (right, wrong, or none held). A cue counts at t only if its run lasts until then.

Each cue is followed by ~4.1 s of imagery, then ~4.2 s of rest before the next cue, and in these runs 76% of
consecutive cues name the other fist. At t = 0 the window holds the seconds before the cue and nothing of its
trial; what the decisions score there is not the decoding of this cue (why it is above chance is not measured), so
read the rise above the t = 0 column. "offline": the same models on each trial's 0-4 s window prepared by `prepare
--like`, as accuracy.py scores them. At 4 s the newest streamed frame ends up to one frame step (0.25 s) before the
trial's last frame (in these runs 0-0.2 s); for a cue on the stream's frame grid the two are the same frame.

    .venv/bin/python benchmarks/timecourse.py                     # the three rows (~2 min on 2 cores)
    .venv/bin/python benchmarks/timecourse.py --rows eegmmidb_within_mu --subjects 4 --enter 0.6
    .venv/bin/python benchmarks/timecourse.py --align-seconds 60    # + aligned as a live session is (later cues)

Prints one table: for each row and decision, the share of cues (mean ± sd over subjects) at each t, and the raw
decision's mean probability (that of the class it chose). A calibrated model's mean probability matches its raw
share right; where the mean probability is higher, the probabilities are overconfident, where lower, underconfident
(`stream --enter` is set against them). Results: docs/accuracy.md.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import mne
import numpy as np

from eeg2arm import Decoder
from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.fitting import recording_alignments
from eeg2arm.prepare import prepare_recordings
from eeg2arm.realtime.online import OnlineFeatures, model_recipe
from eeg2arm.realtime.smoothing import Hysteresis
from eeg2arm.realtime.streamer import Streamer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import (HERE, SUBJECTS, cues_of, eeg2arm, eegmmidb_folds, event_classes, fitted_decoder,  # noqa: E402
                      machine, opened)
from accuracy import tomllib  # noqa: E402

ROWS = ("eegmmidb_within_mu", "eegmmidb_cross_mu", "eegmmidb_new_subject_mu")
TIMES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)  # s after the cue
CHUNK_S = 0.0625  # s of signal per push: `stream --raw`'s default chunk
UNDECIDED = -1


def decisions_at(ends: np.ndarray, decisions: np.ndarray, cues: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """ends (n,) the end sample (exclusive) of each decided frame, in order; decisions (n,); cues (m,) and delays
    (d,) in samples -> (m, d): the decision of the newest frame that had ended by cue + delay (UNDECIDED before
    the first)."""
    newest = np.searchsorted(ends, cues[:, None] + delays[None, :], side="right") - 1  # (m, d)
    return np.where(newest >= 0, decisions[np.maximum(newest, 0)], UNDECIDED)


def streamed(decoder: Decoder, path: Path, raw: mne.io.BaseRaw, hysteresis: Hysteresis,
             align_samples: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One recording replayed from its first sample: (end sample of each decided frame (n,), its probabilities
    (n, K), its hysteresis decision (n,)). An aligned recipe takes the recording's alignment from all its samples,
    or with `align_samples` from its first ones, as `stream --align-seconds` does."""
    config = decoder.model_.config
    if raw.info["sfreq"] != config.sfreq:
        raise SystemExit(f"{path} runs at {raw.info['sfreq']:g} Hz, the model at {config.sfreq:g} Hz")
    recipe = model_recipe(config)
    whole = recipe.align and not align_samples
    align = recording_alignments({path: raw}, recipe)[path] if whole else None
    online = OnlineFeatures(recipe, align, align_samples if recipe.align else None)
    streamer = Streamer.from_model(decoder.model_, hysteresis)
    signal = raw.get_data(picks=list(config.stream_channels), units="uV")  # (C_in, n)
    chunk, results = round(CHUNK_S * config.sfreq), []
    for start in range(0, signal.shape[1], chunk):
        results += streamer.push(online.push(signal[:, start:start + chunk]))
    pool = config.cnn_time_pool
    ends = np.array([((r.frame + 1) * pool - 1) * online.s + online.w for r in results])
    return ends, np.stack([r.probs for r in results]), np.array([r.decision for r in results])


def calibrated(decoder: Decoder, path: Path, raw: mne.io.BaseRaw, n_cal: int, calibrate_args: list[str]) -> Decoder:
    """A copy of the cross-subject decoder calibrated (`eeg2arm calibrate` with the row's arguments) on the first n_cal
    trials of a new subject's first run, prepared like the training data and aligned by that run's whole signal."""
    prepared = prepare_recordings({path: raw}, decoder.like_, {path: "new"})
    with tempfile.TemporaryDirectory() as tmp:
        cross, new = Path(tmp) / "cross.pt", Path(tmp) / "new.pt"
        decoder.save(cross)
        np.save(Path(tmp) / "X.npy", prepared.X[:n_cal])
        np.save(Path(tmp) / "y.npy", prepared.y[:n_cal])
        eeg2arm("calibrate", "--ckpt", cross, "--x", Path(tmp) / "X.npy", "--y", Path(tmp) / "y.npy", "--save", new,
                *calibrate_args)
        own = copy.copy(decoder)  # the cross decoder keeps its model
        own.model_, _ = load_model_from_checkpoint(new, "cpu")
    return own


def row_timecourse(name: str, recipe: dict, subjects: tuple[str, ...], hysteresis: Hysteresis,
                   align_seconds: float | None = None,
                   new_subject: dict | None = None) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """{row label: {subject: {"raw" | "right" | "wrong": (len(TIMES),) shares of its cues, "confidence": (len(TIMES),)
    the raw decision's mean probability, "offline": (1,)}}}: the row with each run aligned by its whole signal and,
    with `align_seconds`, also by its first seconds, both then counting only the cues after them (before, `stream`
    sends no decision). A cue counts at time t only if its run lasts until cue + t (the last cue of a run has no 5 s
    and 6 s). With `new_subject` (the new-subject row of recipes.toml; `recipe` its cross row's), each held-out
    subject's model is the cross model calibrated on the first `calibration` trials of its first run, and those
    trials are not counted."""
    classes, counts = event_classes(recipe["prepare"]), defaultdict(lambda: defaultdict(float))
    variants = ({f"{name}, aligned from the whole run": None, f"{name}, aligned from its first {align_seconds:g} s":
                 align_seconds} if align_seconds else {name: None})
    for fold in eegmmidb_folds(name, recipe["prepare"], subjects, recipe.get("executed", False)):
        cross, own = fitted_decoder(fold, recipe), {}
        for (path, subject), raw in opened(fold.test_files).items():
            first_run = new_subject is not None and subject not in own
            if first_run:
                own[subject] = calibrated(cross, path, raw, new_subject["calibration"], new_subject["calibrate"])
            decoder = own.get(subject, cross)
            cues, labels = cues_of(raw, classes)
            offline = decoder.predict([raw])
            if len(offline) != len(labels):  # the offline trials must be the cues read here, in order
                raise SystemExit(f"{path}: the recipe cuts {len(offline)} trials of its {len(labels)} cues")
            waited = round(align_seconds * raw.info["sfreq"]) if align_seconds else 0
            if not (cues >= waited).any():
                raise SystemExit(f"--align-seconds {align_seconds:g}: {path.name} has no cue after it")
            delays = np.round(np.array(TIMES) * raw.info["sfreq"]).astype(int)
            lasts = cues[:, None] + delays[None, :] <= raw.n_times  # (m, d): the run reaches cue + t
            lasts &= cues[:, None] >= waited  # ... and the cue comes after the alignment's seconds
            scored = np.arange(len(cues)) >= (new_subject["calibration"] if first_run else 0)  # not calibration's
            lasts &= scored[:, None]
            truth = labels[:, None]
            for label, seconds in variants.items():
                ends, probs, held = streamed(decoder, path, raw, hysteresis, waited if seconds else None)
                c = counts[label, subject]
                c["raw"] = c["raw"] + ((decisions_at(ends, probs.argmax(axis=1), cues, delays) == truth) & lasts).sum(0)
                top = decisions_at(ends, probs.max(axis=1), cues, delays)  # (m, d), UNDECIDED before the first frame
                top = np.where(top == UNDECIDED, 1 / probs.shape[1], top)  # no frame yet: no preference
                c["confidence"] = c["confidence"] + (top * lasts).sum(axis=0)
                at = decisions_at(ends, held, cues, delays)
                c["right"] = c["right"] + ((at == truth) & lasts).sum(axis=0)
                c["wrong"] = c["wrong"] + ((at != truth) & (at != UNDECIDED) & lasts).sum(axis=0)
                c["cues"] = c["cues"] + lasts.sum(axis=0)
                c["offline"] += float((offline == decoder.classes_[labels])[scored].mean())
                c["runs"] += 1
        print(f"{name}: {', '.join(path.stem for path in fold.test_files)} streamed", file=sys.stderr, flush=True)
    return {label: {subject: {**{k: c[k] / c["cues"] for k in ("raw", "confidence", "right", "wrong")},
                              "offline": np.atleast_1d(c["offline"] / c["runs"])}
                    for (row, subject), c in counts.items() if row == label} for label in variants}


def table(results: dict[str, dict[str, dict[str, np.ndarray]]]) -> list[str]:
    head = " | ".join(f"{t:g} s" for t in TIMES)
    lines = [f"| row | decision | {head} | offline (0-4 s) |", "|---|---|" + "---|" * (len(TIMES) + 1)]
    what = {"raw": "raw (arg max) right", "confidence": "raw: its mean probability", "right": "hysteresis right",
            "wrong": "hysteresis wrong"}
    for name, per_subject in results.items():
        for key, label in what.items():
            shares = np.stack([s[key] for s in per_subject.values()])  # (subjects, len(TIMES))
            cells = " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in zip(shares.mean(axis=0), shares.std(axis=0)))
            offline = np.array([s["offline"][0] for s in per_subject.values()])
            last = f"{offline.mean():.3f} ± {offline.std():.3f}" if key == "raw" else "–"
            lines.append(f"| {name} | {label} | {cells} | {last} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    p.add_argument("--subjects", type=int, default=len(SUBJECTS), choices=range(4, 13),
                   help="the first N subjects (the cross row: 4 folds of N // 4 held out)")
    p.add_argument("--enter", type=float, default=0.7, help="hysteresis: probability to enter a class (stream's)")
    p.add_argument("--exit", type=float, default=0.5, help="hysteresis: probability below which it is released")
    p.add_argument("--min-frames", type=int, default=3, help="hysteresis: consecutive frames above --enter")
    p.add_argument("--align-seconds", type=float, default=None,
                   help="also align each run from its first S s, as `stream --align-seconds` does; both rows then "
                        "count only the cues after them (default: aligned from the whole run, every cue)")
    args = p.parse_args()
    if args.align_seconds is not None and not args.align_seconds > 0:
        p.error("--align-seconds must be > 0 (leave it out to align each run from its whole signal)")
    mne.set_log_level("ERROR")
    recipes = tomllib.loads((HERE / "recipes.toml").read_text())
    t0 = time.perf_counter()
    hysteresis = Hysteresis(args.enter, args.exit, args.min_frames)
    results = {}
    for name in args.rows:
        row = recipes[name]  # the new-subject row streams its cross row's model, calibrated
        recipe, new_subject = (recipes[row["cross"]], row) if "cross" in row else (row, None)
        results |= row_timecourse(name, recipe, SUBJECTS[:args.subjects], hysteresis, args.align_seconds, new_subject)
    cues = f"the cues after the first {args.align_seconds:g} s of each run" if args.align_seconds else "every cue"
    cues += " (offline: every cue)"
    if "eegmmidb_new_subject_mu" in args.rows:
        cues += "; the new-subject row leaves out its calibration trials, offline too"
    print("\n".join(table(results)))
    print(f"mean ± sd over {args.subjects} subjects; hysteresis enter {args.enter:g}, exit {args.exit:g}, "
          f"{args.min_frames} frames; {cues}; "
          f"{time.strftime('%Y-%m-%d')}, total {time.perf_counter() - t0:.0f} s on {machine()}")


if __name__ == "__main__":
    main()
