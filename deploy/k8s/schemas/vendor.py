"""Regenerate the vendored JSON schemas in this folder from their published sources (README.md here).

Each output is one self-contained JSON Schema (draft 2020-12) bundle, small enough to commit:

- Kubernetes: the kinds poolserve's manifests use, with only the definitions they reach, from the
  ``*-local-strict`` schemas that the ``kubernetes-validate`` wheel on PyPI ships (``additionalProperties:
  false`` everywhere, so a misspelt field fails as ``kubectl apply --validate=strict`` would).
- CRDs: the ``openAPIV3Schema`` of one served version, made strict the same way (objects that list their
  properties and do not preserve unknown fields reject others; the API server would silently drop them).

Descriptions are removed everywhere (most of the bytes, no effect on validation). ``--unchecked`` names
fields (dotted, from the object's root) whose subschema becomes ``{"type": "object"}``: parts of a CRD
that poolserve's manifests do not use (KServe's framework predictors, transformer, explainer) stay allowed
but are no longer checked, which keeps the bundle small.

    python3 deploy/k8s/schemas/vendor.py kubernetes kubernetes_validate-1.37.0-py3-none-any.whl 1.32.0 OUT
    python3 deploy/k8s/schemas/vendor.py crd serving.kserve.io_inferenceservices.yaml v1beta1 OUT \
        --unchecked spec.canary spec.explainer ...
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# group/version/kind of every built-in object the overlays render (tests/deploy/test_k8s_manifests.py
# fails on a kind missing here).
KUBERNETES_KINDS = [
    ("apps", "v1", "Deployment"),
    ("", "v1", "Service"),
    ("", "v1", "Secret"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
    ("policy", "v1", "PodDisruptionBudget"),
]
DEFINITIONS_REFS = ("/api/_definitions.json#/$defs/", "#/$defs/")  # from a kind's file, within _definitions


def strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node)) if node else set()
    return set()


def definition_name(ref: str) -> str:
    for prefix in DEFINITIONS_REFS:
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    raise ValueError(f"unexpected $ref {ref!r}")


def rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("#/$defs/" + definition_name(v) if k == "$ref" else rewrite_refs(v)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [rewrite_refs(v) for v in node]
    return node


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def kubernetes_bundle(wheel: Path, version: str) -> dict[str, Any]:
    member = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/_definitions.json"
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(member))["$defs"]
    by_gvk = {
        (gvk["group"], gvk["version"], gvk["kind"]): name
        for name, schema in definitions.items()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }
    kinds = {f"{api_version(g, v)}/{k}": by_gvk[(g, v, k)] for g, v, k in KUBERNETES_KINDS}
    keep: set[str] = set()
    pending = list(kinds.values())
    while pending:
        name = pending.pop()
        if name in keep:
            continue
        keep.add(name)
        pending.extend(definition_name(ref) for ref in refs(definitions[name]))
    return {
        "$schema": SCHEMA_DIALECT,
        "kinds": {key: f"#/$defs/{name}" for key, name in sorted(kinds.items())},
        "$defs": {name: rewrite_refs(strip_descriptions(definitions[name])) for name in sorted(keep)},
    }


def openapi_to_strict_json_schema(node: Any) -> Any:
    """A CRD's structural OpenAPI v3 schema as a strict JSON Schema: ``nullable`` becomes a null type,
    objects with listed properties reject unknown ones unless they preserve unknown fields."""
    if isinstance(node, list):
        return [openapi_to_strict_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: openapi_to_strict_json_schema(v) for k, v in node.items() if k not in {"description", "nullable"}
    }
    if node.get("nullable") and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def leave_unchecked(schema: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node = schema
    for name in parents:
        node = node["properties"][name]
    if leaf not in node["properties"]:
        raise KeyError(f"{dotted}: no such field in the schema")
    node["properties"][leaf] = {"type": "object"}


def crd_bundle(crd_file: Path, served_version: str, unchecked: list[str]) -> dict[str, Any]:
    crd = yaml.safe_load(crd_file.read_text())
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == served_version]
    schema = openapi_to_strict_json_schema(version["schema"]["openAPIV3Schema"])
    for dotted in unchecked:
        leave_unchecked(schema, dotted)
    key = f"{group}/{served_version}/{kind}"
    return {"$schema": SCHEMA_DIALECT, "kinds": {key: f"#/$defs/{kind}"}, "$defs": {kind: schema}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="source", required=True)
    k8s = sub.add_parser("kubernetes", help="built-in kinds from the kubernetes-validate wheel")
    k8s.add_argument("wheel", type=Path)
    k8s.add_argument("version", help="e.g. 1.32.0")
    k8s.add_argument("output", type=Path)
    crd = sub.add_parser("crd", help="one served version of a CustomResourceDefinition")
    crd.add_argument("crd", type=Path)
    crd.add_argument("version", help="e.g. v1beta1")
    crd.add_argument("output", type=Path)
    crd.add_argument("--unchecked", nargs="*", default=[], metavar="FIELD", help="e.g. spec.explainer")
    args = parser.parse_args()
    if args.source == "kubernetes":
        bundle = kubernetes_bundle(args.wheel, args.version)
    else:
        bundle = crd_bundle(args.crd, args.version, args.unchecked)
    args.output.write_text(json.dumps(bundle, separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
