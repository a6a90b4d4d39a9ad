"""Dead electrodes in a live session: how much of the decoding `eeg2arm stream` keeps when 1, 2 or 4 electrodes die.

Held-out-style replays of the shared eyes-open/closed recordings: a model is trained (the eyes_open_closed recipe of
benchmarks/recipes.toml, with and without `train --channel-drop 0.2`) on the first 150 s of each recording, and the
last 50 s of each are streamed through `run_stream` (the code of `eeg2arm stream`) with the electrodes nearest the
occipital alpha (Oz, O1, O2, Pz: the ones this task needs most) dead: flat (zero) or NaN from the first sample. Per
decided frame: agreement of its class (argmax) with the clean replay's, and accuracy against the recording's class;
`repaired` is what stream does (eeg2arm.realtime.health), `as is` feeds the same signal to the recipe unrepaired
(NaN frames are then lost: counted wrong).

    .venv/bin/python benchmarks/bad_channels.py      # ~3 min on 2 cores
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import mne
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import RAW, eeg2arm, tomllib  # noqa: E402

HERE = Path(__file__).resolve().parent
TRAIN_S = 150.0
DEAD = {1: ["Oz"], 2: ["Oz", "O1"], 4: ["Oz", "O1", "O2", "Pz"]}


def split(tmp: Path) -> tuple[list[Path], list[tuple[np.ndarray, int]], list[str]]:
    """The recordings' first TRAIN_S s as files to prepare; the rest as (signal (C, n) µV, class) to stream."""
    train, test = [], []
    for k, name in enumerate(("EO", "EC")):  # the recipe's class order: eyes_open, eyes_closed
        raw = mne.io.read_raw_fif(RAW / "eyes_open_closed" / f"sub-01_ses-01_task-{name}_run-01_eeg_0-200s_raw.fif",
                                  preload=True, verbose="error")
        train.append(tmp / f"{name}_train_raw.fif")
        raw.copy().crop(0, TRAIN_S, include_tmax=False).save(train[-1], verbose="error")
        test.append((raw.copy().crop(TRAIN_S).get_data(units="uV"), k))
    return train, test, raw.ch_names


def frames_decided(ckpt: Path, signal: np.ndarray, channels: list[str], repaired: bool) -> np.ndarray:
    """(frames,) the class of every decided frame of the signal streamed in 1/16 s chunks (-1: not decided)."""
    from eeg2arm.checkpoint import load_model_from_checkpoint
    from eeg2arm.realtime.live import StreamRun, StreamSummary
    from eeg2arm.realtime.online import OnlineFeatures
    from eeg2arm.realtime.sources import Chunk
    from eeg2arm.realtime.streamer import Streamer

    model, meta = load_model_from_checkpoint(ckpt)
    config = meta["config"]
    signal = signal[[channels.index(c) for c in config.stream_channels]]
    chunks = [Chunk(signal[:, i:i + 16], np.arange(i, min(i + 16, signal.shape[1])) / config.sfreq)
              for i in range(0, signal.shape[1], 16)]
    decoder = Streamer.from_model(model)
    if repaired:
        run = StreamRun(decoder, OnlineFeatures.for_model(config), lambda s: None, [], StreamSummary())
        return np.array([r.pred for c in chunks for piece in run.bridge.push(c) for r in run.push(piece)])
    online, preds = OnlineFeatures.for_model(config), []
    for chunk in chunks:
        frames = online.push(chunk.samples)
        finite = np.isfinite(frames).all(axis=(0, 1))
        preds += [-1] * (int((~finite).sum()) // config.cnn_time_pool)  # NaN frames: no decision
        preds += [r.pred for r in decoder.push(frames[..., finite])] if finite.any() else []
    return np.array(preds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", type=Path, default=HERE / "recipes.toml")
    args = p.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    mne.set_log_level("ERROR")
    recipe = tomllib.loads(args.recipes.read_text())["eyes_open_closed"]
    t0, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        train, test, channels = split(tmp)
        eeg2arm("prepare", *train, "--out", tmp / "train", *recipe["prepare"])
        models = {}
        for label, extra in (("recipe", []), ("+ --channel-drop 0.2", ["--channel-drop", "0.2"])):
            models[label] = tmp / f"{len(models)}.pt"
            eeg2arm("train", "--x", tmp / "train" / "X.npy", "--y", tmp / "train" / "y.npy", "--save", models[label],
                    "--no-groups", *recipe["train"], *extra)
        for label, ckpt in models.items():
            clean = [frames_decided(ckpt, signal, channels, True) for signal, _ in test]
            truth = np.concatenate([np.full(len(c), k) for c, (_, k) in zip(clean, test)])
            clean_all = np.concatenate(clean)
            rows.append((label, "none", "-", 1.0, 1.0, float((clean_all == truth).mean())))
            for n, dead in DEAD.items():
                for kind, value in (("flat", 0.0), ("NaN", np.nan)):
                    for repaired in (True, False):
                        preds = []
                        for (signal, _), reference in zip(test, clean):
                            broken = signal.copy()
                            broken[[channels.index(c) for c in dead]] = value
                            got = frames_decided(ckpt, broken, channels, repaired)[:len(reference)]
                            preds.append(np.pad(got, (0, len(reference) - len(got)), constant_values=-1))
                        got = np.concatenate(preds)
                        rows.append((label, f"{n} {kind} ({', '.join(dead)})", "repaired" if repaired else "as is",
                                     float((got == clean_all).mean()), float((got >= 0).mean()),
                                     float((got == truth).mean())))
                print(f"{label}: {n} dead done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print("| model | dead electrodes | stream | agreement with the clean replay | frames decided | accuracy |")
    print("|---|---|---|---|---|---|")
    for label, dead, how, agree, decided, acc in rows:
        print(f"| {label} | {dead} | {how} | {agree:.3f} | {decided:.3f} | {acc:.3f} |")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
