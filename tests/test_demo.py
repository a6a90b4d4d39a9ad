"""`make demo` (scripts/demo.sh) as a newcomer runs it, shortened to one epoch: it ends with one line naming the
accuracy on the sample and where the outputs went; the per-window predictions go to a file, not the terminal. Then
what the README has a newcomer do with its outputs: its Python snippets print, and the recording it names for
`out/ckpt.pt` streams."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_ends_with_one_line_and_keeps_the_per_window_lines_in_a_file(tmp_path):
    with socket.socket() as s:  # a port free now (the script refuses a taken one)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"),
           "PORT": str(port), "EPOCHS": "1"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    accuracy = re.fullmatch(r"demo done: accuracy (\d\.\d{3}) on the 100 windows it trained on \(a check that every "
                            r"stage runs, not a score\); in (\S+)/: ckpt\.pt, model\.onnx \+ model\.step\.onnx, "
                            r"predictions\.txt \(one line per window\), window\.json, serve\.log, and the model store "
                            r"bentoml/", last)
    assert accuracy and accuracy.group(2) == str(tmp_path / "out"), last
    predictions = (tmp_path / "out" / "predictions.txt").read_text().splitlines()
    assert len(predictions) == 100 and "[sample" not in done.stdout
    pred = np.array([int(re.search(r"pred=(\d)", line).group(1)) for line in predictions])
    assert float(accuracy.group(1)) == round(float(np.mean(pred == np.load(REPO / "eeg2arm/sample/y.npy"))), 3)
    assert (tmp_path / "out" / "bentoml" / "models" / "eeg2arm").is_dir()  # the store is under OUT, however given
    for name in ("ckpt.pt", "model.onnx", "model.step.onnx", "window.json", "serve.log"):
        assert (tmp_path / "out" / name).is_file(), name

    ckpt = tmp_path / "out" / "ckpt.pt"
    snippets = [code for code in re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
                if '"out/ckpt.pt"' in code]  # the ones on the demo's outputs (From Python's: test_readme_python.py)
    printed = [subprocess.run([sys.executable, "-c", code.replace('"out/ckpt.pt"', repr(str(ckpt)))], cwd=REPO,
                              capture_output=True, text=True, timeout=120) for code in snippets]
    assert [p.returncode for p in printed] == [0, 0], [p.stderr for p in printed]
    assert re.fullmatch(r"torch\.Size\(\[100, 2\]\) \[('eyes_(open|closed)', ){2}'eyes_(open|closed)'\]\n",
                        printed[0].stdout), printed[0].stdout
    assert re.fullmatch(r"\[(-1|0|1)(, (-1|0|1)){6}\]\n", printed[1].stdout), printed[1].stdout

    recording = re.search(r"`\.\./shared/data/(raw/eyes_open_closed/\S+EC\S+\.fif)`", (REPO / "README.md").read_text())
    done = subprocess.run([sys.executable, "-m", "eeg2arm", "stream", "--raw", str(SHARED_DATA / recording.group(1)),
                           "--ckpt", str(ckpt), "--fast", "--duration", "10", "--device", "cpu"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "decisions=20 " in done.stdout, done.stdout + done.stderr
