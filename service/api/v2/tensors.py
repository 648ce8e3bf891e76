"""Open Inference Protocol tensors: datatypes, and decoding/encoding one tensor to/from the wire."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from poolserve.service.errors import InvalidRequest

# BYTES is absent on purpose: no poolserve model takes or gives strings.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_BY_MANIFEST = {"float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32", "uint8": "UINT8"}


def datatype_of(manifest_dtype: str) -> str:
    return _BY_MANIFEST[manifest_dtype]


@dataclass(frozen=True)
class WireTensor:
    """One input as the request declared it, before any model check."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


def checked_shape(name: str, shape: object) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidRequest(f"input {name!r}: 'shape' must be a list of non-negative integers")
    return tuple(shape)


def dtype_for(name: str, datatype: object) -> np.dtype[Any]:
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidRequest(f"input {name!r}: unsupported datatype {datatype!r}")
    return DATATYPES[datatype]


def from_json_data(name: str, datatype: str, shape: tuple[int, ...], data: object) -> np.ndarray:
    dtype = DATATYPES[datatype]
    if not isinstance(data, list):
        raise InvalidRequest(f"input {name!r}: 'data' must be a list")
    try:
        array = np.asarray(data, dtype=dtype).reshape(-1)
    except (ValueError, TypeError, OverflowError):
        raise InvalidRequest(f"input {name!r}: 'data' holds values that are not {datatype}") from None
    if array.size != math.prod(shape):
        raise InvalidRequest(
            f"input {name!r}: 'data' has {array.size} elements; shape {list(shape)} needs {math.prod(shape)}"
        )
    return array.reshape(shape)


def from_bytes(name: str, datatype: str, shape: tuple[int, ...], raw: bytes) -> np.ndarray:
    dtype = DATATYPES[datatype]
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise InvalidRequest(
            f"input {name!r}: {len(raw)} bytes of binary data; {list(shape)} {datatype} needs {expected}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def to_json_data(array: np.ndarray) -> list[Any]:
    flat: list[Any] = array.reshape(-1).tolist()
    return flat
