"""The inference routes (``/v1`` classify and features, ``/v2`` infer): how a request reaches its handler.

An inference handler needs, before it reads the body: the API key checked (``deps.authorize``, the check
every route makes), the model named in the path (404 if unknown) and the query validated by its pydantic
model (the same 422 as FastAPI's). It reads the body itself, because it takes several media types.
FastAPI's way in does that and more on every request: a ``Request``, two exit stacks, dependency
solving, parameter validation from the signature, the route's exception wrapper. On a small image that
machinery is a large share of the request's cost (measured by ``python -m bench.endpoints``; figures in
docs/benchmarks.md), so each inference route has two ways in:

- ``InferenceRoute``: a Starlette route to an ``InferenceEndpoint``, the ASGI app below, which does what
  the first sentence says and calls the handler. ``InferenceDispatch`` sends every POST to these paths
  straight to its route, past the framework's per-request layers (exception middleware, exit stacks,
  the router's scan of every route): errors still reach the client through the one error table, from
  ``RequestGuard``'s boundary, exactly as the app's exception handlers would write them.
- its declaration on its router (``routes/<family>.py``), the ordinary FastAPI way: ``require_api_key``
  on the router, the path and ``Query`` parameters typed by the handler's pydantic models, the body's
  schemas from ``openapi_body``. FastAPI generates the route's OpenAPI operation from it. Its endpoint
  calls the same handler, so it is the route as FastAPI would serve it (the benchmark's comparison);
  it is never routed to while ``InferenceDispatch`` takes its requests first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from poolserve.service.api.deps import authorize, runtime_of, tagged_model
from poolserve.service.api.limits import RequestLimits
from poolserve.service.runtime.registry import ModelEntry
from poolserve.service.runtime.runtime import Runtime
from poolserve.service.settings import Settings

QueryT = TypeVar("QueryT", bound=BaseModel)


class NoQuery(BaseModel):
    """The query of a route that takes no query parameters (unknown ones are ignored, as FastAPI does)."""


@dataclass(frozen=True)
class InferenceCall(Generic[QueryT]):
    """What an inference handler gets: the request (for its headers and body), the app's services, the
    model named in the path, and the validated query."""

    request: Request
    settings: Settings
    limits: RequestLimits
    runtime: Runtime
    entry: ModelEntry
    query: QueryT


Handler = Callable[[InferenceCall[QueryT]], Awaitable[Response]]


def parse_query(request: Request, query: type[QueryT]) -> QueryT:
    """The query string as ``query``; a bad value is the same 422 problem as a FastAPI ``Query``'s."""
    try:
        return query.model_validate(dict(request.query_params))
    except ValidationError as exc:
        unknown = f"unknown; this route takes {', '.join(query.model_fields)}"
        raise RequestValidationError(
            [
                {**e, "loc": ("query", *e["loc"]), "msg": _message(e, unknown)}
                for e in exc.errors(include_url=False)
            ]
        ) from None


def _message(error: Any, unknown: str) -> str:
    message: str = unknown if error["type"] == "extra_forbidden" else error["msg"]
    return message


class InferenceEndpoint(Generic[QueryT]):
    """The ASGI app of one inference route: checks, in FastAPI's order, the API key (401), the model
    (404) and the query (422), then awaits the handler and sends its response. Errors propagate to the
    app's exception handlers like any route's."""

    def __init__(self, handler: Handler[QueryT], query: type[QueryT]) -> None:
        self.handler, self.query = handler, query
        self.no_query = query()  # what an empty query string validates to, validated once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        state = scope["app"].state
        settings: Settings = state.settings
        runtime = runtime_of(state)
        await authorize(settings, request)
        entry = tagged_model(runtime.registry, scope["path_params"]["name"], request)
        query = parse_query(request, self.query) if scope["query_string"] else self.no_query
        call = InferenceCall(request, settings, state.limits, runtime, entry, query)
        response = await self.handler(call)
        await response(scope, receive, send)


def openapi_body(media_types: dict[str, Any]) -> dict[str, Any]:
    """A route's ``openapi_extra``: a request body in several media types, each schema generated from its
    type (a pydantic model, or ``bytes`` for a raw upload) with nested models inlined, because a body
    parsed by the handler itself is not a parameter FastAPI could derive it from."""
    content = {m: {"schema": _inlined(TypeAdapter(t).json_schema())} for m, t in media_types.items()}
    return {"requestBody": {"required": True, "content": content}}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


class InferenceRoute(Route):
    """A POST route to an ``InferenceEndpoint``, tagged in the scope as FastAPI's routes are (the
    metrics label requests by ``scope["route"].path``). Not in the OpenAPI schema: ``declare`` is."""

    def __init__(self, path: str, endpoint: InferenceEndpoint[Any]) -> None:
        super().__init__(path, endpoint, methods=["POST"], include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


class InferenceDispatch:
    """ASGI middleware: a POST to an inference route goes straight to that route; anything else (another
    method, another path) to ``app``, the framework's stack, which answers it as it would without this
    layer (405, 404, the other routes). ``routes`` is read on every request: emptying it hands the
    inference paths back to their FastAPI declarations (``bench.endpoints`` compares the two)."""

    def __init__(self, app: ASGIApp, routes: list[InferenceRoute]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    await route.app(scope, receive, send)
                    return
        await self.app(scope, receive, send)
