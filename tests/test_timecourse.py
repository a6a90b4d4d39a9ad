"""benchmarks/timecourse.py: a streamed decision is read at the right frame, and equals the offline one."""
import sys

import numpy as np

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import accuracy  # noqa: E402
import timecourse  # noqa: E402
from eeg2arm.realtime.smoothing import Hysteresis  # noqa: E402

RECIPES = accuracy.tomllib.loads((REPO / "benchmarks" / "recipes.toml").read_text())


def test_the_decision_read_at_a_time_is_the_newest_frames_that_had_ended():
    ends, decisions = np.array([100, 140, 180]), np.array([0, 1, 0])
    at = timecourse.decisions_at(ends, decisions, np.array([90, 100]), np.array([0, 40, 45, 80, 500]))
    assert at.tolist() == [[-1, 0, 0, 1, 0],  # cue 90: none ended by 90; frame 0 by 130; frame 1 by 170
                           [0, 1, 1, 0, 0]]  # cue 100: a frame ending at its sample counts


def test_a_streamed_run_gives_each_cue_on_the_frame_grid_the_offline_trials_probabilities():
    """The within-subject motor-rhythm recipe on S001's imagery runs 4 and 8; run 12 streamed from its first sample.
    A cue on the recording's 0.25 s grid ends a streamed frame exactly where its trial's last offline frame ends, so
    the streamed probabilities 4 s after it are Decoder.predict_proba's for that trial."""
    recipe, files = RECIPES["eegmmidb_within_mu"], [accuracy.run_file("S001", r) for r in accuracy.RUNS]
    decoder = accuracy.recipe_decoder(recipe).fit([accuracy.opened([path]).popitem()[1] for path in files[:2]])
    (path, _), raw = accuracy.opened([files[2]]).popitem()
    ends, probs, held = timecourse.streamed(decoder, path, raw, Hysteresis())
    step, sfreq = np.diff(ends), raw.info["sfreq"]
    assert len(ends) > 400 and (step == round(0.25 * sfreq)).all() and ends[0] == round(3 * sfreq)
    cues, labels = accuracy.cues_of(raw, accuracy.event_classes(recipe["prepare"]))
    offline = decoder.predict_proba([raw])  # (cues, K)
    assert len(cues) == len(offline) == 15 and set(labels) == {0, 1}
    on_grid = (cues + round(4 * sfreq) - ends[0]) % step[0] == 0
    assert on_grid.sum() == 3  # S001R12's cues at 12.5, 54 and 95.5 s (of 15)
    frame = timecourse.decisions_at(ends, np.arange(len(ends)), cues, np.array([round(4 * sfreq)]))[:, 0]
    assert np.allclose(probs[frame[on_grid]], offline[on_grid], atol=1e-4)
    off = ~np.isclose(probs[frame[~on_grid]], offline[~on_grid], atol=1e-4).all(axis=1)
    assert off.sum() > len(off) // 2  # off the grid the streamed frame is another window than the trial's
    assert held.tolist() == Hysteresis().run(probs)  # the stream's smoothing of these very probabilities
    live_ends, live_probs, _ = timecourse.streamed(decoder, path, raw, Hysteresis(), round(60 * sfreq))
    assert np.array_equal(live_ends, ends) and not np.allclose(live_probs, probs, atol=1e-3)  # aligned on 60 s only


def test_a_new_subject_is_calibrated_on_its_first_trials_and_the_cross_decoder_is_kept():
    """The new-subject row: a copy of the cross decoder calibrated (`eeg2arm calibrate`) on the first 10 trials of
    the subject's first run; the cross decoder's own model is unchanged."""
    recipe = RECIPES["eegmmidb_cross_mu"]
    recordings = [accuracy.opened([accuracy.run_file(s, "R04")]).popitem()[1] for s in ("S001", "S002")]
    decoder = accuracy.recipe_decoder(recipe).fit(recordings, groups=["S001", "S002"])
    (path, _), raw = accuracy.opened([accuracy.run_file("S003", "R04")]).popitem()
    before = decoder.predict_proba([raw])
    own = timecourse.calibrated(decoder, path, raw, 10, RECIPES["eegmmidb_new_subject_mu"]["calibrate"])
    assert np.array_equal(decoder.predict_proba([raw]), before)
    assert np.abs(own.predict_proba([raw]) - before).max() > 1e-3 and own.model_ is not decoder.model_
