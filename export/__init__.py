"""Export eeg2arm checkpoints to ONNX and run them in ONNX Runtime.

    onnx_export  checkpoint -> model.onnx (dynamic batch/time, config in metadata, measured parity)
    graph        the torch module the graph is exported from: x -> logits, probs, frame_logits
    metadata     write/read the EEGConfig and export facts in ONNX metadata_props
    session      ONNX Runtime session (CUDA or CPU) with input validation: OnnxPredictor
    step         the streaming step graph (model.step.onnx) in ONNX Runtime: OnnxStep, step_beside
    parity       PyTorch vs ONNX Runtime max abs errors on real windows

Modules import torch/onnx/onnxruntime at the top: import them lazily from the CLI.
"""
