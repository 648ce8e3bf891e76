"""What is checked before any server process starts, for ``poolserve serve`` and the container's entry
point (``python -m poolserve.service.supervisor``) alike.

A server that cannot work should refuse to start, in one line that names what to change, rather than
print a framework's traceback, restart forever, or run without ever becoming ready:

- settings that parse (a bad ``POOLSERVE_*`` value names its variable);
- a repository that is a folder (models are only discovered at start-up);
- the execution provider, when ``strict_provider`` demands it;
- a worker count the cores can carry (each worker loads every model);
- a socket that binds (``poolserve.service.supervisor.listen`` raises the same ``StartupError``).

Variables that look like a misspelt setting (``POOLSERVE_WORKRES``) are warned about: they are
otherwise ignored in silence.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Callable, Collection, Mapping
from typing import NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError

from poolserve.service.cores import available_cores
from poolserve.service.errors import ProviderUnavailable
from poolserve.service.settings import Settings

log = logging.getLogger(__name__)

ENV_PREFIX = "POOLSERVE_"
WORKERS_PER_CORE = 4  # beyond this many workers per core, each mostly waits for the others


class StartupError(Exception):
    """The server cannot start; the message (one line per problem) says what to change."""


def load_settings(overrides: Mapping[str, object] | None = None) -> Settings:
    """``Settings`` from the environment and ``overrides`` (command-line options); a bad value is a
    ``StartupError`` naming it where it was given: ``--port`` or ``POOLSERVE_PORT``."""
    overrides = dict(overrides or {})
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            field = ".".join(str(part) for part in error["loc"])
            value = error.get("input")
            given = f"={value!r}" if isinstance(value, str | int | float) else ""
            lines.append(f"{setting_name(field, overrides)}{given}: {error['msg']}")
        raise StartupError("\n".join(lines)) from None
    except SettingsError as exc:  # a list or dict setting whose value is not JSON
        raise StartupError(f"{exc}; list settings take JSON, e.g. '[\"https://a.example\"]'") from None


def checked_settings(overrides: Mapping[str, object] | None = None) -> Settings:
    """What every way of starting the server does first: ``load_settings``, ``check_settings``, and
    the warning about misspelt variables."""
    settings = load_settings(overrides)
    check_settings(settings, flags=frozenset(overrides or ()))
    warn_misspelt()
    return settings


def setting_name(field: str, flags: Collection[str]) -> str:
    """How the user gave setting ``field``: its command-line option if it is in ``flags``, else its
    environment variable."""
    return f"--{field.replace('_', '-')}" if field in flags else f"{ENV_PREFIX}{field.upper()}"


def check_settings(
    settings: Settings,
    providers: Callable[[], list[str]] | None = None,
    flags: Collection[str] = frozenset(),
) -> None:
    """Refuse what cannot serve: see the module's docstring. ``providers``: onnxruntime's available
    execution providers (default: ask onnxruntime); ``flags``: the settings given as options."""
    if not settings.repository.is_dir():
        name = setting_name("repository", flags)
        raise StartupError(f"{name}={str(settings.repository)!r}: not a folder")
    if settings.strict_provider:
        from poolserve.service.runtime.providers import select_providers

        if providers is None:
            import onnxruntime as ort

            providers = ort.get_available_providers
        try:
            select_providers(settings.execution_provider, providers(), strict=True)
        except ProviderUnavailable as exc:
            raise StartupError(f"{ENV_PREFIX}STRICT_PROVIDER: {exc}") from None
    cores = available_cores()
    if settings.workers > WORKERS_PER_CORE * cores:
        raise StartupError(
            f"{setting_name('workers', flags)}={settings.workers}: more than {WORKERS_PER_CORE} per core on "
            f"{cores} core(s); each worker loads every model (docs/deploy.md)"
        )


def refuse(error: StartupError, program: str) -> NoReturn:
    """Print the error, one line per problem, and exit with status 2 (a usage error: nothing started)."""
    for line in str(error).splitlines():
        print(f"{program}: {line}", file=sys.stderr)
    sys.exit(2)


def warn_misspelt(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Warn about ``POOLSERVE_*`` variables close to a setting's name but not one; returns the warnings."""
    known = [f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields]
    warnings = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
            if close:
                warnings.append(f"{name} is not a setting and is ignored; did you mean {close[0]}?")
    for warning in warnings:
        log.warning(warning)
    return warnings
