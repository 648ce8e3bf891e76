"""Starlette's CORS middleware, with its refused preflight written as every other error is."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from poolserve.service.api.error_responses import PROBLEM_MEDIA_TYPE, problem_body
from poolserve.service.api.error_table import ErrorInfo

_REFUSED_PREFIX = "Disallowed CORS "  # Starlette's text for a refused preflight, then what was refused


class CORS(CORSMiddleware):
    """A refused preflight is problem+json naming what the configuration does not allow (the origin, the
    method, a header), instead of Starlette's ``text/plain``; allowed ones are unchanged."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        text = bytes(response.body).decode()
        if response.status_code != 400 or not text.startswith(_REFUSED_PREFIX):
            return response
        refused = text.removeprefix(_REFUSED_PREFIX)
        info = ErrorInfo(
            400,
            "/problems/cors-refused",
            f"CORS preflight refused: not allowed here: {refused} (the server's cors_origins, and "
            "GET or POST with Authorization, X-API-Key, Content-Type and Accept headers)",
        )
        headers = {k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")}
        return Response(problem_body(info, ""), 400, headers, media_type=PROBLEM_MEDIA_TYPE)
