"""The request bodies: real MNIST digits (held-out split) for the digit models, a deterministic
photo-like 224x224 JPEG for the ResNet-size model, and a digit canvas with its boxes for the region
models. Every target gets byte-identical uploads."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bench.loadgen import Payload, multipart


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def digit_png() -> bytes:
    """One held-out MNIST test digit, 28x28 grayscale PNG."""
    from poolserve.models.mnist import held_out_split

    test = held_out_split().test
    return _png(Image.fromarray(test.images[0]))


def photo_jpeg(size: int = 224, seed: int = 0) -> bytes:
    """Smooth gradients, shapes and mild noise: decodes like a photo, not like incompressible noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([x, y, 1 - (x + y) / 2], axis=-1) * 200 + 20
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        w, h = (int(v) for v in rng.integers(10, size // 2, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (size, size, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def classify_payload(image: bytes, content_type: str) -> Payload:
    suffix = "png" if content_type == "image/png" else "jpg"
    return multipart([("images", f"upload.{suffix}", image, content_type)])


def canvas_payload() -> tuple[Payload, int]:
    """A 112x112 canvas of held-out digits and its ground-truth boxes, as poolserve's features form."""
    from poolserve.models.canvas import compose_canvases
    from poolserve.models.mnist import held_out_split

    canvases = compose_canvases(held_out_split().test, count=8, seed=5)
    canvas = max(canvases, key=lambda c: len(c.boxes))
    boxes = json.dumps([canvas.boxes.tolist()])
    payload = multipart(
        [("images", "canvas.png", _png(Image.fromarray(canvas.image)), "image/png")], {"boxes": boxes}
    )
    return payload, len(canvas.boxes)
