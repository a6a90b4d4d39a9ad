#!/usr/bin/env bash
# The main job end to end: train -> infer -> export (ONNX, parity checked, into a BentoML model store)
# -> serve -> one HTTP request -> stop. `make demo` runs it with the venv on PATH.
#   DATA=folder with X.npy, y.npy (default: the embedded sample)  OUT=out  PORT=3000  EPOCHS=15
set -euo pipefail
cd "$(dirname "$0")/.."  # bentoml serve reads bentofile.yaml here

DATA=${DATA:-eeg2arm/sample}
OUT=${OUT:-out}
PORT=${PORT:-3000}
EPOCHS=${EPOCHS:-15}
port_free() {  # as bentoml serve binds it: another server's listener makes it busy, TIME_WAIT leftovers do not
    python -c "import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null
}
port_free "$PORT" || { echo "Error: port $PORT is in use: run PORT=<a free port> make demo" >&2; exit 2; }
mkdir -p "$OUT"
export BENTOML_HOME="$(cd "$OUT" && pwd)/bentoml" EEG2ARM_ONNX=  # the demo's own model store (OUT relative or absolute)

eeg2arm train --x "$DATA/X.npy" --y "$DATA/y.npy" --save "$OUT/ckpt.pt" --classes 2 --elec 32 --bands 4 \
    --epochs "$EPOCHS" --workers 0
eeg2arm infer --ckpt "$OUT/ckpt.pt" --x "$DATA/X.npy" >"$OUT/predictions.txt"  # one line per window
eeg2arm export --ckpt "$OUT/ckpt.pt" --out "$OUT/model.onnx" --bentoml

bentoml serve --host 127.0.0.1 --port "$PORT" >"$OUT/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 240); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
    sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "server did not get ready"; cat "$OUT/serve.log"; exit 1; }

python -c "import json, numpy as np; print(json.dumps({'x': np.load('$DATA/X.npy')[0].tolist()}))" >"$OUT/window.json"
echo "POST /predict (window 0):"
curl -sS --fail-with-body -X POST "http://127.0.0.1:$PORT/predict" -H 'Content-Type: application/json' \
    -d @"$OUT/window.json"
echo

python - "$OUT" "$DATA" <<'EOF'
import re, sys
from pathlib import Path
import numpy as np
out, data = Path(sys.argv[1]), Path(sys.argv[2])
pred = [int(m) for m in re.findall(r"pred=(\d+)", (out / "predictions.txt").read_text())]
y = np.load(data / "y.npy")
print(f"demo done: accuracy {np.mean(np.array(pred) == y):.3f} on the {len(y)} windows it trained on (a check that "
      f"every stage runs, not a score); in {out}/: ckpt.pt, model.onnx + model.step.onnx, predictions.txt (one line "
      f"per window), window.json, serve.log, and the model store bentoml/")
EOF
