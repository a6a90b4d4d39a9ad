"""RemoteStreamer: a streaming session on a running eeg2arm server, behind the same push() as eeg2arm's Streamer.

    decoder = RemoteStreamer("http://127.0.0.1:3000")
    results = decoder.push(frames)        # frames (C, F, n) -> [StepResult, ...]; the server keeps the state
    decoder.close()
"""
from __future__ import annotations

import logging

import numpy as np
import requests

from eeg2arm.config import EEGConfig
from eeg2arm.errors import UserInputError
from eeg2arm.realtime.streamer import StepResult

log = logging.getLogger("eeg2arm")


class RemoteStreamer:
    """The server session opens with the first push, so nothing is held on the server before frames flow."""

    def __init__(self, url: str, enter: float = 0.7, exit: float = 0.5, min_frames: int = 3, timeout: float = 10.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.smoothing = {"enter": enter, "exit": exit, "min_frames": min_frames}
        self.http = requests.Session()  # keep-alive: one connection for the whole stream
        self.session: str | None = None
        try:
            self.config = EEGConfig.from_dict(self._call("GET", "/metadata")["config"])
        except (KeyError, TypeError):
            self.http.close()
            raise UserInputError(f"{self.url} is not an eeg2arm server (its /metadata has no model config): "
                                 f"fix --url") from None
        except UserInputError:
            self.http.close()
            raise

    def _call(self, method: str, route: str, body: dict | None = None) -> dict:
        try:
            r = self.http.request(method, self.url + route, json=body, timeout=self.timeout)
        except requests.exceptions.InvalidJSONError:
            raise UserInputError(f"{route}: the request holds NaN or Inf values, which JSON cannot carry: drop or "
                                 f"repair those frames") from None
        except requests.RequestException as e:
            raise UserInputError(f"cannot reach the eeg2arm server at {self.url} ({type(e).__name__}): start it "
                                 f"with `bentoml serve` or fix --url") from None
        if not r.ok:
            raise UserInputError(f"server answered {r.status_code} to {route}: {error_message(r)[:300]}")
        try:
            return r.json()
        except ValueError:
            raise UserInputError(f"{self.url}{route} did not answer JSON: is --url an eeg2arm server?") from None

    def push(self, frames: np.ndarray) -> list[StepResult]:
        """frames (C, F, n) -> one StepResult per pooled frame the server completed."""
        if self.session is None:
            self.session = self._call("POST", "/stream/open", self.smoothing)["session"]
        answer = self._call("POST", "/stream/step", {"session": self.session, "frames": frames.tolist()})
        return [StepResult(r["frame"], np.asarray(r["probs"]), r["pred"], r["decision"]) for r in answer["results"]]

    def close(self) -> None:
        """End the server session (best effort: an unreachable server lets it expire) and the connection."""
        try:
            if self.session is not None:
                self._call("POST", "/stream/close", {"session": self.session})
        except UserInputError as e:
            log.warning("stream session not closed (%s); the server lets it expire", e)
        finally:
            self.session = None
            self.http.close()


def error_message(r: requests.Response) -> str:
    """The message of an error answer: BentoML sends {"error": ...} for its own checks, [{"error": ...}] for ours."""
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()
    first = body[0] if isinstance(body, list) and body else body
    return str(first.get("error", first)) if isinstance(first, dict) else str(first)
