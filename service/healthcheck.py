"""Container health probe: exit 0 when this host's poolserve answers ``GET /health/ready`` with 200.

Run as ``python3 -m poolserve.service.healthcheck`` by the image's ``HEALTHCHECK`` and compose's
``healthcheck``. Standard library only, on purpose: it starts every few seconds in every container, so it
must not pay for importing pydantic or the app. For the same reason it reads the variables it needs
straight from the environment instead of building ``poolserve.service.settings.Settings``; the names and
defaults match. With ``POOLSERVE_AUTH_EXEMPT_HEALTH=false`` the probe sends ``POOLSERVE_API_KEY``, as a
client would, since the health routes then require it.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

READY_PATH = "/health/ready"
# A server bound to every interface is probed on loopback; one bound to an address is probed there.
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - names of wildcard binds, nothing is bound here


def ready_url(env: Mapping[str, str]) -> str:
    host = env.get("POOLSERVE_HOST", "127.0.0.1")
    if host in _WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = int(env.get("POOLSERVE_PORT", "8000"))
    return f"http://{host}:{port}{READY_PATH}"


def probe_headers(env: Mapping[str, str]) -> dict[str, str]:
    key = env.get("POOLSERVE_API_KEY")
    exempt = env.get("POOLSERVE_AUTH_EXEMPT_HEALTH", "true").strip().lower() not in {
        "false",
        "0",
        "no",
        "off",
    }
    return {"X-API-Key": key} if key and not exempt else {}


def probe(url: str, timeout_s: float, headers: Mapping[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - http URL built above
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http URL built above
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        # HTTPError (a 503 while models load) is a URLError: not ready, not a crash.
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    timeout_s = float(args[0]) if args else 2.0
    return 0 if probe(ready_url(os.environ), timeout_s, probe_headers(os.environ)) else 1


if __name__ == "__main__":
    sys.exit(main())
