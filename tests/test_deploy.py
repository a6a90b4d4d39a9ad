"""The Kubernetes manifests of docs/deploy.md against Kubernetes' own schemas (kubernetes-validate, offline, strict:
unknown fields fail), and the settings the service relies on."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
MANIFESTS = ["deployment.yaml", "service.yaml", "hpa.yaml", "ingress.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid_kubernetes(name):
    kubernetes_validate.validate(load(name), "1.37.0", strict=True)  # raises ValidationError with the field


def test_a_wrong_field_is_caught():
    """The validator is real: a typo in a probe fails it."""
    deployment = load("deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][1]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37.0", strict=True)


def test_the_deployment_probes_the_service_and_takes_its_token_from_a_secret():
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    container, proxy = containers["eeg2arm"], containers["proxy"]
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    env = {e["name"]: e for e in container["env"]}
    assert env["EEG2ARM_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "eeg2arm-token"
    service_name = load("service.yaml")["metadata"]["name"]
    names = {rule["host"] for rule in load("ingress.yaml")["spec"]["rules"]} | {service_name}
    assert names <= set(env["EEG2ARM_ALLOWED_HOSTS"]["value"].split(","))  # else their requests get 403 (Host)
    assert load("service.yaml")["spec"]["sessionAffinity"] == "ClientIP"
    assert load("hpa.yaml")["spec"]["scaleTargetRef"]["name"] == load("deployment.yaml")["metadata"]["name"]
    assert sorted(load("kustomization.yaml")["resources"]) == sorted(MANIFESTS)


def test_the_service_is_reached_only_through_its_proxy():
    """The service binds the pod's 127.0.0.1 (no BENTOML_HOST) and nginx, with deploy/k8s/nginx.conf (the file
    tests/test_proxy.py runs), holds the pod's one port: every request gets the proxy's protections first."""
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    service, proxy = containers["eeg2arm"], containers["proxy"]
    env = {e["name"]: e.get("value") for e in service["env"]}
    assert "BENTOML_HOST" not in env and "ports" not in service
    conf = (K8S / "nginx.conf").read_text()
    assert f"server 127.0.0.1:{env['BENTOML_PORT']};" in conf
    assert {"name": "http", "containerPort": 8080} in proxy["ports"] and "listen 8080;" in conf
    mount = next(m for m in proxy["volumeMounts"] if m["name"] == "nginx-conf")
    assert proxy["command"][proxy["command"].index("-c") + 1] == f"{mount['mountPath']}/nginx.conf"
    volume = next(v for v in pod["volumes"] if v["name"] == "nginx-conf")
    generated = load("kustomization.yaml")["configMapGenerator"]
    assert {"name": volume["configMap"]["name"], "files": ["nginx.conf"]} in generated
    assert load("service.yaml")["spec"]["ports"][0]["targetPort"] == "http"
