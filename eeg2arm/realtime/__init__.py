"""Real time: raw EEG as it arrives -> features -> one decision per pooled frame, at a cost that does not grow;
the decisions out to a controller; and recording a calibration session from live streams.

A map, in the order a sample travels (`eeg2arm stream` wires them together in `live.run_stream`):

    sources.py    raw chunks (C, n) in µV: a recording replayed at real speed, or a live LSL stream (mne-lsl)
    online.py     OnlineFeatures: the frames `eeg2arm prepare` would compute, as soon as they are complete
    streamer.py   Streamer: frames in, one StepResult per pooled frame out (numpy only: the service uses it too)
    decoder.py    StreamingDecoder / TorchStep: the PyTorch step behind a Streamer (export/step.py is the ONNX one)
    smoothing.py  Hysteresis: per-frame probabilities -> a steady decision, so the arm does not jitter
    live.py       run_stream and open_decoder: the loop, each decision's timestamp, the summary, the backend
    outlet.py     decisions out: an LSL stream (probabilities + decision, markers on change) and JSON lines
    view/         `stream --view`: a live page of the stream in a browser (its __init__ maps it)

and beside the loop, `eeg2arm record` (a live EEG stream + a cue-marker stream -> one FIF file):

    record.py     the session: the two inlets, the progress line, what ends it (Ctrl-C, SIGTERM, silence, ...)
    timeline.py   where the markers land: the EEG's timeline (sample index <-> LSL time), the cue stream's markers
    recorder.py   the recording on disk: pieces as they come, joined, annotated and linked into place at the end

Every chunk carries the LSL timestamp of each of its samples (sources.py also finds streams by name, reads their
units, and tells jitter from stamps going back or a stream replaced by another), so each decision is stamped
with the last sample it needs.

Nothing here is imported by `import eeg2arm`; torch is imported only by decoder.py.
"""
