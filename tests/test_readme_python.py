"""The README's "From Python" snippets run as written, from a checkout beside ../shared, each in a fresh Python."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, SHARED_DATA


def from_python_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_from_python_snippets_run_as_written(tmp_path):
    blocks = from_python_blocks()
    assert len(blocks) == 2 and "cross_val_score" in blocks[0] and "WithinSessionEvaluation" in blocks[1]
    checkout = tmp_path / "eeg2arm"  # ../shared from here is the shared data, as beside a real checkout
    checkout.mkdir()
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    env = {**os.environ, "HOME": str(tmp_path), "_MNE_FAKE_HOME_DIR": str(tmp_path), "TQDM_DISABLE": "1"}
    outputs = []
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], cwd=checkout, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    scores = [float(v) for v in re.search(r"^\[([0-9. ]+)\]$", outputs[0], flags=re.M).group(1).split()]
    assert len(scores) == 3 and all(0 <= s <= 1 for s in scores)
    assert "['negativity' 'positivity']" in outputs[0]
    assert {p.name for p in checkout.iterdir()} == {"scp.pt", "scp.onnx", "scp.step.onnx"}
    rows = [line.split() for line in outputs[1].splitlines() if line.split()[1:2] and "FakeDataset" in line]
    assert len(rows) == 2 and sorted(row[2] for row in rows) == ["1", "2"]  # one score per subject
    assert all(0 <= float(row[-1]) <= 1 for row in rows)


def test_the_snippets_name_files_that_exist():
    for path in re.findall(r'"(\.\./shared/[^"]+)"', "".join(from_python_blocks())):
        assert (REPO / path).is_file() or (SHARED_DATA.parent / Path(path).relative_to("../shared")).is_file(), path
