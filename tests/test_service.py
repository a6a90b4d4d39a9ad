"""The HTTP service end to end: `bentoml serve` in a subprocess, real requests on 127.0.0.1, real EEG windows."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from eeg2arm.checkpoint import load_model_from_checkpoint
from eeg2arm.errors import UserInputError
from export.metadata import read_onnx_metadata, set_metadata
from export.step import step_path
from serving.local_server import serve
from serving.settings import MiB, Settings, env_number

LIMITS = Settings()  # the defaults the session server runs with

NPY = {"Content-Type": "application/octet-stream"}


def npy_bytes(X: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, X)
    return buf.getvalue()


@pytest.fixture(scope="module")
def torch_model(trained):
    model, meta = load_model_from_checkpoint(trained[0], "cpu")
    return model, meta["config"]


def torch_probs(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)))
    return logits.numpy(), torch.softmax(logits, dim=-1).numpy()


def post(url: str, X: np.ndarray, **extra) -> requests.Response:
    return requests.post(f"{url}/predict", json={"x": X.tolist(), **extra}, timeout=30)


@pytest.mark.parametrize("T", [15, 7, 2])  # full windows, shorter ones, the shortest the config allows
def test_predict_matches_pytorch(server, bandpower, torch_model, T):
    model, config = torch_model
    X = bandpower[0][:12, :, :, -T:]  # (12, C, F, T) real band power, the last T frames
    assert T >= config.min_frames
    r = post(server, X, return_logits=True)
    assert r.status_code == 200, r.text
    body = r.json()
    logits, probs = torch_probs(model, X)
    assert np.abs(np.array(body["probs"]) - probs).max() <= 1e-5
    assert np.abs(np.array(body["logits"]) - logits).max() <= 1e-4
    assert body["pred"] == np.array(body["probs"]).argmax(1).tolist()
    assert np.allclose(body["conf"], np.array(body["probs"]).max(1))
    assert body["labels"] == [str(k) for k in body["pred"]]  # a model without class names: the index as a string


def test_single_window_and_no_logits_by_default(server, bandpower, torch_model):
    X = bandpower[0][3]  # one window (C, F, T)
    body = post(server, X).json()
    assert set(body) == {"pred", "conf", "probs", "labels"}
    assert np.abs(np.array(body["probs"]) - torch_probs(torch_model[0], X[None])[1]).max() <= 1e-5


def test_predict_npy_equals_predict(server, bandpower):
    X = bandpower[0][20:60]  # (40, C, F, T)
    as_json = post(server, X, return_logits=True).json()
    r = requests.post(f"{server}/predict_npy?return_logits=true", data=npy_bytes(X), headers=NPY, timeout=30)
    assert r.status_code == 200, r.text
    as_npy = r.json()
    assert set(as_npy) == set(as_json) == {"pred", "conf", "probs", "labels", "logits"}
    assert as_npy["pred"] == as_json["pred"] and as_npy["labels"] == as_json["labels"]
    assert np.abs(np.array(as_npy["probs"]) - np.array(as_json["probs"])).max() <= 1e-6


def test_metadata_names_the_model_by_name_version_and_hash_never_by_path(server, torch_model, bento_home):
    """/metadata said EEG2ARM_ONNX=/the/server's/path/model.onnx (issue 17): now name, version and content hash."""
    config = torch_model[1]
    r = requests.get(f"{server}/metadata", timeout=10)
    assert r.status_code == 200
    meta = r.json()
    assert meta["config"] == config.to_dict()
    assert meta["n_classes"] == config.n_classes and meta["labels"] == ["0", "1"]
    assert meta["input"]["C"] == config.n_electrodes and meta["input"]["F"] == config.n_bands
    assert meta["input"]["min_T"] == config.min_frames
    assert meta["version"]
    assert meta["providers"][-1] == "CPUExecutionProvider"
    model = meta["model"]
    onnx_file = bento_home / "models" / "eeg2arm" / model["version"] / "model.onnx"  # the store's copy of this version
    assert model == {"name": "eeg2arm", "version": model["version"], "source": "store",
                     "sha256": hashlib.sha256(onnx_file.read_bytes()).hexdigest()}
    assert str(bento_home) not in r.text and "/" not in json.dumps(meta["model"])


def test_bentoml_endpoints_keep_working(server):
    assert requests.get(f"{server}/readyz", timeout=10).status_code == 200
    assert requests.get(f"{server}/livez", timeout=10).status_code == 200
    metrics = requests.get(f"{server}/metrics", timeout=10)
    assert metrics.status_code == 200 and "bentoml_service_request_total" in metrics.text
    spec = requests.get(f"{server}/docs.json", timeout=10).json()
    assert {"/predict", "/predict_npy"} <= set(spec["paths"])
    for route in ("/predict", "/predict_npy"):  # the answer's contract, labels included (schemathesis checks it)
        answer = spec["paths"][route]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["required"] == ["pred", "conf", "probs", "labels"]
        assert answer["properties"]["labels"]["items"]["enum"] == ["0", "1"]
    assert "swagger" in requests.get(f"{server}/", timeout=10).text.lower()
    docs = requests.get(f"{server}/docs", timeout=10)  # follows our redirect to BentoML's Swagger UI
    assert docs.status_code == 200 and "swagger" in docs.text.lower() and docs.history[0].status_code == 307


def _window(bandpower) -> np.ndarray:
    return bandpower[0][0]  # (C, F, T)


BAD_JSON = {  # name -> (body made from one real window w (C, F, T), message fragments, formatted with the config)
    "wrong C": (lambda w: {"x": [w[:-1].tolist()]}, ["C={C_1}", "C={C}"]),
    "wrong F": (lambda w: {"x": [w[:, :-1].tolist()]}, ["F={F_1}", "F={F}"]),
    "wrong ndim": (lambda w: {"x": w[0].tolist()}, ["shape ({F}, 15)", "(C, F, T)"]),
    "T too short": (lambda w: {"x": w[..., :1].tolist()}, ["T=1", "at least T={min_T}"]),
    "non-numeric": (lambda w: {"x": [[["a", 1.0]]]}, ["only numbers", "(B, {C}, {F}, T)"]),
    "booleans beside an integer beyond int64": (lambda w: {"x": [[[2 ** 64, True]]]}, ["(got booleans)"]),
    "ragged": (lambda w: {"x": [w.tolist(), w[:, :, :3].tolist()]}, ["ragged", "(B, {C}, {F}, T)"]),
    "empty batch": (lambda w: {"x": []}, ["shape (0,)", "(N, C, F, T)"]),
    "missing x": (lambda w: {"return_logits": True}, ["x", "required"]),
    "malformed JSON": (lambda w: '{"x": [[[1.0, 2.0', ["Invalid JSON"]),
}


def _nan_body(w: np.ndarray, token: str) -> str:
    values = w.tolist()
    values[5][2][7] = "__BAD__"  # electrode 5, band 2, frame 7
    return json.dumps({"x": values}).replace('"__BAD__"', token)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e39"])  # 1e39 overflows float32
def test_non_finite_values_are_400(server, bandpower, token):
    r = requests.post(f"{server}/predict", data=_nan_body(_window(bandpower), token),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400, r.text
    assert "1 NaN/Inf values" in r.text and "sample 0" in r.text
    assert post(server, _window(bandpower)).status_code == 200


@pytest.mark.parametrize("token", ["3e38", "-1e16", "18446744073709551616", "-9223372036854775809"])  # finite in
# float32 (or integers beyond int64, which numpy kept as objects: "got mixed values"), beyond what the model can add up
def test_values_beyond_1e15_are_400_never_null_probabilities(server, bandpower, token):
    """A window with values near float32's limit made every probability NaN, answered 200 with nulls (issue 17's
    OpenAPI check): such values are refused before the model, in JSON and .npy alike."""
    r = requests.post(f"{server}/predict", data=_nan_body(_window(bandpower), token),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and "1 values beyond ±1e+15 (first in sample 0)" in r.json()["error"], r.text
    X = bandpower[0][:3].copy()
    X[2, 0, 0, 0] = float(token)
    r = requests.post(f"{server}/predict_npy", data=npy_bytes(X), headers=NPY, timeout=10)
    assert r.status_code == 400 and "(first in sample 2)" in r.json()["error"], r.text
    assert post(server, _window(bandpower)).status_code == 200


def test_outputs_that_are_not_numbers_are_a_client_error_naming_the_window():
    """What the model answers is checked too: a window it cannot compute is 400, never null probabilities."""
    from serving.windows import check_outputs

    X = np.ones((3, 32, 4, 15), np.float32)
    X[1] *= 1e14
    check_outputs(np.ones((3, 2, 2)), X)
    with pytest.raises(UserInputError, match=r"window 1 drives the model to NaN/Inf outputs: its values \(up to 1e\+14"):
        check_outputs(np.array([[[0.5, 0.5]] * 2, [[np.nan, np.nan]] * 2, [[0.5, 0.5]] * 2]), X)


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_bad_json_is_400_and_server_keeps_serving(server, bandpower, torch_model, case):
    config = torch_model[1]
    build, fragments = BAD_JSON[case]
    body = build(_window(bandpower))
    if isinstance(body, str):
        r = requests.post(f"{server}/predict", data=body, headers={"Content-Type": "application/json"}, timeout=10)
    else:
        r = requests.post(f"{server}/predict", json=body, timeout=10)
    assert r.status_code == 400, r.text
    assert "error" in r.text
    sizes = {"C": config.n_electrodes, "F": config.n_bands, "C_1": config.n_electrodes - 1,
             "F_1": config.n_bands - 1, "min_T": config.min_frames}
    for fragment in fragments:
        assert fragment.format(**sizes) in r.text, (fragment, r.text)
    assert post(server, _window(bandpower)).status_code == 200


def huge_npy_header(descr: str = "<f4") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False,
                                                  "shape": (1024, 32, 4, 10**8)})
    return header.getvalue()


def test_bad_npy_bodies_are_400(server, bandpower):
    X = bandpower[0]
    cases = [
        (b"not a numpy file", ".npy"),
        (npy_bytes(X[:2])[:100], "could not be read"),
        (npy_bytes(X[:2])[:-4], "could not be read"),  # the data cut short
        (huge_npy_header() + b"\0" * 1024, "could not be read"),  # claims 52 TB: never allocated
        (huge_npy_header("|b1") + b"\0" * 1024, "could not be read"),  # nor for a dtype that is not a number
        (npy_bytes(np.zeros((0, 32, 4, 15), np.float32)), "no samples"),
        (npy_bytes(np.array([["a"]])), "only numbers"),
    ]
    for body, fragment in cases:
        r = requests.post(f"{server}/predict_npy", data=body, headers=NPY, timeout=30)
        assert r.status_code == 400, r.text
        assert fragment in r.json()["error"], (fragment, r.text)
    ok = requests.post(f"{server}/predict_npy", data=npy_bytes(X[:3]), headers=NPY, timeout=10)
    assert ok.status_code == 200 and len(ok.json()["pred"]) == 3


def raw_npy(header: str) -> bytes:
    """A .npy version 1.0 file whose header is this text, as a sender may write it."""
    text = header.encode("latin-1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


HOSTILE_NPY = {  # header -> what numpy's message used to pass on to the client (review U10)
    "{'descr': 'SECRET-PASSWORD-123', 'fortran_order': False, 'shape': (1,), }": "SECRET-PASSWORD-123",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\nINJECT [ERROR] line": "INJECT",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1+1,), }": "0x",  # "<ast.BinOp object at 0x7f...>"
    "{'descr': b'SECRET-\\xff": "SECRET",  # numpy's tokenizer raised TokenError: a 500
    # sizes numpy's header check lets through, which then raised TypeError or OverflowError: a 500 (stop 26's review)
    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1180591620717411303424, 4), }": "1180591620717411303424",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 18446744073709551616, 4, 2), }": "18446744073709551616",
}
BOOL_SIZE = "{'descr': '<f4', 'fortran_order': False, 'shape': (True, 32, 4, 15), }"  # with its 7,680 bytes of data


def test_npy_errors_name_what_is_expected_and_echo_nothing(server, torch_model):
    """numpy's header-parse messages quoted the sender's header (up to 500 characters, or a heap address); a
    string array's dtype told the input's length ("got <U15000000 values")."""
    config = torch_model[1]
    expected = (f"the body could not be read as .npy (a header numpy.save does not write, or data that do not fit "
                f"its shape and dtype): send windows of shape (B, {config.n_electrodes}, {config.n_bands}, T) or one "
                f"window ({config.n_electrodes}, {config.n_bands}, T) with T >= {config.min_frames}, saved with "
                f"numpy.save")
    for header, secret in {**HOSTILE_NPY, BOOL_SIZE: "True"}.items():
        body = raw_npy(header) + (b"\0" * 4 * 32 * 4 * 15 if header == BOOL_SIZE else b"")
        r = requests.post(f"{server}/predict_npy", data=body, headers=NPY, timeout=10)
        assert r.status_code == 400 and r.json() == {"error": expected}, (header, r.status_code, r.text)
        assert secret not in r.text
    long_string = "s" * 123457
    for r in (requests.post(f"{server}/predict_npy", data=npy_bytes(np.array([long_string])), headers=NPY, timeout=10),
              requests.post(f"{server}/predict", json={"x": [[[long_string]]]}, timeout=10)):
        assert r.status_code == 400 and "(got strings)" in r.json()["error"], r.text
        assert "123457" not in r.text and "<U" not in r.text


@pytest.mark.parametrize("query", ["return_logits=1", "return_logits=TRUE", "return_logits=yes", "return_logits=",
                                   "logits=true", "return_logits=true&return_logits=false", "x=1"])
def test_predict_npy_query_is_strict_like_the_json_route(server, bandpower, query):
    """Anything but return_logits=true|false used to be ignored silently (review U15)."""
    r = requests.post(f"{server}/predict_npy?{query}", data=npy_bytes(bandpower[0][:2]), headers=NPY, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "/predict_npy takes one optional query parameter, return_logits=true or "
                                 "return_logits=false"}
    answer = {"pred", "conf", "probs", "labels"}
    for query, keys in (("", answer), ("?return_logits=false", answer), ("?return_logits=true", answer | {"logits"})):
        r = requests.post(f"{server}/predict_npy{query}", data=npy_bytes(bandpower[0][:2]), headers=NPY, timeout=10)
        assert r.status_code == 200 and set(r.json()) == keys, (query, r.text)


@pytest.mark.parametrize("route", ["/predict", "/stream/open"])
def test_json_routes_refuse_a_query_they_would_ignore(server, bandpower, route):
    """`/predict?return_logits=true` answered 200 without logits: the query was ignored (stop 26's review)."""
    r = requests.post(f"{server}{route}?return_logits=true", json={"x": bandpower[0][0].tolist()}, timeout=10)
    assert r.status_code == 400 and r.json() == {"error": f"{route} takes no query parameters: every option is a "
                                                          f"field of its JSON body"}, r.text
    assert requests.post(f"{server}/predict", json={"x": bandpower[0][0].tolist()}, timeout=10).status_code == 200


def test_body_limits(server, bandpower):
    too_big = b"0" * (LIMITS.max_body_bytes + 1)
    r = requests.post(f"{server}/predict", data=too_big, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and f"at most {LIMITS.max_body_bytes / MiB:g} MiB" in r.json()["error"]
    chunked = requests.post(f"{server}/predict_npy", data=iter([npy_bytes(bandpower[0][:1])]), headers=NPY, timeout=10)
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["error"]
    assert post(server, _window(bandpower)).status_code == 200


def test_concurrent_requests_match_sequential(server, bandpower):
    """200 single-window requests from 16 threads, windows of three lengths mixed: the batched answers equal
    the one-at-a-time ones and none fails (no 503 from the batching latency budget, no 500)."""
    X = bandpower[0]
    distinct = [X[i, :, :, -(15, 9, 4)[i % 3]:] for i in range(30)]  # (C, F, T) with T of 15, 9 or 4
    sequential = [post(server, w).json() for w in distinct]
    windows = [distinct[i % 30] for i in range(200)]

    def one(w: np.ndarray) -> tuple[int, dict]:
        r = post(server, w)
        return r.status_code, r.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, windows))
    assert [status for status, _ in answers] == [200] * len(windows)
    for i, (_, answer) in enumerate(answers):
        reference = sequential[i % 30]
        assert answer["pred"] == reference["pred"]
        assert np.abs(np.array(answer["probs"]) - np.array(reference["probs"])).max() <= 1e-6


def _with_class_names(exported: Path, folder: Path, names: tuple[str, ...]) -> Path:
    """A copy of the export (its batch graph) whose config names the classes."""
    import onnx

    config, _ = read_onnx_metadata(exported)
    proto = onnx.load(exported)
    set_metadata(proto, dataclasses.replace(config, class_names=names))
    onnx.save(proto, folder / "model.onnx")
    return folder / "model.onnx"


def test_local_onnx_file_via_env_and_labels_from_class_names(exported, tmp_path, bandpower):
    """EEG2ARM_ONNX serves an exported file without the model store; /predict names each window's class beside its
    index (issue 19); /metadata names the file without its folder."""
    onnx_path = _with_class_names(exported[0], tmp_path, ("eyes_open", "eyes_closed"))
    with serve({"EEG2ARM_ONNX": str(onnx_path), "BENTOML_HOME": str(tmp_path / "empty")},
               tmp_path / "serve.log") as url:
        r = requests.get(f"{url}/metadata", timeout=10)
        meta = r.json()
        export_id = read_onnx_metadata(exported[0])[1]["export_id"]  # the copy keeps its export's id
        assert meta["model"] == {"name": "model.onnx", "version": export_id, "source": "file",
                                 "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest()}
        assert str(tmp_path) not in r.text and meta["labels"] == ["eyes_open", "eyes_closed"]
        body = post(url, bandpower[0][:5]).json()
        assert len(body["pred"]) == 5
        assert body["labels"] == [("eyes_open", "eyes_closed")[k] for k in body["pred"]]


@pytest.mark.parametrize("text", ["abc", "0", "-5", "1.5", "nan"])
def test_a_bad_number_in_the_service_settings_names_the_variable(monkeypatch, text):
    monkeypatch.setenv("EEG2ARM_MAX_STREAMS", text)
    with pytest.raises(UserInputError, match="EEG2ARM_MAX_STREAMS=.* is not a positive int"):
        env_number("EEG2ARM_MAX_STREAMS", 64)


def test_service_settings_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("EEG2ARM_STREAM_IDLE_S", "2.5")
    assert env_number("EEG2ARM_STREAM_IDLE_S", 60.0, float) == 2.5
    monkeypatch.delenv("EEG2ARM_STREAM_IDLE_S")
    assert env_number("EEG2ARM_STREAM_IDLE_S", 60.0, float) == 60.0
    monkeypatch.setenv("EEG2ARM_STREAM_IDLE_S", "nan")  # would never expire a session
    with pytest.raises(UserInputError, match="is not a positive float"):
        env_number("EEG2ARM_STREAM_IDLE_S", 60.0, float)


@pytest.mark.parametrize("text", ["maybe", "true", "2", " 1"])
def test_batching_is_0_or_1(monkeypatch, text):
    """EEG2ARM_BATCHING=maybe used to mean on, silently (review U16)."""
    monkeypatch.setenv("EEG2ARM_BATCHING", text)
    with pytest.raises(UserInputError, match="EEG2ARM_BATCHING=.* must be 0 or 1"):
        Settings.from_env()
    for text, batching in (("0", False), ("1", True)):
        monkeypatch.setenv("EEG2ARM_BATCHING", text)
        assert Settings.from_env().batching is batching


@pytest.mark.parametrize("token, size", [("", "empty"), ("a" * 15, "15 characters long")])
def test_a_token_set_empty_or_short_is_refused(monkeypatch, token, size):
    """EEG2ARM_API_TOKEN= used to mean no token at all, and any length was taken (review U8)."""
    monkeypatch.setenv("EEG2ARM_API_TOKEN", token)
    with pytest.raises(UserInputError, match=f"EEG2ARM_API_TOKEN is set but {size}: use at least 16 random"):
        Settings.from_env()
    monkeypatch.setenv("EEG2ARM_API_TOKEN", "a" * 16)
    assert Settings.from_env().api_token == "a" * 16
    monkeypatch.delenv("EEG2ARM_API_TOKEN")
    assert Settings.from_env().api_token is None


def test_a_budget_below_one_body_is_refused(monkeypatch):
    monkeypatch.setenv("EEG2ARM_MAX_BODY_MB", "16")
    monkeypatch.setenv("EEG2ARM_MAX_INFLIGHT_MB", "8")
    with pytest.raises(UserInputError, match=r"EEG2ARM_MAX_INFLIGHT_MB \(8\) is below EEG2ARM_MAX_BODY_MB \(16\)"):
        Settings.from_env()
    monkeypatch.setenv("EEG2ARM_MAX_INFLIGHT_MB", "16")
    assert Settings.from_env().max_inflight_bytes == 16 * 2**20


@pytest.mark.parametrize("token", ["a" * 16 + "\n", "a" * 8 + " " + "a" * 8, "ä" * 16])
def test_a_token_no_request_could_send_is_refused(monkeypatch, token):
    """A trailing newline or a non-ASCII character made a token no Authorization header could match."""
    monkeypatch.setenv("EEG2ARM_API_TOKEN", token)
    with pytest.raises(UserInputError, match="EEG2ARM_API_TOKEN holds spaces or characters outside printable ASCII"):
        Settings.from_env()


@pytest.mark.parametrize("hosts", ["eeg2arm.lab:3000", "https://eeg2arm.lab", "*.example.com", "ok.lab, a b"])
def test_an_allowed_host_that_could_never_match_is_refused(monkeypatch, hosts):
    """A port, scheme or wildcard in EEG2ARM_ALLOWED_HOSTS was kept as typed and never matched a Host header, so
    every request got 403."""
    monkeypatch.setenv("EEG2ARM_ALLOWED_HOSTS", hosts)
    with pytest.raises(UserInputError, match="EEG2ARM_ALLOWED_HOSTS: .* is not a bare host name"):
        Settings.from_env()
    monkeypatch.setenv("EEG2ARM_ALLOWED_HOSTS", "Eeg2arm.LAB., arm-1,*")
    assert Settings.from_env().allowed_hosts == ("eeg2arm.lab", "arm-1", "*")


def test_a_bad_setting_stops_bentoml_serve_in_one_line(tmp_path):
    """A bad EEG2ARM_* value ended `bentoml serve` with a 61-line traceback (review item 19)."""
    log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match="exited with code 1"):
        with serve({"EEG2ARM_BATCHING": "maybe", "EEG2ARM_ONNX": str(tmp_path / "model.onnx")}, log, timeout=60):
            pass
    assert_one_line_error(log, "EEG2ARM_BATCHING='maybe' must be 0 or 1")


def test_an_empty_model_store_says_how_to_fill_it(tmp_path):
    """`bentoml serve` with no model in the store said only that eeg2arm:latest could not be fetched from a
    remote (review R2): it now names the store and the two ways to give it a model."""
    log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match="exited with code 1"):
        with serve({"BENTOML_HOME": str(tmp_path / "store"), "EEG2ARM_ONNX": ""}, log, timeout=60):
            pass
    assert_one_line_error(log, f"no model eeg2arm in the BentoML model store at {tmp_path / 'store'}: put one there "
                               "with `eeg2arm export --ckpt CKPT --out model.onnx --bentoml`")


@pytest.mark.parametrize("args, env, warned", [
    (("--host", "0.0.0.0"), {}, True),
    ((), {"BENTOML_HOST": "::"}, True),
    (("--host", "0.0.0.0"), {"EEG2ARM_API_TOKEN": "t" * 32}, False),
    (("--host", "127.0.0.1"), {}, False),
])
def test_a_network_bind_without_a_token_is_one_warning(tmp_path, args, env, warned):
    """--host 0.0.0.0 without a token started without a word (review U8). A missing model stops the server right
    after the warning, before it binds anything: the test never listens on a network."""
    log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match="exited with code 1"):
        with serve({"EEG2ARM_ONNX": str(tmp_path / "model.onnx"), **env}, log, timeout=60, args=args):
            pass
    lines = log.read_text().strip().splitlines()
    warnings = [line for line in lines if "without EEG2ARM_API_TOKEN: anyone who can reach this machine" in line]
    assert len(warnings) == warned and lines[-1].startswith("Error: ") and len(lines) == 1 + warned, lines


@pytest.mark.parametrize("content", [None, b"not an onnx file"])
def test_a_bad_local_model_stops_the_server_with_its_reason(tmp_path, content):
    model = tmp_path / "model.onnx"
    if content is not None:
        model.write_bytes(content)
    log = tmp_path / "serve.log"
    with pytest.raises(RuntimeError, match="exited with code"):  # at once, not a worker restarting forever
        with serve({"EEG2ARM_ONNX": str(model)}, log, timeout=60):
            pass
    assert_one_line_error(log, "is not a file: point it at a model exported with `eeg2arm export`, or unset it to "
                               "serve eeg2arm:latest from the model store" if content is None
                          else "is not a readable ONNX model (DecodeError); export it again")


def assert_one_line_error(log: Path, reason: str) -> None:
    """The server's output is one line `Error: ...` with the reason, no traceback (review item 19: it was 61 lines
    ending in the reason)."""
    lines = log.read_text().strip().splitlines()
    assert lines[-1].startswith("Error: ") and reason in lines[-1], lines[-3:]
    assert len(lines) == 1, lines[:5]


def _external_data_outside(exported, folder: Path) -> Path:
    """The export with its weights moved to a file outside its folder, which the model points at."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    (folder / "model").mkdir()
    proto = onnx.load(exported)
    convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save(proto, folder / "model" / "model.onnx")  # weights.bin beside it; now point outside the folder
    (folder / "model" / "weights.bin").rename(folder / "weights.bin")
    proto = onnx.load(folder / "model" / "model.onnx", load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    onnx.save(proto, folder / "model" / "model.onnx")
    return folder / "model" / "model.onnx"


def _step_graph_of_another_export(exported, folder: Path) -> Path:
    """model.onnx beside a step graph whose export_id is another export's."""
    import onnx

    shutil.copyfile(exported, folder / "model.onnx")
    step = onnx.load(step_path(exported))
    for prop in step.metadata_props:
        if prop.key == "eeg2arm.export_id":
            prop.value = json.dumps("0" * 32)
    onnx.save(step, step_path(folder / "model.onnx"))
    return folder / "model.onnx"


def _metadata_of_another_model(exported, folder: Path) -> Path:
    """The batch graph (32 electrodes) with the metadata of a real export of 16: it used to start, log
    'initialized', then answer every valid /predict with 500 (issue 17)."""
    import onnx

    config, _ = read_onnx_metadata(exported)
    proto = onnx.load(exported)
    set_metadata(proto, dataclasses.replace(config, n_electrodes=16))
    onnx.save(proto, folder / "model.onnx")
    return folder / "model.onnx"


@pytest.mark.parametrize("make, reason", [
    (_external_data_outside, "is outside the model's folder ('../weights.bin')"),
    (_metadata_of_another_model, "its graph does not answer windows of its metadata's shape (2, 16, 4, 2)"),
    (_step_graph_of_another_export, "comes from another export than"),
    # the step graph as the model: it used to start, and answer every /predict with 500 (review U7)
    (lambda exported, folder: step_path(exported), "is the streaming step graph of an export, which takes frames "
                                                   "and state, not windows: use the batch graph model.onnx"),
])
def test_a_model_that_cannot_be_served_stops_bentoml_serve_within_seconds(exported, tmp_path, make, reason):
    model = make(exported[0], tmp_path)
    log = tmp_path / "serve.log"
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="exited with code"):
        with serve({"EEG2ARM_ONNX": str(model), "BENTOML_HOME": str(tmp_path / "empty")}, log, timeout=60):
            pass
    assert time.perf_counter() - t0 < 20  # seconds, not a worker restarting every ~10 s forever
    assert_one_line_error(log, reason)
