"""Domain exceptions. Raised anywhere inside the service; ``poolserve.service.api.error_table`` alone maps
them to HTTP.

Messages are written for the client: they name what was wrong with the request, never internals.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class; ``detail`` is safe to show a client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ModelNotFound(ServiceError):
    pass


class ModelNotReady(ServiceError):
    """The model exists but is still loading (``retry_after_s`` set) or failed to load (``None``)."""

    def __init__(self, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class WrongTask(ServiceError):
    """E.g. asking a classification model for region features."""


class InvalidRequest(ServiceError):
    """Malformed payload: bad JSON, bad base64, missing field, bad boxes."""


class InvalidField(InvalidRequest):
    """The body parsed, but a field is missing, unknown, of the wrong type or out of range (422, not 400)."""


class UnsupportedMediaType(ServiceError):
    pass


class InvalidImage(ServiceError):
    """Bytes that do not decode to a supported image."""


class ImageTooLarge(ServiceError):
    """More pixels than allowed; refused from the header, before decoding."""


class LimitExceeded(ServiceError):
    """Too many images, boxes, or a top_k out of bounds."""


class PayloadTooLarge(ServiceError):
    pass


class QueueFull(ServiceError):
    """The model's batching queue is at capacity; the client should retry later."""

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class RequestTimeout(ServiceError):
    pass


class Unauthorized(ServiceError):
    pass


class ProviderUnavailable(ServiceError):
    """Strict provider mode and the requested execution provider is missing; raised at startup."""
