"""Routes that FastAPI documents but calls without its per-request parameter and dependency solving.

On the inference routes that solving is the largest cost poolserve adds to a small image: 0.3-0.5 ms per
request (``python -m bench.inprocess``, docs/benchmarks.md), more than decoding and running the digit
model together. So those routes are ``DirectRoute``s: declared on a router, routed, error-handled and in
the OpenAPI schema like any other route, but their endpoint takes the ``Request`` alone and gets what it
needs through ``DirectContext``: the app's runtime and settings, the API-key check, the path's model and
a pydantic model of the query parameters (the same validation, and the same 422 problem, as FastAPI's).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from poolserve.service.api.deps import authorize, tagged_model
from poolserve.service.api.limits import RequestLimits
from poolserve.service.runtime.registry import ModelEntry, ServingModel, TaskIOT
from poolserve.service.runtime.runtime import Runtime
from poolserve.service.settings import Settings

QueryT = TypeVar("QueryT", bound=BaseModel)
Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]

# What a router-level ``Security`` dependency would have put in the schema; the check itself is
# ``DirectContext.authorize``.
SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]


class DirectRoute(APIRoute):
    """An ``APIRoute`` whose endpoint is called with the request and nothing else.

    It refuses dependencies, which it would not run: include its router without ``dependencies=`` and
    call ``DirectContext.authorize`` in the endpoint instead.
    """

    def get_route_handler(self) -> Endpoint:
        if self.dependant.dependencies:
            raise TypeError(f"{self.path}: a DirectRoute runs no dependencies; call them in the endpoint")
        endpoint: Endpoint = self.endpoint
        return endpoint


def openapi_operation(body: dict[str, Any], query: type[BaseModel]) -> dict[str, Any]:
    """A direct route's ``openapi_extra``: its request body, its parameters and its security."""
    return {**body, "parameters": openapi_parameters(query), "security": SECURITY}


def openapi_parameters(query: type[BaseModel], path: tuple[str, ...] = ("name",)) -> list[dict[str, Any]]:
    """The OpenAPI ``parameters`` FastAPI would have derived from the signature: path, then query."""
    schema = query.model_json_schema()
    required = set(schema.get("required", []))
    parameters: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string", "title": p.title()}}
        for p in path
    ]
    for name, field in schema.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return parameters


def parse_query(request: Request, query: type[QueryT]) -> QueryT:
    """The query string as ``query``; a bad value is the same 422 problem as a FastAPI ``Query``'s."""
    try:
        return query.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


@dataclass(frozen=True)
class DirectContext:
    settings: Settings
    limits: RequestLimits
    runtime: Runtime

    @classmethod
    async def of(cls, request: Request) -> DirectContext:
        """The app's services, once the caller is authorized (401 before anything else is looked at)."""
        state = request.app.state
        context = cls(state.settings, state.limits, state.runtime)
        await authorize(context.settings, request)
        return context

    def model(self, request: Request) -> ModelEntry:
        """The model named in the path (404 if unknown), tagged for the metrics middleware."""
        return tagged_model(self.runtime.registry, request.path_params["name"], request)


async def begin_inference(
    request: Request, query: type[QueryT], io_type: type[TaskIOT]
) -> tuple[DirectContext, ServingModel[TaskIOT], QueryT]:
    """What every inference route checks before it reads the body, in FastAPI's order: the API key (401),
    the model (404), the query (422), then whether that model is ready (503) and of the task ``io_type``
    belongs to (400). The model is looked up once here; the route hands it down."""
    context = await DirectContext.of(request)
    entry = context.model(request)
    parsed = parse_query(request, query)
    return context, entry.serving().for_task(io_type), parsed
