"""The floors for benchmarks/bench_http.py: empty BentoML services with eeg2arm's /predict signature and service
settings (workers, timeout, host) that parse the same JSON body and answer a constant of the same shape. What
BentoML itself costs per request; eeg2arm's /predict can only be slower.

- `Floor`: BentoML as a service gets it (its access log on, a declared dict answer): the reference of issue 17.
- `TunedFloor`: with the two choices eeg2arm makes about BentoML itself: its access log off (eeg2arm writes a
  shorter line of its own) and the answer returned as JSON bytes (for a declared dict, BentoML rebuilds the type's
  JSON schema on every answer). What is left between it and eeg2arm is eeg2arm's own work.

    bentoml serve benchmarks.floor_service:Floor      (EEG2ARM_WORKERS as for the real service)
"""
from __future__ import annotations

import json
import os
from typing import Annotated, Any

import bentoml
from bentoml.validators import ContentType
from pydantic import Field

WORKERS = int(os.environ.get("EEG2ARM_WORKERS", "1"))
ANSWER = {"pred": [0], "conf": [1.0], "probs": [[1.0, 0.0]], "labels": ["0"]}


@bentoml.service(name="floor", workers=WORKERS, traffic={"timeout": 60}, http={"host": "127.0.0.1", "port": 3000})
class Floor:
    @bentoml.api
    async def predict(self, x: Any = Field(), return_logits: bool = Field(default=False, strict=True)
                      ) -> dict[str, list]:
        return ANSWER


@bentoml.service(name="tuned_floor", workers=WORKERS, traffic={"timeout": 60}, http={"host": "127.0.0.1", "port": 3000},
                 logging={"access": {"enabled": False}})
class TunedFloor:
    @bentoml.api
    async def predict(self, x: Any = Field(), return_logits: bool = Field(default=False, strict=True)
                      ) -> Annotated[bytes, ContentType("application/json")]:
        return json.dumps(ANSWER).encode()
