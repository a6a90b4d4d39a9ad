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
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37.0", strict=True)


def test_the_deployment_probes_the_service_and_takes_its_token_from_a_secret():
    container = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    env = {e["name"]: e for e in container["env"]}
    assert env["EEG2ARM_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "eeg2arm-token"
    assert env["BENTOML_HOST"]["value"] == "0.0.0.0"  # the image binds 127.0.0.1 unless told otherwise
    service_name = load("service.yaml")["metadata"]["name"]
    names = {rule["host"] for rule in load("ingress.yaml")["spec"]["rules"]} | {service_name}
    assert names <= set(env["EEG2ARM_ALLOWED_HOSTS"]["value"].split(","))  # else their requests get 403 (Host)
    assert load("service.yaml")["spec"]["sessionAffinity"] == "ClientIP"
    assert load("hpa.yaml")["spec"]["scaleTargetRef"]["name"] == load("deployment.yaml")["metadata"]["name"]
    assert sorted(load("kustomization.yaml")["resources"]) == sorted(MANIFESTS)
