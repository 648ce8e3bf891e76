"""Every Kustomize overlay under deploy/k8s renders offline, and every object it renders validates against
the vendored schemas of a pinned Kubernetes (1.32) and of the CRDs it uses (KServe, KubeRay, Prometheus
Operator); the schemas are strict, so a misspelt field fails here as ``kubectl apply --validate=strict``
would fail it on a cluster."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.k8s import COMPONENTS, OVERLAYS, Manifest, catalog, render_overlay, render_with_components

EXPECTED_KINDS = {
    "cpu": {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"},
    "gpu": {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"},
    "kserve": {"InferenceService"},
    "ray-extract": {"RayJob"},
    "podman-play": {"Deployment", "Secret"},
}


def test_every_overlay_is_covered() -> None:
    assert set(OVERLAYS) == set(EXPECTED_KINDS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_expected_kinds(overlay: str) -> None:
    assert {m["kind"] for m in render_overlay(overlay)} == EXPECTED_KINDS[overlay]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_the_schemas(overlay: str) -> None:
    errors = [e for m in render_overlay(overlay) for e in catalog().errors(m)]
    assert errors == []


def test_components_render_and_validate(tmp_path: Path) -> None:
    manifests = render_with_components("cpu", COMPONENTS, tmp_path)
    assert "ServiceMonitor" in {m["kind"] for m in manifests}
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    mounts = deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "models", "mountPath": "/app/model_repository", "readOnly": True} in mounts
    assert [e for m in manifests for e in catalog().errors(m)] == []


def first_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec["containers"][0]
    return container


def misspell_probe(m: Manifest) -> None:
    c = first_container(m["spec"]["template"]["spec"])
    c["readinesProbe"] = c.pop("readinessProbe")


def cpu_as_list(m: Manifest) -> None:
    first_container(m["spec"]["template"]["spec"])["resources"]["limits"]["cpu"] = ["2"]


def replicas_as_text(m: Manifest) -> None:
    m["spec"]["predictor"]["minReplicas"] = "two"


def unknown_predictor_field(m: Manifest) -> None:
    m["spec"]["predictor"]["replicas"] = 2


def unknown_head_field(m: Manifest) -> None:
    m["spec"]["rayClusterSpec"]["headGroupSpec"]["replicas"] = 1


def hpa_without_target(m: Manifest) -> None:
    del m["spec"]["scaleTargetRef"]


def wrong_api_version(m: Manifest) -> None:
    m["apiVersion"] = "autoscaling/v2beta1"


BROKEN: list[tuple[str, str, Callable[[Manifest], None]]] = [
    ("cpu", "Deployment", misspell_probe),
    ("cpu", "Deployment", cpu_as_list),
    ("cpu", "HorizontalPodAutoscaler", hpa_without_target),
    ("cpu", "HorizontalPodAutoscaler", wrong_api_version),
    ("kserve", "InferenceService", replicas_as_text),
    ("kserve", "InferenceService", unknown_predictor_field),
    ("ray-extract", "RayJob", unknown_head_field),
]


@pytest.mark.parametrize(("overlay", "kind", "breakage"), BROKEN, ids=[b.__name__ for _, _, b in BROKEN])
def test_schema_validation_catches(overlay: str, kind: str, breakage: Callable[[Manifest], None]) -> None:
    (manifest,) = [m for m in render_overlay(overlay) if m["kind"] == kind]
    assert list(catalog().errors(manifest)) == []
    broken = copy.deepcopy(manifest)
    breakage(broken)
    assert list(catalog().errors(broken)) != []


def test_servicemonitor_schema_catches_a_wrong_type(tmp_path: Path) -> None:
    manifests = render_with_components("cpu", ["servicemonitor"], tmp_path)
    (monitor,) = [m for m in manifests if m["kind"] == "ServiceMonitor"]
    monitor["spec"]["endpoints"] = {"port": "http"}
    assert list(catalog().errors(monitor)) != []
