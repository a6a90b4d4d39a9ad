#!/usr/bin/env bash
# The whole path in one go: train -> export (into a BentoML store) -> serve in the background -> one request -> stop.
#   bash scripts/demo.sh            (from anywhere; DATA=... PORT=... EPOCHS=... to change the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."  # bentoml serve reads bentofile.yaml here

DATA=${DATA:-../shared/data/bandpower}
PORT=${PORT:-3000}
EPOCHS=${EPOCHS:-5}
work=$(mktemp -d)
export BENTOML_HOME=$work/bentoml EEG2ARM_ONNX=  # a fresh store, served from it as eeg2arm:latest

eeg2arm train --x "$DATA/X.npy" --y "$DATA/y.npy" --save "$work/ckpt.pt" --classes 2 --elec 32 --bands 4 \
    --frame-embed 64 --epochs "$EPOCHS" --workers 0
eeg2arm export --ckpt "$work/ckpt.pt" --out "$work/model.onnx" --bentoml

bentoml serve --host 127.0.0.1 --port "$PORT" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.5
done

python -c "import json, numpy as np; print(json.dumps({'x': np.load('$DATA/X.npy')[0].tolist()}))" >"$work/window.json"
curl -sS -X POST "http://127.0.0.1:$PORT/predict" -H 'Content-Type: application/json' -d @"$work/window.json"
echo
