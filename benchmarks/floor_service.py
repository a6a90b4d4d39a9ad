"""The floor for benchmarks/bench_http.py: an empty BentoML service with eeg2arm's /predict signature and service
settings (workers, timeout, host) that parses the same JSON body and answers a constant. What BentoML itself costs
per request; eeg2arm's /predict can only be slower.

    bentoml serve benchmarks.floor_service:Floor      (EEG2ARM_WORKERS as for the real service)
"""
from __future__ import annotations

import os
from typing import Any

import bentoml
from pydantic import Field


@bentoml.service(name="floor", workers=int(os.environ.get("EEG2ARM_WORKERS", "1")), traffic={"timeout": 60},
                 http={"host": "127.0.0.1", "port": 3000})
class Floor:
    @bentoml.api
    async def predict(self, x: Any = Field(), return_logits: bool = Field(default=False, strict=True)) -> dict[str, list]:
        return {"pred": [0], "conf": [1.0], "probs": [[1.0, 0.0]]}
