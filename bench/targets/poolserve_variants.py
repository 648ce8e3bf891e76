"""poolserve with one hot-path change, for attributing its per-request cost (``bench/attribution.py``).

Not a proposal for the service's code: a measurement probe. ``stock`` is the service as it is; settings
variants need no probe (``stock+POOLSERVE_INLINE_DECODE_MAX_BYTES=0`` in attribution's variant syntax).
The earlier ``inline_decode`` probe became the service's default (``service/api/offload.py``).
"""

from __future__ import annotations

from fastapi import FastAPI

from poolserve.service.api.inference_endpoint import InferenceRoute
from poolserve.service.app import create_app


def stock() -> FastAPI:
    return create_app()


def served_by_fastapi(app: FastAPI) -> FastAPI:
    """``app`` with its inference paths served by their FastAPI declarations (dependencies, ``Query``,
    FastAPI's request handling) instead of their ``InferenceRoute``s: the same handlers, FastAPI's way in."""
    routes: list[InferenceRoute] = app.state.inference_routes
    routes.clear()  # InferenceDispatch reads this list on every request
    return app


def fastapi_as_designed() -> FastAPI:
    return served_by_fastapi(create_app())
