"""The CUDA paths, on a machine with a GPU: training with AMP, the ONNX Runtime CUDA session, the CUDA step graph.

Marked `gpu` and skipped without CUDA (this project's CI has none); run them with `pytest -m gpu` on a GPU host.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available())")]


def test_training_on_cuda_with_amp(tmp_path, bandpower):
    from eeg2arm.checkpoint import load_model_from_checkpoint
    from eeg2arm.config import EEGConfig
    from eeg2arm.train import TrainOptions, train

    X, y = bandpower
    path = tmp_path / "cuda.pt"
    config = EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, frame_embed=64)
    metrics = train(X, y, config, path, TrainOptions(epochs=2, batch=32, workers=0, device="cuda"), echo=lambda s: None)
    assert np.isfinite(metrics["val_loss"])
    model, _ = load_model_from_checkpoint(path, "cuda")
    assert next(model.parameters()).is_cuda


def test_onnx_runtime_uses_cuda_and_agrees_with_pytorch(trained, exported, bandpower):
    from eeg2arm.checkpoint import load_model_from_checkpoint
    from export.session import CUDA, OnnxPredictor

    predictor = OnnxPredictor(exported[0], device="cuda")
    assert predictor.providers[0] == CUDA
    model, _ = load_model_from_checkpoint(trained[0])
    x = bandpower[0][:16]
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    assert np.abs(predictor.run(x)["probs"] - expected).max() <= 1e-4  # TF32/cuDNN kernels: looser than CPU's 1e-5


def test_step_graph_streams_on_cuda(exported, bandpower):
    from eeg2arm.realtime.streamer import Streamer
    from export.session import CUDA
    from export.step import OnnxStep

    cpu, gpu = Streamer(OnnxStep(exported[1].step, "cpu")), Streamer(OnnxStep(exported[1].step, "cuda"))
    assert gpu.step.providers[0] == CUDA
    stream = np.concatenate(list(bandpower[0][:4]), axis=-1)  # (C, F, 60) real frames
    a, b = cpu.push(stream), gpu.push(stream)
    assert np.abs(np.stack([r.probs for r in a]) - np.stack([r.probs for r in b])).max() <= 1e-4
