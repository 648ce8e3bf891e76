"""What one load-test run is asked to do: the scenario, the load shape and the objectives.

``RunConfig`` is the file edge between the command and the engine process (written as JSON beside the
results), so both read the same validated object.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Runs are bounded: a forgotten flag must not leave a generator hammering a deployment for hours.
MAX_DURATION_S = 3600.0
API_KEY_ENV = "POOLSERVE_LOADTEST_API_KEY"  # how the command hands the key to the engine: never on disk
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?$")


class Scenario(StrEnum):
    CLASSIFY_MULTIPART = "classify-multipart"
    CLASSIFY_JSON = "classify-json"
    CLASSIFY_BATCH = "classify-batch"
    FEATURES = "features"
    MIXED = "mixed"


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"2m"``, ``"1m30s"``, ``"1h"`` -> seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groupdict().values()):
        raise ValueError(f"not a duration: {text!r} (try 30s, 2m, 1m30s)")
    hours, minutes, seconds = (float(match.group(g) or 0) for g in ("h", "m", "s"))
    total = hours * 3600 + minutes * 60 + seconds
    if not 0 < total <= MAX_DURATION_S:
        raise ValueError(f"duration {text!r} must be above 0 and at most {MAX_DURATION_S:.0f}s")
    return total


class Slo(BaseModel):
    """Service-level objectives; ``None`` means not checked."""

    model_config = ConfigDict(frozen=True)

    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    min_rps: float | None = Field(default=None, ge=0)


class StepLoad(BaseModel):
    """Add ``users`` every ``seconds`` until an SLO breaks or ``RunConfig.users`` is reached."""

    model_config = ConfigDict(frozen=True)

    users: int = Field(ge=1)
    seconds: float = Field(gt=0, le=MAX_DURATION_S)


class TargetModels(BaseModel):
    """Ready models on the target, by task, as ``GET /v1/models`` listed them."""

    model_config = ConfigDict(frozen=True)

    classification: list[str]
    region_features: list[str]


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: Scenario
    host: str
    users: int = Field(ge=1, le=1000)
    spawn_rate: float = Field(gt=0)
    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    step: StepLoad | None = None
    slo: Slo = Slo()
    seed: int = 0
    think_ms: float = Field(default=0.0, ge=0)  # mean pause between a user's requests; uniform 0..2x
    api_key: str | None = None
    models: TargetModels
    digits_dir: Path | None = None  # held-out digit PNGs; scikit-learn's digits when absent
    canvases_dir: Path | None = None  # canvases with boxes; composed from the digits when absent
    out_dir: Path

    @field_validator("host")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"host must be an http(s) URL, got {value!r}")
        return value.rstrip("/")
