"""What one request may ask of the server: read once from ``Settings`` when the app is built, then handed
to every route family (``/v1`` parsing and decoding, ``/v2`` tensors) as ``app.state.limits``."""

from __future__ import annotations

from dataclasses import dataclass

from poolserve.service.settings import Settings


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int
    max_images: int
    max_boxes: int
    max_top_k: int
    max_image_pixels: int  # one image, from its header
    max_request_pixels: int  # all of a request's images, from their headers
    max_request_input_pixels: int  # images x the model's input height x width
    max_request_roi_cost: int  # region models: cells the RoI op reads for all the boxes, per channel

    @classmethod
    def of(cls, settings: Settings) -> RequestLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_images=settings.max_images_per_request,
            max_boxes=settings.max_boxes_per_request,
            max_top_k=settings.max_top_k,
            max_image_pixels=settings.max_image_pixels,
            max_request_pixels=settings.max_request_pixels,
            max_request_input_pixels=settings.max_request_input_pixels,
            max_request_roi_cost=settings.max_request_roi_cost,
        )
