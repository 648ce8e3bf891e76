"""Running the command in-process and reading what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner, Result

from poolserve.cli import app
from tests.service.conftest import REPOSITORY


def extract(*args: str | Path, expect_exit: int = 1) -> Result:
    """``poolserve extract ...`` against the shipped repository; the datasets here all hold bad inputs,
    so success is exit status 1 (finished, errors listed). The result holds what it printed."""
    argv = ["extract", *map(str, args), "--repository", str(REPOSITORY)]
    result = CliRunner().invoke(app, argv)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == expect_exit, (result.exit_code, result.output)
    return result


def shards(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


def rows(out: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in shards(out)])


def errors(out: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def assert_same_rows(a: pa.Table, b: pa.Table, atol: float = 1e-6) -> None:
    """Equal schemas (and file metadata), equal columns; features and scores within ``atol``."""
    assert a.schema.equals(b.schema, check_metadata=True), (a.schema, b.schema)
    for name in a.column_names:
        left, right = a.column(name).to_pylist(), b.column(name).to_pylist()
        if name in ("features", "scores"):
            assert len(left) == len(right)
            for x, y in zip(left, right, strict=True):
                np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), atol=atol)
        else:
            assert left == right, name
