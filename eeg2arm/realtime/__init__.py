"""Real time: raw EEG as it arrives -> features -> one decision per pooled frame, at a cost that does not grow.

A map, in the order a sample travels (`eeg2arm stream` wires them together in `live.run_stream`):

    sources.py    raw chunks (C, n) in µV: a recording replayed at real speed, or a live LSL stream (mne-lsl)
    online.py     OnlineFeatures: the frames `eeg2arm prepare` would compute, as soon as they are complete
    streamer.py   Streamer: frames in, one StepResult per pooled frame out (numpy only: the service uses it too)
    decoder.py    StreamingDecoder / TorchStep: the PyTorch step behind a Streamer (export/step.py is the ONNX one)
    smoothing.py  Hysteresis: per-frame probabilities -> a steady decision, so the arm does not jitter
    live.py       run_stream and open_decoder: the loop, the summary and the choice of backend

Nothing here is imported by `import eeg2arm`; torch is imported only by decoder.py.
"""
