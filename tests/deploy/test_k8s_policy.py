"""The rendered overlays follow poolserve's deployment policy (tests/deploy/k8s_policy.py), each rule can
fail (a mutated manifest is caught by exactly the rule meant for it), and the figures and endpoints the
manifests rely on are the service's and the measurements' own."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from poolserve.service.settings import Settings
from tests.deploy import k8s_policy
from tests.deploy.k8s import K8S, OVERLAYS, ROOT, Manifest, render_overlay
from tests.service.conftest import running_server

BENCH_RESULTS = ROOT / "bench" / "results" / "results.json"


def image_drain_seconds() -> int:
    """How long the runtime image drains after SIGTERM: uvicorn's flag when its command passes one, else
    the image's ``POOLSERVE_SHUTDOWN_GRACE_S``, else the Settings default."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    runtime_stage = dockerfile[dockerfile.rindex("AS runtime") :]
    (cmd,) = re.findall(r"^CMD (\[.*\])$", runtime_stage, re.MULTILINE)
    flag = k8s_policy.GRACE_FLAG.search(" ".join(json.loads(cmd)))
    env = re.search(r"\bPOOLSERVE_SHUTDOWN_GRACE_S=(\d+)", runtime_stage)
    default = int(Settings.model_fields["shutdown_grace_s"].default)
    return int(flag.group(1)) if flag else int(env.group(1)) if env else default


RULES = k8s_policy.rules(image_drain_seconds())


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("rule", sorted(RULES))
def test_overlay_follows_rule(overlay: str, rule: str) -> None:
    assert RULES[rule](render_overlay(overlay)) == []


def the(manifests: list[Manifest], kind: str) -> Manifest:
    (manifest,) = [m for m in manifests if m["kind"] == kind]
    return manifest


def serving_container(manifests: list[Manifest]) -> dict[str, Any]:
    container: dict[str, Any] = the(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def pod_spec(manifests: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = the(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def drop_readiness(ms: list[Manifest]) -> None:
    del serving_container(ms)["readinessProbe"]


def liveness_on_ready(ms: list[Manifest]) -> None:
    serving_container(ms)["livenessProbe"]["httpGet"]["path"] = "/health/ready"


def kserve_probe_on_v1_path(ms: list[Manifest]) -> None:
    the(ms, "InferenceService")["spec"]["predictor"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = (
        "/health/ready"
    )


def drop_memory_limit(ms: list[Manifest]) -> None:
    del serving_container(ms)["resources"]["limits"]["memory"]


def ray_worker_without_requests(ms: list[Manifest]) -> None:
    group = the(ms, "RayJob")["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    del group["template"]["spec"]["containers"][0]["resources"]["requests"]


def run_as_root(ms: list[Manifest]) -> None:
    pod_spec(ms)["securityContext"]["runAsUser"] = 0


def allow_root(ms: list[Manifest]) -> None:
    del pod_spec(ms)["securityContext"]["runAsNonRoot"]
    del serving_container(ms)["securityContext"]["runAsNonRoot"]


def allow_escalation(ms: list[Manifest]) -> None:
    serving_container(ms)["securityContext"]["allowPrivilegeEscalation"] = True


def add_capability(ms: list[Manifest]) -> None:
    serving_container(ms)["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


def writable_root(ms: list[Manifest]) -> None:
    serving_container(ms)["securityContext"]["readOnlyRootFilesystem"] = False


def tmp_not_mounted(ms: list[Manifest]) -> None:
    serving_container(ms)["volumeMounts"] = []


def latest_image(ms: list[Manifest]) -> None:
    serving_container(ms)["image"] = "poolserve:latest"


def untagged_image(ms: list[Manifest]) -> None:
    serving_container(ms)["image"] = "registry.example.com:5000/poolserve"


def short_grace(ms: list[Manifest]) -> None:
    pod_spec(ms)["terminationGracePeriodSeconds"] = 30  # 5 s pause + 25 s drain: SIGKILL at the very end


def no_prestop(ms: list[Manifest]) -> None:
    del serving_container(ms)["lifecycle"]


def longer_drain_in_args(ms: list[Manifest]) -> None:
    serving_container(ms)["args"] = ["--timeout-graceful-shutdown", "60"]


def longer_drain_in_env(ms: list[Manifest]) -> None:
    env = serving_container(ms)["env"]
    (grace,) = [e for e in env if e["name"] == "POOLSERVE_SHUTDOWN_GRACE_S"]
    grace["value"] = "45"


def threads_fixed(ms: list[Manifest]) -> None:
    env = serving_container(ms)["env"]
    (threads,) = [e for e in env if e["name"] == "POOLSERVE_INTRA_OP_THREADS"]
    threads.pop("valueFrom")
    threads["value"] = "8"


def service_selects_nothing(ms: list[Manifest]) -> None:
    the(ms, "Service")["spec"]["selector"] = {"app.kubernetes.io/name": "pool-serve"}


def service_wrong_target_port(ms: list[Manifest]) -> None:
    the(ms, "Service")["spec"]["ports"][0]["targetPort"] = "metrics"


def pdb_selects_nothing(ms: list[Manifest]) -> None:
    the(ms, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "x"


def hpa_scales_something_else(ms: list[Manifest]) -> None:
    the(ms, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] = "poolserve-v2"


MUTATIONS: list[tuple[str, str, Callable[[list[Manifest]], None]]] = [
    ("probes", "cpu", drop_readiness),
    ("probes", "cpu", liveness_on_ready),
    ("probes", "kserve", kserve_probe_on_v1_path),
    ("resources", "cpu", drop_memory_limit),
    ("resources", "ray-extract", ray_worker_without_requests),
    ("non_root", "cpu", run_as_root),
    ("non_root", "cpu", allow_root),
    ("no_privilege", "cpu", allow_escalation),
    ("no_privilege", "cpu", add_capability),
    ("read_only_root", "cpu", writable_root),
    ("read_only_root", "cpu", tmp_not_mounted),
    ("image_tags", "cpu", latest_image),
    ("image_tags", "cpu", untagged_image),
    ("graceful_shutdown", "cpu", short_grace),
    ("graceful_shutdown", "cpu", no_prestop),
    ("graceful_shutdown", "cpu", longer_drain_in_args),
    ("graceful_shutdown", "cpu", longer_drain_in_env),
    ("threads_from_cpu_limit", "cpu", threads_fixed),
    ("selectors_match", "cpu", service_selects_nothing),
    ("selectors_match", "cpu", service_wrong_target_port),
    ("selectors_match", "cpu", pdb_selects_nothing),
    ("selectors_match", "cpu", hpa_scales_something_else),
]


def test_every_rule_has_a_mutation() -> None:
    assert {rule for rule, _, _ in MUTATIONS} == set(RULES)


@pytest.mark.parametrize(("rule", "overlay", "mutate"), MUTATIONS, ids=[m.__name__ for _, _, m in MUTATIONS])
def test_rule_catches(rule: str, overlay: str, mutate: Callable[[list[Manifest]], None]) -> None:
    manifests = render_overlay(overlay)
    mutate(manifests)
    caught = {name for name, check in RULES.items() if check(manifests)}
    assert caught == {rule}


def test_probe_paths_are_endpoints_of_the_app(tmp_path: Path) -> None:
    """Live answers 200 at once; ready 503 with no model to serve (an empty repository), never 404."""
    wanted = {path for paths in k8s_policy.PROBE_PATHS.values() for path in paths.values()}
    with running_server(Settings(repository=tmp_path), wait_ready=False) as url:
        status = {path: httpx.get(url + path).status_code for path in sorted(wanted)}
    assert status == {path: 200 if path.endswith("/live") else 503 for path in wanted}


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def test_memory_request_covers_the_measured_peak() -> None:
    """The cpu overlay's request is sized from bench/results (the RSS of poolserve's process tree at rest
    and after load runs): it must stay above the largest measured figure."""
    measured = json.loads(BENCH_RESULTS.read_text())["rss_mb"]
    resources = serving_container(render_overlay("cpu"))["resources"]
    assert max(measured.values()) < mebibytes(resources["requests"]["memory"])
    assert mebibytes(resources["requests"]["memory"]) <= mebibytes(resources["limits"]["memory"])


def test_gpu_overlay_takes_one_gpu_per_process_on_the_scheduling_it_names() -> None:
    import yaml

    scheduling = yaml.safe_load((K8S / "overlays" / "gpu" / "scheduling.yaml").read_text())["data"]
    manifests = render_overlay("gpu")
    spec = pod_spec(manifests)
    container = serving_container(manifests)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    # One process per GPU: the image's own command (one server), no extra workers.
    assert "command" not in container and "args" not in container and "UVICORN_WORKERS" not in env
    assert env["POOLSERVE_EXECUTION_PROVIDER"] == "cuda"
    assert container["image"].endswith("-gpu")
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": scheduling["nodeSelectorValue"]}
    assert spec["tolerations"] == [
        {"key": scheduling["tolerationKey"], "operator": "Exists", "effect": scheduling["tolerationEffect"]}
    ]


def test_rayjob_runs_the_extract_command_as_the_cli_defines_it() -> None:
    """The RayJob's entrypoint parses with ``poolserve extract``'s own options and names a shipped model."""
    import shlex

    import typer

    from poolserve.cli import app

    entrypoint = shlex.split(the(render_overlay("ray-extract"), "RayJob")["spec"]["entrypoint"])
    assert entrypoint[:2] == ["poolserve", "extract"]
    assert [*entrypoint[-2:]] == ["--engine", "ray"]
    assert (ROOT / "model_repository" / entrypoint[2]).is_dir()
    commands = getattr(typer.main.get_command(app), "commands", {})
    assert "serve" in commands
    extract = commands.get("extract")
    if extract is None:
        pytest.skip("`poolserve extract` is not in this build yet: the entrypoint is checked once it is")
    extract.make_context("extract", entrypoint[2:])  # raises on an unknown option or a missing argument


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per line of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    split = (line.partition(" ") for line in lines if line[:1].isalpha())  # not comments or blank lines
    return [(op, args.strip()) for op, _, args in split]


def test_rayjob_reads_the_models_where_its_image_puts_them() -> None:
    """The wheel holds no models: the RayJob's ``--repository`` must be the folder deploy/ray.Dockerfile
    copies the shipped models to, in the image's last stage, which is also its POOLSERVE_REPOSITORY."""
    import shlex
    import tomllib

    entrypoint = shlex.split(the(render_overlay("ray-extract"), "RayJob")["spec"]["entrypoint"])
    assert "--repository" in entrypoint, "without it the job looks for models beside the installed wheel"
    repository = entrypoint[entrypoint.index("--repository") + 1]
    instructions = dockerfile_instructions(ROOT / "deploy" / "ray.Dockerfile")
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    image = instructions[last_from:]
    copies = [args.split()[-2:] for op, args in image if op == "COPY" and "--from" not in args]
    assert ["model_repository", repository] in copies
    assert ("ENV", f"POOLSERVE_REPOSITORY={repository}") in image
    # ... the model the job names is one of those, the wheel holds `poolserve extract` and is this version.
    assert (ROOT / "model_repository" / entrypoint[2]).is_dir()
    assert ("COPY", "extract extract") in instructions[:last_from]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert ("ARG", f"POOLSERVE_VERSION={version}") in image


@pytest.mark.parametrize(
    ("overlay", "suffix"), [("cpu", ""), ("gpu", "-gpu"), ("kserve", ""), ("ray-extract", "")]
)
def test_images_are_tagged_with_the_project_version(overlay: str, suffix: str) -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for _, c, _ in k8s_policy.containers(render_overlay(overlay))}
    assert images and all(image.endswith(f":{version}{suffix}") for image in images)
