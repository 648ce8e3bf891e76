"""No unpickling anywhere in the source tree: a pickle is code, and models and uploads come from outside.

``torch.load`` must say ``weights_only=True``; numpy must never be told ``allow_pickle=True``; nothing
imports pickle, dill, cloudpickle or joblib.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = [
    "repository",
    "service",
    "models",
    "export",
    "poolserve",
    "bench",
    "loadtests",
    "deploy",
    "tests",
]
PICKLERS = "pickle|cPickle|_pickle|dill|cloudpickle|joblib"
FORBIDDEN = {
    "imports a pickler": re.compile(rf"^\s*(import|from)\s+({PICKLERS})\b", re.MULTILINE),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "pickle.load": re.compile(r"\b(pickle|dill|joblib)\.loads?\("),
    "read_pickle": re.compile(r"\.read_pickle\("),
}
TORCH_LOAD = re.compile(r"\btorch\.load\(")


def python_files() -> list[Path]:
    files = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")]
    return [p for p in files if p.resolve() != Path(__file__).resolve()]


def call_text(source: str, start: int) -> str:
    """The text of a call from its opening parenthesis to the matching closing one."""
    depth = 0
    for end in range(start, len(source)):
        depth += {"(": 1, ")": -1}.get(source[end], 0)
        if depth == 0 and source[end] == ")":
            return source[start : end + 1]
    return source[start:]


def test_the_scan_sees_the_source_tree() -> None:
    names = {p.name for p in python_files()}
    assert {"app.py", "batcher.py", "payloads.py"} <= names


def test_nothing_unpickles() -> None:
    found = []
    for path in python_files():
        source = path.read_text(encoding="utf-8")
        found += [f"{path.relative_to(ROOT)}: {what}" for what, rx in FORBIDDEN.items() if rx.search(source)]
        for match in TORCH_LOAD.finditer(source):
            if not re.search(r"weights_only\s*=\s*True", call_text(source, match.end() - 1)):
                found.append(f"{path.relative_to(ROOT)}: torch.load without weights_only=True")
    assert not found, "\n".join(found)


def test_the_scan_catches_what_it_forbids() -> None:
    bad = (
        "import pickle\n"
        "x = np.load(f, allow_pickle=True)\n"
        "obj = pickle.loads(blob)\n"
        "frame = pd.read_pickle(path)\n"
        "state = torch.load(io.BytesIO(b), map_location='cpu')\n"
    )
    assert all(rx.search(bad) for rx in FORBIDDEN.values())
    (call,) = TORCH_LOAD.finditer(bad)
    assert "weights_only" not in call_text(bad, call.end() - 1)
