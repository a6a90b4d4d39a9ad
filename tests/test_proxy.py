"""deploy/k8s/nginx.conf, the proxy of the deploy recipe, in front of a real `bentoml serve`: the protections that
come from it (docs/deploy.md, "Which protection comes from where"), and the service working through it. Needs nginx
(`apt-get install nginx-light`; CI installs it); skips, saying so, where there is none."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from serving.client import RemoteStreamer
from serving.errors import NOT_FOUND
from serving.front import WRONG_HOST
from serving.local_server import REPO, free_port

CONF = REPO / "deploy" / "k8s" / "nginx.conf"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)


@pytest.fixture(scope="module")
def proxy(server, tmp_path_factory) -> str:
    """The URL of nginx with deploy/k8s/nginx.conf in front of the session's server: the same file, its listen port,
    upstream port and scratch folder (/tmp/nginx-*) changed for the test."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): the proxy's protections are untested here")
    folder = tmp_path_factory.mktemp("nginx")
    port = free_port()
    text = CONF.read_text()
    for old, new in (("server 127.0.0.1:3000;", f"server 127.0.0.1:{server.rsplit(':', 1)[1]};"),
                     ("listen 8080;", f"listen 127.0.0.1:{port};"), ("/tmp/nginx", str(folder / "nginx"))):
        assert old in text, old
        text = text.replace(old, new)
    conf = folder / "nginx.conf"
    conf.write_text(text)
    proc = subprocess.Popen([NGINX, "-e", "stderr", "-c", str(conf), "-g", "daemon off;"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {proc.stdout.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()  # its master stops its worker
        proc.wait(10)


def _slow_headers(url: str, n: int) -> list[socket.socket]:
    """n connections that start a request and never finish its headers."""
    conns = [socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) for _ in range(n)]
    for s in conns:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return conns


def test_request_headers_must_arrive_within_10_s(proxy, server, bandpower):
    """uvicorn has no deadline for request headers and nothing in an ASGI app sees a request before they end: a
    "slowloris" holds its connections to `bentoml serve` for good (the service's own fix subclassed uvicorn's
    protocol, issue 17). The proxy closes them after client_header_timeout, and serves everyone else meanwhile."""
    proxied, direct = _slow_headers(proxy, 50), _slow_headers(server, 5)
    r = requests.post(f"{proxy}/predict", json={"x": bandpower[0][0].tolist()}, timeout=10)
    assert r.status_code == 200 and len(r.json()["pred"]) == 1
    time.sleep(11)
    for s in proxied:
        s.settimeout(5)
        answer = b""
        while chunk := s.recv(1000):  # a timeout here: the proxy kept the connection
            answer += chunk
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
        s.close()
    for s in direct:  # the service alone keeps them: this protection is the proxy's
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(1000)
        s.close()


def test_only_the_services_routes_reach_it(proxy, server):
    """Every distinct path the service sees becomes a Prometheus label of BentoML's for good (5000 random paths:
    /metrics 55 KB -> 24 MB; review U3), and no middleware of the service's can run before BentoML's metrics. The
    proxy passes on the service's routes only."""
    metrics = requests.get(f"{server}/metrics", timeout=10).text.splitlines()
    paths = [f"/{uuid.uuid4().hex}" for _ in range(300)] + ["/metadata/", "/docs.json/", "/static_content/x.css",
                                                            "/predict/../x"]
    with requests.Session() as http:
        for path in paths:
            r = http.get(proxy + path, timeout=10, allow_redirects=False)
            assert r.status_code == 404 and r.json() == {"error": NOT_FOUND}, (path, r.status_code, r.text)
    after = requests.get(f"{server}/metrics", timeout=10).text
    assert len(after.splitlines()) == len(metrics) and not any(path in after for path in paths[:300])


def test_the_service_works_through_the_proxy(proxy, bandpower):
    X = bandpower[0]
    r = requests.post(f"{proxy}/predict", json={"x": X[:4].tolist()}, timeout=10)
    assert r.status_code == 200 and len(r.json()["labels"]) == 4
    assert "/predict" in requests.get(f"{proxy}/docs.json", timeout=10).json()["paths"]
    assert "swagger" in requests.get(f"{proxy}/", timeout=10).text.lower()
    assert requests.get(f"{proxy}/static_content/index.css", timeout=10).status_code == 200
    assert requests.get(f"{proxy}/readyz", timeout=10).status_code == 200
    remote = RemoteStreamer(proxy)  # the WebSocket /stream/ws, upgraded through the proxy
    assert len(remote.push(np.concatenate(list(X[:2]), axis=-1))) == 15
    remote.close()
    # the service still judges the Host the client called (DNS rebinding), not the proxy's upstream name
    r = requests.get(f"{proxy}/metadata", headers={"Host": "evil.example"}, timeout=10)
    assert r.status_code == 403 and r.json() == {"error": WRONG_HOST}
    # a body over 16 MiB stops at the proxy, in the service's error shape
    r = requests.post(f"{proxy}/predict", data=b"0" * (16 * 2**20 + 1), headers={"Content-Type": "application/json"},
                      timeout=30)
    assert r.status_code == 413 and "EEG2ARM_MAX_BODY_MB" in r.json()["error"]
    assert json.loads(requests.get(f"{proxy}/metadata", timeout=10).text)["n_classes"] == 2
