"""Policy for poolserve's rendered Kubernetes manifests: what a schema cannot say.

Each rule takes every rendered object of one overlay and returns what it finds wrong (empty: fine), so a
test can render an overlay, mutate one object and show that exactly the rule meant to catch it does.
Pods are found wherever the kinds in use keep them: a Deployment's template, an InferenceService's
predictor, a RayJob's head and worker templates. Serving pods (Deployment, InferenceService) answer
traffic and get every rule; batch pods (RayJob) are not probed by us (KubeRay injects its own probes)
and may write to their root filesystem (Ray keeps its session, logs and spilled objects there).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]
Rule = Callable[[list[Manifest]], list[str]]

SERVING_KINDS = {"Deployment", "InferenceService"}
BATCH_KINDS = {"RayJob"}
# The endpoints each probe must hit (tests check they are routes of the app).
PROBE_PATHS = {
    "Deployment": {
        "startupProbe": "/health/ready",
        "readinessProbe": "/health/ready",
        "livenessProbe": "/health/live",
    },
    "InferenceService": {
        "startupProbe": "/v2/health/ready",
        "readinessProbe": "/v2/health/ready",
        "livenessProbe": "/v2/health/live",
    },
}
GRACE_FLAG = re.compile(r"--timeout-graceful-shutdown[= ](\d+)")


@dataclass(frozen=True)
class Pod:
    kind: str
    name: str  # object name, plus the group for a RayJob's pods
    spec: Manifest  # the PodSpec (or the InferenceService predictor, which inlines one)

    @property
    def serving(self) -> bool:
        return self.kind in SERVING_KINDS

    @property
    def containers(self) -> list[Manifest]:
        containers: list[Manifest] = self.spec.get("containers", [])
        return containers


def pods(manifests: list[Manifest]) -> Iterator[Pod]:
    for m in manifests:
        kind, name, spec = m["kind"], m["metadata"]["name"], m.get("spec", {})
        if kind == "Deployment":
            yield Pod(kind, name, spec["template"]["spec"])
        elif kind == "InferenceService":
            yield Pod(kind, name, spec["predictor"])
        elif kind == "RayJob":
            cluster = spec["rayClusterSpec"]
            yield Pod(kind, f"{name}/head", cluster["headGroupSpec"]["template"]["spec"])
            for group in cluster.get("workerGroupSpecs", []):
                yield Pod(kind, f"{name}/{group['groupName']}", group["template"]["spec"])


def containers(manifests: list[Manifest]) -> Iterator[tuple[Pod, Manifest, str]]:
    for pod in pods(manifests):
        for container in pod.containers:
            yield pod, container, f"{pod.kind} {pod.name} container {container['name']}"


def probes(manifests: list[Manifest]) -> list[str]:
    """Serving containers: startup, readiness and liveness probes, HTTP GETs on the service's own health
    endpoints on a port the container declares."""
    found = []
    for pod, c, where in containers(manifests):
        if not pod.serving:
            continue
        ports = c.get("ports", [])
        declared = {p.get("name") for p in ports} | {p["containerPort"] for p in ports}
        for probe, path in PROBE_PATHS[pod.kind].items():
            get = c.get(probe, {}).get("httpGet")
            if get is None:
                found.append(f"{where}: no {probe} with httpGet")
            elif get.get("path") != path:
                found.append(f"{where}: {probe} on {get.get('path')}, expected {path}")
            elif get.get("port") not in declared:
                found.append(f"{where}: {probe} port {get.get('port')} is not a declared container port")
    return found


def resources(manifests: list[Manifest]) -> list[str]:
    """Every container requests and limits CPU and memory."""
    found = []
    for _, c, where in containers(manifests):
        res = c.get("resources", {})
        for section in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(res.get(section, {}))
            if missing:
                found.append(f"{where}: no {section} for {', '.join(sorted(missing))}")
    return found


def non_root(manifests: list[Manifest]) -> list[str]:
    """Every container runs as non-root (its own or its pod's securityContext), never as uid 0."""
    found = []
    for pod, c, where in containers(manifests):
        merged = {**pod.spec.get("securityContext", {}), **c.get("securityContext", {})}
        if merged.get("runAsNonRoot") is not True:
            found.append(f"{where}: runAsNonRoot is not true")
        if merged.get("runAsUser") == 0:
            found.append(f"{where}: runAsUser 0")
    return found


def no_privilege(manifests: list[Manifest]) -> list[str]:
    """No privilege escalation, no privileged mode, every capability dropped."""
    found = []
    for _, c, where in containers(manifests):
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            found.append(f"{where}: privileged")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []) or sc.get("capabilities", {}).get("add"):
            found.append(f"{where}: capabilities not all dropped")
    return found


def read_only_root(manifests: list[Manifest]) -> list[str]:
    """Serving containers have a read-only root filesystem and a writable /tmp from an emptyDir."""
    found = []
    for pod, c, where in containers(manifests):
        if not pod.serving:
            continue
        if c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
            found.append(f"{where}: root filesystem is writable")
        empty_dirs = {v["name"] for v in pod.spec.get("volumes", []) if "emptyDir" in v}
        if not any(m["mountPath"] == "/tmp" and m["name"] in empty_dirs for m in c.get("volumeMounts", [])):
            found.append(f"{where}: no emptyDir on /tmp")
    return found


def image_tags(manifests: list[Manifest]) -> list[str]:
    """Every image names a tag or digest, and the tag is not ``latest``."""
    found = []
    for _, c, where in containers(manifests):
        image = c.get("image", "")
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        if not name or "/" in tag:  # no tag at all (a colon in a registry's port is not one)
            found.append(f"{where}: image {image!r} has no tag")
        elif tag == "latest":
            found.append(f"{where}: image {image!r} uses latest")
    return found


def drain_seconds(container: Manifest, image_drain_s: int) -> int:
    """How long the server may drain after SIGTERM: the uvicorn flag when the container sets its command,
    else the image's; at least ``POOLSERVE_SHUTDOWN_GRACE_S`` when set (what ``poolserve serve`` reads)."""
    command = shlex.join([*container.get("command", []), *container.get("args", [])])
    flag = GRACE_FLAG.search(command)
    drain = int(flag.group(1)) if flag else image_drain_s
    for env in container.get("env", []):
        if env["name"] == "POOLSERVE_SHUTDOWN_GRACE_S":
            drain = max(drain, int(env["value"]))
    return drain


def graceful_shutdown(image_drain_s: int) -> Rule:
    """Serving pods: a preStop pause, and a termination grace period longer than the pause plus the drain
    (Kubernetes counts the preStop hook inside the grace period, then SIGKILLs)."""

    def rule(manifests: list[Manifest]) -> list[str]:
        found = []
        for pod, c, where in containers(manifests):
            if not pod.serving:
                continue
            pause = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
            if not pause:
                found.append(f"{where}: no preStop sleep")
                pause = 0
            grace = pod.spec.get("terminationGracePeriodSeconds", 30)
            needed = pause + drain_seconds(c, image_drain_s)
            if grace <= needed:
                found.append(f"{where}: terminationGracePeriodSeconds {grace} <= preStop {pause} + drain")
        return found

    return rule


def threads_from_cpu_limit(manifests: list[Manifest]) -> list[str]:
    """Serving containers size onnxruntime's pool from their own CPU limit (downward API)."""
    found = []
    for pod, c, where in containers(manifests):
        if not pod.serving:
            continue
        env = {e["name"]: e for e in c.get("env", [])}
        ref = env.get("POOLSERVE_INTRA_OP_THREADS", {}).get("valueFrom", {}).get("resourceFieldRef", {})
        if ref.get("resource") != "limits.cpu" or ref.get("containerName") != c["name"]:
            found.append(f"{where}: POOLSERVE_INTRA_OP_THREADS not from this container's limits.cpu")
    return found


def selectors_match(manifests: list[Manifest]) -> list[str]:
    """Services, PodDisruptionBudgets and HorizontalPodAutoscalers point at a Deployment of the same render,
    a Service's targetPort at one of its container ports."""
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}

    def selected(selector: dict[str, str]) -> list[Manifest]:
        return [
            d
            for d in deployments.values()
            if selector and selector.items() <= d["spec"]["template"]["metadata"].get("labels", {}).items()
        ]

    found = []
    for m in manifests:
        kind, name, spec = m["kind"], m["metadata"]["name"], m.get("spec", {})
        if kind == "Service":
            targets = selected(spec.get("selector", {}))
            if not targets:
                found.append(f"Service {name}: selects no Deployment's pods")
            ports = {
                p.get(key)
                for d in targets
                for c in d["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
                for key in ("name", "containerPort")
            }
            found += [
                f"Service {name}: targetPort {p.get('targetPort')} is no container port"
                for p in spec.get("ports", [])
                if p.get("targetPort", p["port"]) not in ports
            ]
        elif kind == "PodDisruptionBudget" and not selected(spec.get("selector", {}).get("matchLabels", {})):
            found.append(f"PodDisruptionBudget {name}: selects no Deployment's pods")
        elif kind == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            if ref["kind"] != "Deployment" or ref["name"] not in deployments:
                found.append(
                    f"HorizontalPodAutoscaler {name}: scales {ref['kind']} {ref['name']}, not rendered"
                )
    return found


def rules(image_drain_s: int) -> dict[str, Rule]:
    return {
        "probes": probes,
        "resources": resources,
        "non_root": non_root,
        "no_privilege": no_privilege,
        "read_only_root": read_only_root,
        "image_tags": image_tags,
        "graceful_shutdown": graceful_shutdown(image_drain_s),
        "threads_from_cpu_limit": threads_from_cpu_limit,
        "selectors_match": selectors_match,
    }
