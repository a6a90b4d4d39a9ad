"""Dead electrodes in a live session: how much of the decoding `eeg2arm stream` keeps when 1, 2 or 4 electrodes die.

Held-out-style replays of shared recordings through `StreamRun` (the code of `eeg2arm stream`), with electrodes dead
from the first sample, flat (zero) or NaN, and each model trained with and without `train --channel-drop 0.2`:

  * eyes: the eyes_open_closed recipe trained on the first 150 s of each recording, the last 50 s of each streamed,
    with the electrodes of the occipital alpha dead (Oz, O1, O2, Pz: what this task needs most); accuracy per
    decided frame against the recording's class;
  * motor: the motor-rhythm recipe across subjects (eegmmidb_cross_mu) trained on S001-S009 (since stop 30 a fitted
    regression that trains no network, so its `--channel-drop` model is the recipe's again), the imagery runs of
    S010-S012 streamed (each aligned by its clean recording, as `--align-from` gives it) with sensorimotor
    electrodes dead (C3, C4, Cz, FC3); accuracy of the decision 4 s after each left/right cue;
  * motor-live: the same, each run aligned from its own first 60 s as streamed (`--align-seconds 60`: through the
    repair, dead electrodes and all), as a session that starts with the electrodes already dead is.

Agreement: the share of decided frames whose class (argmax) is the clean replay's. `repaired` is what stream does
(eeg2arm.realtime.health); `as is` feeds the same signal to the recipe unrepaired (NaN frames are then not decided:
counted as disagreeing and wrong).

    .venv/bin/python benchmarks/bad_channels.py --cases eyes   # 47 min on 2 cores under load
    .venv/bin/python benchmarks/bad_channels.py --cases motor motor-live   # a few minutes each
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # per-epoch bars would drown the table; tqdm reads it on import

import mne
import numpy as np

from eeg2arm.train import validates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import EXECUTED, RAW, RUNS, SUBJECTS, eeg2arm, run_file, tomllib  # noqa: E402

HERE = Path(__file__).resolve().parent
TRAIN_S = 150.0
DECIDE_S = 4.0  # motor: the decision this long after a cue is the trial's
LIVE_S = 60.0  # motor-live: seconds of each run the alignment is estimated from (stream's --align-seconds default)


@dataclass
class Replay:
    """One recording to stream: its signal (C_in, n) in µV by channel name, and what is true of it."""

    signal: np.ndarray
    channels: list[str]
    sfreq: float
    truth: int | list[tuple[int, int]]  # the recording's class, or (cue sample, class) per cue
    align_from: Path | None = None
    align_seconds: float | None = None  # or aligned from its own first seconds, as streamed


@dataclass
class Case:
    name: str
    models: dict[str, Path]
    replays: list[Replay]
    dead: dict[int, list[str]]


def decided(ckpt: Path, replay: Replay, dead: list[str], value: float, repaired: bool) -> tuple[np.ndarray, ...]:
    """(ends (m,) in samples, classes (m,)) of every decided frame of the replay streamed in 1/16 s chunks."""
    from eeg2arm.checkpoint import load_model_from_checkpoint
    from eeg2arm.errors import UserInputError
    from eeg2arm.fitting import load_alignment
    from eeg2arm.realtime.live import StreamRun, StreamSummary
    from eeg2arm.realtime.online import OnlineFeatures, model_recipe
    from eeg2arm.realtime.sources import Chunk
    from eeg2arm.realtime.streamer import Streamer

    model, meta = load_model_from_checkpoint(ckpt)
    config = meta["config"]
    recipe = model_recipe(config)
    align = load_alignment(replay.align_from, recipe) if replay.align_from else None
    signal = replay.signal[[replay.channels.index(c) for c in config.stream_channels]]
    signal[[list(config.stream_channels).index(c) for c in dead]] = value
    chunks = [Chunk(signal[:, i:i + 16], np.arange(i, min(i + 16, signal.shape[1])) / config.sfreq)
              for i in range(0, signal.shape[1], 16)]
    decoder, online = Streamer.from_model(model), OnlineFeatures.for_model(config, align, replay.align_seconds)
    w, s, pool = online.w, online.s, config.cnn_time_pool
    if repaired:
        run = StreamRun(decoder, online, lambda _: None, [], StreamSummary())
        results = [r for c in chunks for piece in run.bridge.push(c) for r in run.push(piece)]
    else:
        results = []
        try:
            for chunk in chunks:
                frames = online.push(chunk.samples)
                finite = np.isfinite(frames).all(axis=(0, 1))
                results += decoder.push(frames[..., finite]) if finite.any() else []
        except UserInputError:  # a NaN channel leaves no sample to estimate the alignment from: nothing decided
            pass
    n = n_decisions(signal.shape[1], w, s, pool)
    classes = np.full(n, -1)
    classes[:len(results)] = [r.pred for r in results]  # unrepaired NaN: fewer decisions (the rest count wrong)
    return (np.arange(n) * pool + pool - 1) * s + w, classes


def n_decisions(n_samples: int, w: int, s: int, pool: int) -> int:
    return (0 if n_samples < w else 1 + (n_samples - w) // s) // pool


def scores(case: Case, ckpt: Path, dead: list[str], value: float, repaired: bool,
           clean: list[np.ndarray]) -> tuple[float, float, float]:
    """(agreement with the clean replays, share decided, accuracy) over the case's replays."""
    agree, decided_, right = [], [], []
    for replay, reference in zip(case.replays, clean):
        ends, classes = decided(ckpt, replay, dead, value, repaired)
        agree.append(classes == reference)
        decided_.append(classes >= 0)
        if isinstance(replay.truth, int):
            right.append(classes == replay.truth)
        else:
            last = np.searchsorted(ends, [at + DECIDE_S * replay.sfreq for at, _ in replay.truth], side="right") - 1
            right.append(classes[last] == [k for _, k in replay.truth])
    return tuple(float(np.concatenate(x).mean()) for x in (agree, decided_, right))


def train_models(tmp: Path, data: Path, train_args: list[str], groups: list[str]) -> dict[str, Path]:
    models = {}
    for label, extra in (("recipe", []), ("+ --channel-drop 0.2", ["--channel-drop", "0.2"])):
        models[label] = tmp / f"{data.name}{len(models)}.pt"
        eeg2arm("train", "--x", data / "X.npy", "--y", data / "y.npy", "--save", models[label], *groups,
                *train_args, *extra)
    return models


def eyes_case(tmp: Path, recipes: dict) -> Case:
    recipe, train, replays = recipes["eyes_open_closed"], [], []
    for k, name in enumerate(("EO", "EC")):  # the recipe's class order: eyes_open, eyes_closed
        raw = mne.io.read_raw_fif(RAW / "eyes_open_closed" / f"sub-01_ses-01_task-{name}_run-01_eeg_0-200s_raw.fif",
                                  preload=True, verbose="error")
        train.append(tmp / f"{name}_train_raw.fif")
        raw.copy().crop(0, TRAIN_S, include_tmax=False).save(train[-1], verbose="error")
        replays.append(Replay(raw.copy().crop(TRAIN_S).get_data(units="uV"), raw.ch_names, raw.info["sfreq"], k))
    eeg2arm("prepare", *train, "--out", tmp / "eyes", *recipe["prepare"])
    return Case("eyes", train_models(tmp, tmp / "eyes", recipe["train"], ["--no-groups"]), replays,
                {1: ["Oz"], 2: ["Oz", "O1"], 4: ["Oz", "O1", "O2", "Pz"]})


@functools.cache
def motor_models(tmp: Path, prepare: tuple[str, ...], train: tuple[str, ...]) -> dict[str, Path]:
    """The cross-subject models trained on S001-S009, once per run: both motor cases stream them."""
    files = [run_file(s, r) for s in SUBJECTS[:9] for r in RUNS + EXECUTED]
    eeg2arm("prepare", *files, "--out", tmp / "motor", *prepare)
    groups = ["--groups", tmp / "motor" / "groups.npy"] if validates(train) else []  # a validation split by subject
    return train_models(tmp, tmp / "motor", list(train), groups)


def motor_case(tmp: Path, recipes: dict, align_seconds: float | None = None) -> Case:
    """Each held-out run aligned by its clean recording, or from its own first align_seconds as streamed."""
    recipe = recipes["eegmmidb_cross_mu"]
    models = motor_models(tmp, tuple(recipe["prepare"]), tuple(recipe["train"]))
    replays = []
    for s, r in [(s, r) for s in SUBJECTS[9:] for r in RUNS]:
        path, like = run_file(s, r), tmp / f"{s}{r}"
        if not align_seconds:
            eeg2arm("prepare", path, "--out", like, "--like", tmp / "motor" / "meta.json")  # its alignment
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
        cues = [(round(a["onset"] * raw.info["sfreq"]), {"T1": 0, "T2": 1}[a["description"]])
                for a in raw.annotations if a["description"] in ("T1", "T2")]
        replays.append(Replay(raw.get_data(units="uV"), raw.ch_names, raw.info["sfreq"], cues,
                              None if align_seconds else like / "meta.json", align_seconds))
    dead = {1: ["C3.."], 2: ["C3..", "C4.."], 4: ["C3..", "C4..", "Cz..", "Fc3."]}
    return Case("motor-live" if align_seconds else "motor", models, replays, dead)


def motor_live_case(tmp: Path, recipes: dict) -> Case:
    return motor_case(tmp, recipes, LIVE_S)


CASES = {"eyes": eyes_case, "motor": motor_case, "motor-live": motor_live_case}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", type=Path, default=HERE / "recipes.toml")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = p.parse_args()
    mne.set_log_level("ERROR")
    recipes = tomllib.loads(args.recipes.read_text())
    t0, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in args.cases:
            case = CASES[name](tmp, recipes)
            for label, ckpt in case.models.items():
                clean = [decided(ckpt, replay, [], 0.0, True)[1] for replay in case.replays]
                rows.append((case.name, label, "none", "-", *scores(case, ckpt, [], 0.0, True, clean)))
                for n, dead in case.dead.items():
                    for kind, value in (("flat", 0.0), ("NaN", np.nan)):
                        for repaired in (True, False):
                            rows.append((case.name, label, f"{n} {kind} ({', '.join(d.strip('.') for d in dead)})",
                                         "repaired" if repaired else "as is",
                                         *scores(case, ckpt, dead, value, repaired, clean)))
                    print(f"{case.name} {label}: {n} dead ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                          flush=True)
    print("| task | model | dead electrodes | stream | agreement with the clean replay | decided | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row[:4]) + " | " + " | ".join(f"{v:.3f}" for v in row[4:]) + " |")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
