"""poolserve with one hot-path change, for attributing its per-request cost (``bench/attribution.py``).

Not a proposal for the service's code: a measurement probe. ``inline_decode`` decodes and preprocesses
on the event loop instead of in the AnyIO thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from service.app import create_app


def stock() -> FastAPI:
    return create_app()


def inline_decode() -> FastAPI:
    import service.api.routes.classify as classify_route

    async def inline(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    classify_route.run_in_threadpool = inline  # type: ignore[assignment]
    return create_app()
