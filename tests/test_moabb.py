"""eeg2arm.Decoder in a pipeline of MOABB's evaluations (WithinSessionEvaluation, CrossSubjectEvaluation), on MOABB's
FakeDataset: its paradigm hands the pipeline arrays in µV, so the pipeline is built, before any data is seen, with
the dataset's sfreq, channel names and units."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from eeg2arm import Decoder

MU_BETA = {"prepare": ["--features", "bandpower", "--bands", "mu:8-13,beta:13-30", "--frame-window", "0.5",
                       "--frame-step", "0.25"],
           "train": ["--frame-embed", "16", "--epochs", "2", "--batch", "16", "--workers", "0", "--device", "cpu"]}


@pytest.fixture
def moabb_setup(tmp_path, monkeypatch):
    """(dataset, paradigm, pipelines): two fake subjects, one session of two 120 s runs, left/right hand imagery on
    C3, Cz, C4 at 128 Hz. MNE's config (where FakeDataset notes its folder) goes to tmp_path, not the user's home."""
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(tmp_path))
    from moabb.datasets.fake import FakeDataset
    from moabb.paradigms import LeftRightImagery

    dataset = FakeDataset(event_list=["left_hand", "right_hand"], n_sessions=1, n_runs=2, n_subjects=2,
                          paradigm="imagery", duration=120, seed=7)
    paradigm = LeftRightImagery(fmin=8, fmax=30, resample=128)
    decoder = Decoder(MU_BETA, sfreq=128.0, ch_names=list(dataset.channels), units="uV")
    return dataset, paradigm, {"EEGModel": make_pipeline(decoder)}


@pytest.mark.parametrize("evaluation", ["WithinSessionEvaluation", "CrossSubjectEvaluation"])
def test_decoder_runs_in_moabbs_evaluations(evaluation, moabb_setup, tmp_path):
    import moabb.evaluations

    dataset, paradigm, pipelines = moabb_setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MOABB's and MNE's deprecation chatter
        results = getattr(moabb.evaluations, evaluation)(paradigm=paradigm, datasets=[dataset], overwrite=True,
                                                         hdf5_path=str(tmp_path / "results")).process(pipelines)
    assert sorted(results["subject"].astype(str)) == ["1", "2"]  # one score per subject (and its one session)
    assert set(results["pipeline"]) == {"EEGModel"}
    scores = results["score"].to_numpy(dtype=float)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()  # ROC AUC of predict_proba
