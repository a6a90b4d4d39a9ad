"""The attacks of docs/serving.md ("Safety", "Review findings") as functions of a running server, so that the same
ones run against `bentoml serve` (tests/test_service_safety.py) and against the bento's container image
(tests/test_container.py). Each asserts what the server must answer and that it is unharmed afterwards.

    target = Target(url, token=TOKEN, allowed_host="eeg2arm", log=read_log)
    attacks.foreign_host_is_refused(target)
"""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from serving.errors import NOT_FOUND
from serving.front import WRONG_HOST

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-for-tests"
# two workers, a token, small limits, 1 s to send a body: test_service_safety's `tight` server and the container's
TIGHT = {"EEG2ARM_WORKERS": "2", "EEG2ARM_MAX_T": "16", "EEG2ARM_MAX_WINDOWS": "4", "EEG2ARM_MAX_FRAMES": "64",
         "EEG2ARM_MAX_STREAM_FRAMES": "8", "EEG2ARM_BODY_TIMEOUT_S": "1", "EEG2ARM_API_TOKEN": TOKEN,
         "EEG2ARM_ALLOWED_HOSTS": "arm.lab.example, eeg2arm"}
JSON = {"Content-Type": "application/json"}
NPY = {"Content-Type": "application/octet-stream"}
POST_ROUTES = {"/predict": JSON, "/predict_npy": NPY, "/stream/open": JSON, "/stream/step": JSON,
               "/stream/close": JSON}
NEST = "[" * 30 + "]" * 30


@dataclass(frozen=True)
class Target:
    url: str  # http://127.0.0.1:PORT
    token: str | None = None  # EEG2ARM_API_TOKEN, when the server has one
    allowed_host: str | None = None  # a name in its EEG2ARM_ALLOWED_HOSTS
    log: Callable[[], str] | None = None  # the server's output so far
    worker_peak_mb: Callable[[], float] | None = None  # the peak memory of its (one) worker, where it can be read

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def lines(self) -> list[str]:
        assert self.log is not None, "this attack reads the server's log"
        time.sleep(0.5)  # log lines are flushed by the server's process
        return self.log().splitlines()

    def predict_ok(self, window: np.ndarray) -> None:
        """The server still answers an ordinary request."""
        r = requests.post(f"{self.url}/predict", json={"x": window.tolist()}, headers=self.auth, timeout=30)
        assert r.status_code == 200, r.text


def npy_bytes(X: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, X)
    return buf.getvalue()


def raw_request(target: Target, head: str, body: bytes = b"", host: str = "127.0.0.1") -> bytes:
    """The server's whole answer to a request written by hand (a client library would fix what it sends)."""
    with socket.create_connection(("127.0.0.1", target.port)) as s:
        s.sendall(head.replace("{host}", host).encode() + body)
        s.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not (answer.endswith(b"}") or answer.startswith(b"HTTP/1.1 101")):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def handshake(target: Target, path: str, host: str) -> bytes:
    """The answer to a WebSocket handshake for `path` sent with this Host header."""
    return raw_request(target, f"GET {path} HTTP/1.1\r\nHost: {{host}}\r\nUpgrade: websocket\r\nConnection: Upgrade"
                               f"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                               f"Authorization: Bearer {target.token}\r\n\r\n", host=host)


def token_guards_every_route(target: Target, verify: bool | str = True) -> None:
    """With a token, every route but the health probes is 401 without it, WebSocket included."""
    import ssl

    for route in ("/metadata", "/docs.json", "/metrics", "/", "/docs", "/healthz"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": str(target.token)}):
            r = requests.get(target.url + route, headers=headers, verify=verify, timeout=10, allow_redirects=False)
            assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"], (route, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    for route, headers in POST_ROUTES.items():
        r = requests.post(target.url + route, data=b"{}", headers=headers, verify=verify, timeout=10)
        assert r.status_code == 401, (route, r.text)
    for probe in ("/livez", "/readyz"):
        assert requests.get(target.url + probe, verify=verify, timeout=10).status_code == 200
    meta = requests.get(target.url + "/metadata", headers=target.auth, verify=verify, timeout=10).json()
    assert meta["auth"] == "bearer"
    scheme = "wss" if target.url.startswith("https") else "ws"
    context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else None
    try:
        connect(f"{scheme}{target.url.removeprefix('https').removeprefix('http')}/stream/ws", ssl=context,
                proxy=None, legacy=True).close()
    except InvalidStatus as refused:
        assert refused.response.status_code == 401
    else:
        raise AssertionError("a WebSocket without the token was accepted")


def bearer_scheme_is_case_insensitive(target: Target) -> None:
    """RFC 7235: "bearer <token>" is the same credentials; it got 401 (review U16). The token itself is exact."""
    token = str(target.token)
    for value in (f"bearer {token}", f"BEARER {token}", f"Bearer  {token}"):
        assert requests.get(f"{target.url}/metadata", headers={"Authorization": value}, timeout=10).status_code == 200
    for value in (f"Bearer {token.upper()}", f"Bearer{token}", f"Basic {token}", token, f"Bearer {token} x"):
        assert requests.get(f"{target.url}/metadata", headers={"Authorization": value}, timeout=10).status_code == 401


def bodies_of_other_types_are_415(target: Target, window: np.ndarray) -> None:
    """A browser's cross-site form or text/plain POST never reaches a route; nor does JSON without its type."""
    body = json.dumps({"x": window.tolist()})
    for route in POST_ROUTES:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
            headers = {**target.auth, **({"Content-Type": content_type} if content_type else {})}
            r = requests.post(target.url + route, data=body, headers=headers, timeout=10)
            assert r.status_code == 415, (route, content_type, r.text)
            assert set(r.json()) == {"error"} and "takes Content-Type" in r.json()["error"]
    assert requests.post(f"{target.url}/predict", data=body, headers={**JSON, **target.auth}, timeout=10).ok


def repeated_headers_are_400(target: Target, window: np.ndarray) -> None:
    """Two Content-Type headers, a form's first and JSON's second: the checks read the last and the route the first,
    so a form body got past the 415 and the JSON scan, and 3,000 nested brackets were a RecursionError, 500 with a
    traceback (stop 26's review). Each header the checks read may come once; the server is unharmed."""
    form = b"x=" + b"%5B" * 3000 + b"%5D" * 3000
    auth = f"Authorization: Bearer {target.token}\r\n" if target.token else ""
    for route in ("/predict", "/stream/step"):
        answer = raw_request(target, f"POST {route} HTTP/1.1\r\nHost: {{host}}\r\n{auth}Content-Type: "
                                     f"application/x-www-form-urlencoded\r\nContent-Type: application/json\r\n"
                                     f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n", form)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"send each of these headers at most once: content-type" in answer, answer[-300:]
    if target.token:  # the right token, then a wrong one: which one would count?
        body = json.dumps({"x": window.tolist()}).encode()
        answer = raw_request(target, f"POST /predict HTTP/1.1\r\nHost: {{host}}\r\n{auth}Authorization: Bearer x\r\n"
                                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                                     f"Connection: close\r\n\r\n", body)
        assert answer.startswith(b"HTTP/1.1 400") and b"at most once: authorization" in answer, answer[:200]
    if target.log is not None:
        assert not any("Traceback" in line or "RecursionError" in line for line in target.lines())
    target.predict_ok(window)


def json_boolean_among_numbers_is_400(target: Target, window: np.ndarray) -> None:
    values = window.tolist()
    values[3][1][1] = True
    r = requests.post(f"{target.url}/predict", json={"x": values}, headers=target.auth, timeout=10)
    assert r.status_code == 400 and "only numbers (got booleans" in r.json()["error"], r.text


def cross_origin_is_403(target: Target, window: np.ndarray) -> None:
    body = {"x": window.tolist()}
    r = requests.post(f"{target.url}/predict", json=body, headers={**target.auth, "Origin": "https://evil.example"},
                      timeout=10)
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    same = requests.post(f"{target.url}/predict", json=body, headers={**target.auth, "Origin": target.url},
                         timeout=10)
    assert same.status_code == 200
    try:
        connect(target.url.replace("http", "ws") + "/stream/ws", origin="https://evil.example",
                additional_headers=target.auth, proxy=None, legacy=True).close()
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
    else:
        raise AssertionError("a WebSocket handshake from another site's page was accepted")


def huge_fields_are_refused_without_an_echo_in_one_log_line(target: Target) -> None:
    huge = "A" * (10 * 2**20)
    r = requests.post(f"{target.url}/stream/step", json={"session": huge, "frames": [[1.0]]}, headers=target.auth,
                      timeout=30)
    assert r.status_code == 400 and len(r.content) < 1000 and "at most 43 characters" in r.json()["error"]
    r = requests.post(f"{target.url}/stream/close", data=b"{" + b" " * 20_000_000 + b"}",
                      headers={**target.auth, **JSON}, timeout=30)
    assert r.status_code == 413 and len(r.content) < 1000
    requests.post(f"{target.url}/predict", json={"x": [[["a"]]]}, headers=target.auth, timeout=10)
    lines = target.lines()
    assert not any("Traceback" in line for line in lines)
    assert max(len(line) for line in lines) < 2000
    assert any("POST /predict -> 400: x must hold only numbers" in line for line in lines), lines[-5:]
    assert sum("POST /stream/step -> 400: session: String should have at most 43" in line for line in lines) == 1


def nested_json_is_refused_before_it_is_parsed(target: Target, window: np.ndarray,
                                               nests: int = (16 * 2**20 - 20) // (len(NEST) + 1)) -> None:
    """A body of nested empty lists has few commas: parsed, 16 MiB of it took 7 s and 1.6 GB of the worker. Its
    lists and its depth are counted from its bytes first (review U2); a deep body never reaches a parser (U6).
    `nests` lists of 30 levels: as many as 16 MiB hold for the default limits; under EEG2ARM_MAX_FRAMES's count of
    numbers (commas), above its count of lists, for smaller ones."""
    nested = '{"x": [' + ",".join([NEST] * nests) + "]}"
    peak = target.worker_peak_mb() if target.worker_peak_mb else 0.0
    cases = [  # body, status, fragment
        (nested, 413, "lists it can use (EEG2ARM_MAX_FRAMES)"),
        ('{"x": ' + "[" * 5000 + "]" * 5000 + "}", 400, "nests deeper than 16 levels"),
        ('{"a": "' + "]" * 60 + '", "x": ' + "[" * 50 + "]" * 50 + "}", 400, "nests deeper"),  # ] in a string
        ('{"a": "\\"]]]]]]", "x": ' + "[" * 20 + "]" * 20 + "}", 400, "nests deeper"),  # and after an escaped quote
    ]
    for body, status, fragment in cases:
        r = requests.post(f"{target.url}/predict", data=body.encode(), headers={**JSON, **target.auth}, timeout=60)
        assert r.status_code == status and fragment in r.json()["error"], r.text[:300]
    deep_step = '{"session": "' + "A" * 43 + '", "frames": ' + "[" * 40 + "]" * 40 + "}"
    r = requests.post(f"{target.url}/stream/step", data=deep_step.encode(), headers={**JSON, **target.auth},
                      timeout=10)
    assert r.status_code == 400 and "nests deeper than 16 levels" in r.json()["error"], r.text
    if target.worker_peak_mb:
        assert target.worker_peak_mb() - peak < 100
    target.predict_ok(window)


def nested_json_on_the_websocket_is_an_error_message(target: Target, window: np.ndarray) -> None:
    """WebSocket text {"frames": 5000 levels}: a RecursionError traceback twice per message and a dropped
    connection (review U6); now an error message, and the stream goes on."""
    with connect(target.url.replace("http", "ws") + "/stream/ws", additional_headers=target.auth, compression=None,
                 proxy=None, max_size=None) as ws:
        ws.recv(timeout=10)
        for message, status, fragment in [
            ('{"frames": ' + "[" * 5000 + "]" * 5000 + "}", 413, "lists it can use (EEG2ARM_MAX_STREAM_FRAMES)"),
            ('{"frames": ' + "[" * 40 + "]" * 40 + "}", 400, "nests deeper than 16 levels"),
            ('{"frames": [' + ",".join([NEST] * 30) + "]}", 413, "lists it can use"),
        ]:
            ws.send(message)
            answer = json.loads(ws.recv(timeout=10))
            assert answer["status"] == status and fragment in answer["error"], answer
            assert answer["error"].endswith("the stream is unchanged")
        ws.send(npy_bytes(window[..., :2]))  # (C, F, 2): the session goes on
        assert len(json.loads(ws.recv(timeout=10))["results"]) == 1
    if target.log is not None:
        assert not any("Traceback" in line for line in target.lines())


def odd_npy_sizes_on_the_websocket_are_an_error_message(target: Target, window: np.ndarray) -> None:
    """A binary message whose .npy header gives a size of True (with its data) or 2**70 (numpy's header check lets
    them through) raised TypeError: an 80-line traceback and a dropped connection (stop 26's review). Now an error
    message."""
    with connect(target.url.replace("http", "ws") + "/stream/ws", additional_headers=target.auth, compression=None,
                 proxy=None) as ws:
        ws.recv(timeout=10)
        for shape, data in (("(32, 4, True)", 32 * 4 * 4), ("(0, 1180591620717411303424, 4)", 0)):
            header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}".encode("latin-1")
            ws.send(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * data)
            answer = json.loads(ws.recv(timeout=10))
            assert answer["status"] == 400 and "could not be read as .npy" in answer["error"], answer
        ws.send(npy_bytes(window[..., :2]))  # (C, F, 2): the session goes on
        assert len(json.loads(ws.recv(timeout=10))["results"]) == 1
    if target.log is not None:
        assert not any("Traceback" in line for line in target.lines())


def chunked_body_cannot_get_past_the_body_limit(target: Target, window: np.ndarray) -> None:
    """Content-Length and Transfer-Encoding: chunked together: the length passed the check while the chunked body
    was read whole (300 MiB took the worker from 2.0 to 2.9 GB; review U1). Refused before a byte is read."""
    peak = target.worker_peak_mb() if target.worker_peak_mb else 0.0
    chunk = b"%x\r\n%s\r\n" % (2**20, b"1" * 2**20)  # 1 MiB
    with socket.create_connection(("127.0.0.1", target.port)) as s:
        s.sendall(f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                  f"10\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer {target.token}\r\n\r\n".encode() + chunk)
        s.settimeout(10)
        answer = b""
        while not answer.endswith(b"}"):  # the headers, then the JSON body
            answer += s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 411") and b"no Transfer-Encoding" in answer, answer
        try:
            for _ in range(64):  # the rest of a 64 MiB body: the server reads none of it
                s.sendall(chunk)
        except OSError:  # the server closed the connection
            pass
    if target.worker_peak_mb:
        assert target.worker_peak_mb() - peak < 30
    target.predict_ok(window)


def foreign_host_is_refused(target: Target) -> None:
    """A page of evil.example whose name resolves to 127.0.0.1 calls the server as its own origin: Host and Origin
    agree, so only the Host itself can tell (review U4). IP addresses, localhost and EEG2ARM_ALLOWED_HOSTS pass."""
    port = target.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.nip.io:{port}", f"EVIL.example.:{port}"):
        headers = {**target.auth, "Host": host, "Origin": f"http://{host}"}
        for r in (requests.get(f"{target.url}/metadata", headers=headers, timeout=10),
                  requests.post(f"{target.url}/stream/open", json={}, headers=headers, timeout=10),
                  requests.get(f"{target.url}/metadata/", headers=headers, timeout=10, allow_redirects=False)):
            assert r.status_code == 403 and r.json() == {"error": WRONG_HOST}, (host, r.status_code, r.text)
        assert handshake(target, "/stream/ws", host).startswith(b"HTTP/1.1 403")
    allowed = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"]
    if target.allowed_host:
        allowed += [f"{target.allowed_host.upper()}:{port}", target.allowed_host]
    for host in allowed:
        r = requests.get(f"{target.url}/metadata", headers={**target.auth, "Host": host}, timeout=10)
        assert r.status_code == 200, (host, r.text)
    assert handshake(target, "/stream/ws", allowed[-1]).startswith(b"HTTP/1.1 101")


def unknown_paths_are_404_and_never_redirected(target: Target) -> None:
    """/metadata/ was a redirect to whatever Host the request named (review U11); unknown paths and WebSocket
    paths are 404 in the service's own error shape."""
    paths = [f"/{uuid.uuid4().hex}" for _ in range(20)] + ["/metadata/", "/docs.json/", "/static_content/x.css"]
    with requests.Session() as http:
        for path in paths:
            r = http.get(target.url + path, headers=target.auth, timeout=10, allow_redirects=False)
            assert r.status_code == 404 and r.json() == {"error": NOT_FOUND}, (path, r.status_code, r.text)
    r = requests.get(f"{target.url}/static_content/index.css", headers=target.auth, timeout=10)
    assert r.status_code == 200  # the Swagger UI's
    r = requests.get(f"{target.url}/stream/ws", headers=target.auth, timeout=10)  # without the upgrade
    assert r.status_code == 426 and "is a WebSocket" in r.json()["error"] and r.headers["upgrade"] == "websocket"
    try:
        connect(target.url.replace("http", "ws") + "/stream/nope", additional_headers=target.auth, proxy=None,
                legacy=True).close()
    except InvalidStatus as refused:
        assert refused.response.status_code == 404
        assert json.loads(refused.response.body) == {"error": NOT_FOUND}
    else:
        raise AssertionError("a WebSocket to an unknown path was accepted")


def a_request_cannot_write_its_own_log_line(target: Target) -> None:
    """A path with a newline used to start a line of its own in the log (review U5)."""
    fake = "2026-12-01T11:00:00+0000 [ERROR] FAKE LINE"
    for path in (f"/foo%0A{fake}", f"/metadata%0D%0A{fake}", f"/x%1B[31m%E2%80%A8{fake}"):
        assert requests.get(target.url + path, headers=target.auth, timeout=10).status_code == 404
    assert handshake(target, f"/ws%0A{fake.replace(' ', '%20')}", "127.0.0.1").startswith(b"HTTP/1.1 404")
    lines = target.lines()
    assert not any(line.startswith(fake) or "\x1b" in line for line in lines)
    assert sum("\\n" + fake in line for line in lines) == 3  # /foo, /metadata (after its \\r), the WebSocket
    assert sum("\\x1b[31m\\u2028" + fake in line for line in lines) == 1


def slow_body_is_408(target: Target, timeout_s: float) -> None:
    """A body that stops halfway gets 408 after EEG2ARM_BODY_TIMEOUT_S (`timeout_s`) and the connection closes."""
    with socket.create_connection(("127.0.0.1", target.port)) as half:
        half.sendall(f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {target.token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"x\": [".encode())
        half.settimeout(timeout_s + 5)
        t0 = time.perf_counter()
        answer = b""
        while chunk := half.recv(1000):  # the server closes the connection after its answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"EEG2ARM_BODY_TIMEOUT_S" in answer
    assert timeout_s / 2 < time.perf_counter() - t0 < timeout_s + 2
    assert requests.get(f"{target.url}/livez", timeout=10).status_code == 200


def schemathesis_finds_nothing(target: Target, folder: Path) -> None:
    """Every operation of /docs.json, property-based, all of schemathesis' checks (bounded: 30 cases an operation,
    a fixed seed): no server error, no answer outside the document. tests/schemathesis_hooks.py makes positive
    cases obey the rules JSON Schema cannot state."""
    accepted_before = accepted(target)
    auth = ["-H", f"Authorization: Bearer {target.token}"] if target.token else []
    done = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(REPO / "tests" / "schemathesis.toml"),
         "run", f"{target.url}/docs.json", "--checks", "all", *auth, "-n", "30", "--seed", "1", "--no-shrink",
         "--request-timeout", "10"],
        cwd=folder,  # schemathesis keeps a cache in its working folder
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and "No issues found" in done.stdout, done.stdout[-3000:]
    after = accepted(target)
    for route in ("/predict", "/predict_npy"):  # valid requests were generated and answered, not only refusals
        assert after[route] - accepted_before[route] >= 10, (route, after)


def accepted(target: Target) -> dict[str, int]:
    """200 answers per POST route, from the server's request lines."""
    lines = target.lines()
    return {route: sum(f"POST {route} -> 200 " in line for line in lines) for route in ("/predict", "/predict_npy")}
