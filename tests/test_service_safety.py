"""The service as an attacker and an operator meet it: the default bind, the API token, TLS, content types,
cross-origin pages, request limits, slow bodies, several workers, one log line per request, the body budgets.
Every test talks to a real `bentoml serve` on 127.0.0.1; the attacks themselves are in tests/attacks.py, which
tests/test_container.py runs against the bento's image too."""
from __future__ import annotations

import datetime
import io
import ipaddress
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
import requests

from eeg2arm.errors import UserInputError
from eeg2arm.realtime.smoothing import Hysteresis
from eeg2arm.realtime.streamer import Streamer
from export.step import OnnxStep, step_path
from serving.client import RemoteStreamer
from serving.local_server import peak_rss_kb, serve, worker_process
from serving.settings import Settings

import attacks  # tests/attacks.py
from attacks import JSON, NPY, TIGHT, TOKEN, Target

AUTH = {"Authorization": f"Bearer {TOKEN}"}

npy_bytes = attacks.npy_bytes


def self_signed(folder) -> tuple:
    """A certificate for 127.0.0.1 and localhost and its key, as PEM files (made with `cryptography`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture(scope="module")
def secure(exported, tmp_path_factory):
    """(https URL, certificate): the exported model served with an API token and TLS (a self-signed certificate)."""
    folder = tmp_path_factory.mktemp("secure")
    cert, key = self_signed(folder)
    env = {"EEG2ARM_ONNX": str(exported[0]), "BENTOML_HOME": str(folder / "empty"), "EEG2ARM_API_TOKEN": TOKEN}
    with serve(env, folder / "serve.log", args=("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)),
               ca=cert) as url:
        yield url, cert


@pytest.fixture(scope="module")
def tight(exported, tmp_path_factory):
    """(URL, log file): two workers, a token, small limits, 1 s to send a body."""
    folder = tmp_path_factory.mktemp("tight")
    env = {"EEG2ARM_ONNX": str(exported[0]), "BENTOML_HOME": str(folder / "empty"), **TIGHT}
    with serve(env, folder / "serve.log") as url:
        yield url, folder / "serve.log"


@pytest.fixture(scope="module")
def tight_target(tight) -> Target:
    url, log = tight
    return Target(url, token=TOKEN, allowed_host="arm.lab.example", log=log.read_text)


@pytest.fixture(scope="module")
def server_target(server) -> Target:
    """The session's default server (one worker, no token), its worker's peak memory readable."""
    worker = worker_process(server)
    return Target(server, worker_peak_mb=lambda: peak_rss_kb(worker.pid) / 1024)


def test_bentoml_serve_binds_loopback_by_default(server):
    """`bentoml serve` without --host (as local_server.serve runs it) listens on 127.0.0.1 only."""
    port = int(server.rsplit(":", 1)[1])
    listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == "LISTEN"}
    assert listening == {"127.0.0.1"}


def test_the_token_guards_every_route_but_the_health_probes(secure):
    url, cert = secure
    attacks.token_guards_every_route(Target(url, token=TOKEN), verify=str(cert))


def test_the_bearer_scheme_is_case_insensitive(tight_target):
    attacks.bearer_scheme_is_case_insensitive(tight_target)


def _npy_header(shape: tuple) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return header.getvalue()


def test_tls_with_a_self_signed_certificate(secure, bandpower, monkeypatch):
    url, cert = secure
    r = requests.post(f"{url}/predict", json={"x": bandpower[0][:3].tolist()}, headers=AUTH, verify=cert, timeout=10)
    assert r.status_code == 200 and len(r.json()["pred"]) == 3
    with pytest.raises(requests.exceptions.SSLError):  # an unknown certificate is refused by default
        requests.get(f"{url}/livez", timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on the TLS port
        requests.get(url.replace("https", "http") + "/livez", timeout=10)
    # `eeg2arm stream --url https://...`: the token from the environment, the private CA from SSL_CERT_FILE
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with pytest.raises(UserInputError, match="server answered 401 to /metadata"):
        RemoteStreamer(url)
    monkeypatch.setenv("EEG2ARM_API_TOKEN", TOKEN)
    remote = RemoteStreamer(url)
    assert len(remote.push(np.concatenate(list(bandpower[0][:2]), axis=-1))) == 15  # over wss://
    remote.close()


def test_bodies_of_other_types_are_415(server_target, bandpower):
    attacks.bodies_of_other_types_are_415(server_target, bandpower[0][0])


def test_repeated_headers_are_400(tight_target, bandpower):
    attacks.repeated_headers_are_400(tight_target, bandpower[0][0])


def test_a_json_boolean_among_numbers_is_400(server_target, bandpower):
    attacks.json_boolean_among_numbers_is_400(server_target, bandpower[0][0])


def test_cross_origin_browser_requests_are_403(server_target, bandpower):
    attacks.cross_origin_is_403(server_target, bandpower[0][0])


def test_limits_are_refused_before_the_work_and_name_the_limit(server, bandpower):
    limits = Settings()
    window = bandpower[0][:1]  # (1, C, F, 15)
    cases = [  # (body, content type, status, fragment)
        (npy_bytes(np.zeros((1, 32, 4, 16384), np.float32)), NPY, 413, "EEG2ARM_MAX_T"),  # the 5.6 GB request
        (npy_bytes(np.zeros((9, 32, 4, 512), np.float32)), NPY, 413, "EEG2ARM_MAX_FRAMES"),
        (npy_bytes(np.zeros((1025, 32, 4, 2), np.int8)), NPY, 413, "EEG2ARM_MAX_WINDOWS"),
        (npy_bytes(np.zeros((1, 32, 4, 255_000), np.int8)), NPY, 413, "EEG2ARM_MAX_BODY_MB"),  # 31 MiB of int8
        (json.dumps({"x": [0] * (limits.max_frames * 128 + 100)}).encode(), JSON, 413, "values"),
        (_npy_header((10**200, 10**200)) + b"\0" * 64, NPY, 400, "could not be read"),
    ]
    for body, headers, status, fragment in cases:
        t0 = time.perf_counter()
        r = requests.post(f"{server}/{'predict_npy' if headers is NPY else 'predict'}", data=body, headers=headers,
                          timeout=30)
        assert r.status_code == status and fragment in r.json()["error"], (fragment, r.text[:300])
        assert time.perf_counter() - t0 < 5
    meta = requests.get(f"{server}/metadata", timeout=10).json()
    assert meta["limits"] == limits.limits() and meta["workers"] == 1
    ok = requests.post(f"{server}/predict_npy", data=npy_bytes(window), headers=NPY, timeout=10)
    assert ok.status_code == 200


def test_limits_are_set_from_the_environment(tight, bandpower):
    url, _ = tight
    meta = requests.get(f"{url}/metadata", headers=AUTH, timeout=10).json()
    assert meta["limits"]["max_T"] == 16 and meta["limits"]["max_frames"] == 64 and meta["input"]["max_T"] == 16
    X = np.concatenate([bandpower[0][0]] * 3, axis=-1)  # one window (C, F, 45): T over 16, 45 frames < 64
    r = requests.post(f"{url}/predict", json={"x": X.tolist()}, headers=AUTH, timeout=10)
    assert r.status_code == 413 and "at most T=16 (EEG2ARM_MAX_T)" in r.json()["error"]
    r = requests.post(f"{url}/predict", json={"x": bandpower[0][:5, :, :, :2].tolist()}, headers=AUTH, timeout=10)
    assert r.status_code == 413 and "EEG2ARM_MAX_WINDOWS" in r.json()["error"]


def test_huge_fields_are_refused_without_an_echo_and_logged_in_one_line(tight_target):
    attacks.huge_fields_are_refused_without_an_echo_in_one_log_line(tight_target)


def test_a_slow_body_is_408(tight_target):
    """A body that stops halfway gets 408 after EEG2ARM_BODY_TIMEOUT_S (1 s here). Request headers that never end
    are the proxy's to cut off (tests/test_proxy.py)."""
    attacks.slow_body_is_408(tight_target, timeout_s=1.0)


def test_every_route_works_with_two_workers(tight, exported, bandpower, monkeypatch):
    url, _ = tight
    assert requests.get(f"{url}/metadata", headers=AUTH, timeout=10).json()["workers"] == 2
    X = bandpower[0][:, :, :, :8]  # T=8, within the tight limits

    def predict(i: int) -> list:
        with requests.Session() as http:  # a new connection each time: either worker may answer
            return http.post(f"{url}/predict", json={"x": X[i].tolist()}, headers=AUTH, timeout=30).json()["pred"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(predict, range(40)))
    assert answers == [predict(i) for i in range(40)]
    r = requests.post(f"{url}/stream/open", json={}, headers=AUTH, timeout=10)
    assert r.status_code == 409 and "EEG2ARM_WORKERS" in r.json()["error"] and "/stream/ws" in r.json()["error"]
    step = OnnxStep(step_path(exported[0]), device="cpu")
    streams = [np.concatenate(list(bandpower[0][i:i + 2]), axis=-1) for i in (0, 40, 80, 20)]  # (C, F, 30) each
    monkeypatch.setenv("EEG2ARM_API_TOKEN", TOKEN)

    def remote(frames: np.ndarray) -> list:
        decoder = RemoteStreamer(url, 0.55, 0.5, 2)
        try:
            return [r for t in range(0, 30, 6) for r in decoder.push(frames[..., t:t + 6])]  # 6 <= 8 frames a message
        finally:
            decoder.close()

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(remote, streams))
    for frames, results in zip(streams, got):
        local = Streamer(step, Hysteresis(0.55, 0.5, 2)).push(frames)
        assert [r.decision for r in results] == [r.decision for r in local]
        assert np.abs(np.array([r.probs for r in results]) - np.array([r.probs for r in local])).max() <= 1e-6


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tight_target, tmp_path):
    attacks.schemathesis_finds_nothing(tight_target, tmp_path)


def _peak_mb(proc: psutil.Process) -> float:
    return peak_rss_kb(proc.pid) / 1024


def test_nested_json_is_refused_before_it_is_parsed(server_target, bandpower):
    attacks.nested_json_is_refused_before_it_is_parsed(server_target, bandpower[0][0])


def test_nested_json_on_the_websocket_is_an_error_message_not_a_traceback(tight_target, bandpower):
    attacks.nested_json_on_the_websocket_is_an_error_message(tight_target, bandpower[0][0])


def test_odd_npy_sizes_on_the_websocket_are_an_error_message(tight_target, bandpower):
    attacks.odd_npy_sizes_on_the_websocket_are_an_error_message(tight_target, bandpower[0][0])


def test_a_chunked_body_cannot_get_past_the_body_limit(server_target, bandpower):
    attacks.chunked_body_cannot_get_past_the_body_limit(server_target, bandpower[0][0])


def test_a_foreign_host_is_refused_against_dns_rebinding(tight_target):
    attacks.foreign_host_is_refused(tight_target)


def test_unknown_paths_are_404_and_never_redirected(server_target):
    attacks.unknown_paths_are_404_and_never_redirected(server_target)


def test_a_request_cannot_write_its_own_log_line(tight_target):
    attacks.a_request_cannot_write_its_own_log_line(tight_target)


def _concurrent_peak_mb(url: str, body: bytes, clients: int) -> tuple[float, list[requests.Response]]:
    """(the worker's peak memory growth in MB, the answers) for `clients` requests of `body` to /predict at once."""
    worker = worker_process(url)
    assert requests.post(f"{url}/predict", data=body, headers=JSON, timeout=60).status_code == 200  # warm
    peak = _peak_mb(worker)
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{url}/predict", data=body, headers=JSON, timeout=120),
                                range(clients)))
    return _peak_mb(worker) - peak, answers


def _largest_body() -> bytes:
    """The largest default request: 8 windows of T=512 of real-looking numbers, ~10 MiB of JSON."""
    return json.dumps({"x": np.random.default_rng(0).normal(size=(8, 32, 4, 512)).tolist()}).encode()


def _body_of_zeros() -> bytes:
    """8 windows of T=500 written as 0s: ~1.03 MB of JSON that parses into 512,000 numbers."""
    return json.dumps({"x": np.zeros((8, 32, 4, 500), int).tolist()}, separators=(",", ":")).encode()


@pytest.mark.parametrize("make_body, clients", [
    # 32 of them grew a worker by 1.27 GB (issue 12). With 24, the unbounded worker's peak swung from 610 to 870 MB
    # with how many of them overlapped on 2 cores, against a steady 320-350 MB bounded: too close to the factor 2 to
    # measure it. 32 (as in issue 12): 1120-1240 MB against 410-430 MB, the same 2 cores, the same assertion.
    (_largest_body, 32),
    (_body_of_zeros, 128),  # uncounted when only bodies over 1 MiB were: 128 grew a worker by 1.07 GB (issue 17)
], ids=["32 bodies of 10 MiB", "128 bodies of 1 MB"])
def test_concurrent_bodies_share_the_workers_budget(exported, tmp_path, make_body, clients):
    """The limits bound one request; many at once add up. EEG2ARM_MAX_INFLIGHT_MB (default 32) bounds the bytes of
    the bodies a worker works on at once, whatever their size; the same requests against a budget of 1 GiB (no
    bound, as before) in the same run."""
    body = make_body()
    growth = {}
    for budget in ("32", "1024"):
        env = {"EEG2ARM_ONNX": str(exported[0]), "BENTOML_HOME": str(tmp_path / "empty"),
               "EEG2ARM_MAX_INFLIGHT_MB": budget}
        with serve(env, tmp_path / f"serve-{budget}.log") as url:
            growth[budget], answers = _concurrent_peak_mb(url, body, clients=clients)
            assert requests.get(f"{url}/metadata", timeout=10).json()["limits"]["max_inflight_bytes"] == \
                int(budget) * 2**20
        busy = [r for r in answers if r.status_code == 503]
        assert all(r.status_code == 200 for r in answers if r not in busy) and len(busy) <= len(answers) // 2
        assert all(r.headers["retry-after"] == "1" and "EEG2ARM_MAX_INFLIGHT_MB" in r.json()["error"] for r in busy)
    print(f"worker peak growth, {clients} concurrent bodies of {len(body) / 2**20:.2f} MiB: {growth}")
    assert growth["32"] < growth["1024"] / 2, growth


def _slow_sender(url: str) -> socket.socket:
    """A client that declares a 2 MiB .npy body, sends its first bytes and then nothing more."""
    slow = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    slow.sendall(b"POST /predict_npy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Length: 2097152\r\n\r\n\x93NUMPY")
    slow.settimeout(15)
    return slow


def test_slow_large_bodies_delay_only_large_bodies(exported, tmp_path, bandpower):
    """Clients that send large bodies slowly hold the budget until their body timeout (3 s here): a large body
    behind them waits, and gets 503 with Retry-After when they hold it longer than that; an ordinary request (under
    1 MiB, uncounted) is answered at once meanwhile."""
    env = {"EEG2ARM_ONNX": str(exported[0]), "BENTOML_HOME": str(tmp_path / "empty"), "EEG2ARM_MAX_BODY_MB": "2",
           "EEG2ARM_MAX_INFLIGHT_MB": "2", "EEG2ARM_BODY_TIMEOUT_S": "3"}
    large = npy_bytes(np.zeros((4, 32, 4, 512), np.float32))  # 1.0 MiB
    with serve(env, tmp_path / "serve.log") as url, _slow_sender(url) as first:
        time.sleep(0.3)
        with _slow_sender(url) as second:  # waits for the first, then holds the budget for its own 3 s
            time.sleep(0.3)
            started = time.monotonic()
            small = requests.post(f"{url}/predict", json={"x": bandpower[0][:2].tolist()}, timeout=10)
            assert small.status_code == 200 and time.monotonic() - started < 1.5
            busy = requests.post(f"{url}/predict_npy", data=large, headers=NPY, timeout=10)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1", busy.text
            assert "EEG2ARM_MAX_INFLIGHT_MB" in busy.json()["error"] and time.monotonic() - started >= 2.5
            assert first.recv(4096).startswith(b"HTTP/1.1 408") and second.recv(4096).startswith(b"HTTP/1.1 408")
        assert requests.post(f"{url}/predict_npy", data=large, headers=NPY, timeout=10).status_code == 200
