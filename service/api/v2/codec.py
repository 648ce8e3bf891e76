"""The infer request and response bodies: JSON header, optional binary tensor data, optional compression;
and the tensors in them: datatypes, and decoding/encoding one tensor to/from the wire.

Request: ``Inference-Header-Content-Length`` splits the body into the JSON header and the raw bytes of
the binary inputs (in input order); ``0`` means the whole body is the single input's bytes (raw mode).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from poolserve.service.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

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


MAX_DIMS = 32  # numpy's limit on the nesting it walks; no poolserve model's tensors come near it


def checked_shape(name: str, shape: object) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidRequest(f"input {name!r}: 'shape' must be a list of non-negative integers")
    if len(shape) > MAX_DIMS:
        raise InvalidRequest(f"input {name!r}: 'shape' has {len(shape)} dimensions; at most {MAX_DIMS}")
    return tuple(shape)


def dtype_for(name: str, datatype: object) -> np.dtype[Any]:
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise InvalidRequest(f"input {name!r}: unsupported datatype {datatype!r}")
    return DATATYPES[datatype]


# The JSON values each kind of datatype takes. numpy would also turn strings, booleans and nulls into
# numbers, and truncate fractions into integers: a client's bug, answered as if it were data.
_JSON_VALUE_TYPES: dict[str, frozenset[type]] = {
    "b": frozenset({bool}),
    "i": frozenset({int}),
    "u": frozenset({int}),
    "f": frozenset({int, float}),
}


def from_json_data(name: str, datatype: str, shape: tuple[int, ...], data: object) -> np.ndarray:
    dtype = DATATYPES[datatype]
    if not isinstance(data, list):
        raise InvalidRequest(f"input {name!r}: 'data' must be a list")
    try:
        values = np.asarray(data, dtype=object)  # the JSON values as they are, walked once
    except ValueError:  # nested lists of unequal lengths
        raise InvalidRequest(f"input {name!r}: 'data' is not a list of equal-length rows") from None
    except RuntimeError:  # numpy's limit on nesting
        values = None
    if values is None or values.ndim > MAX_DIMS:  # numpy iterates at most MAX_DIMS dimensions
        raise InvalidRequest(f"input {name!r}: 'data' nests lists more than {MAX_DIMS} deep")
    wrong = set(map(type, values.flat)) - _JSON_VALUE_TYPES[dtype.kind]
    if wrong:
        kinds = ", ".join(sorted(_wrong_kind(t, values, dtype, datatype) for t in wrong))
        expected = _EXPECTED[dtype.kind]
        raise InvalidRequest(f"input {name!r}: 'data' holds {kinds}; {datatype} takes {expected}")
    try:
        with np.errstate(over="ignore"):  # a number past a float type's range: refused just below
            array = values.astype(dtype).reshape(-1)
    except OverflowError:  # only integers reach here for an integer type
        limits = np.iinfo(dtype)
        raise InvalidRequest(
            f"input {name!r}: 'data' holds integers outside {datatype}'s range [{limits.min}, {limits.max}]"
        ) from None
    except (ValueError, TypeError):
        raise InvalidRequest(f"input {name!r}: 'data' holds values that are not {datatype}") from None
    if dtype.kind == "f" and not np.isfinite(array).all():  # JSON has no NaN or infinity: an overflow
        raise InvalidRequest(f"input {name!r}: 'data' holds numbers beyond {datatype}'s range")
    if array.size != math.prod(shape):
        raise InvalidRequest(
            f"input {name!r}: 'data' has {array.size} elements; shape {list(shape)} needs {math.prod(shape)}"
        )
    return array.reshape(shape)


_JSON_NAMES = {
    bool: "booleans",
    int: "integers",
    float: "fractional numbers",
    str: "strings",
    type(None): "nulls",
    list: "nested lists of unequal lengths",
    dict: "objects",
}
_EXPECTED = {"b": "true or false", "i": "integers", "u": "integers", "f": "numbers"}


def _wrong_kind(value_type: type, values: np.ndarray, dtype: np.dtype[Any], datatype: str) -> str:
    """What the JSON values of ``value_type`` in ``values`` are, for a datatype that does not take them.

    JSON parsing gives a float for ``2.0`` and ``1e3``, and for an integer past 64 bits: none of them
    is a fraction, and calling them one would send the client looking for a decimal point it never wrote.
    """
    if value_type is not float or dtype.kind not in "iu":
        return _JSON_NAMES.get(value_type, value_type.__name__)
    floats = [v for v in values.flat if type(v) is float]
    if not all(v.is_integer() for v in floats):
        return "fractional numbers"
    if any(abs(v) >= 2.0**63 for v in floats):
        return f"integers outside {datatype}'s range"
    return "numbers written with a decimal point or an exponent (2.0, 1e3)"


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


HEADER_LENGTH = "Inference-Header-Content-Length"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: list[WireTensor] | None  # None: raw mode, the single input's bytes are in ``raw``
    raw: bytes = b""
    outputs: list[RequestedOutput] | None = None  # None: every output
    binary_output: bool = False


def decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return body
    wbits = _WBITS.get(encoding.strip().lower())
    if wbits is None:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r}: only gzip and deflate")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise InvalidRequest(f"body is not valid {encoding} data") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds {max_bytes} bytes")
    if not inflater.eof:
        raise InvalidRequest(f"body is not valid {encoding} data: the compressed stream is cut short")
    if inflater.unused_data:
        raise InvalidRequest(
            f"body is not valid {encoding} data: bytes follow the compressed stream (send one stream)"
        )
    return out


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes] | None:
    """(JSON header, binary part); ``None`` for raw mode."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidRequest(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
    if length < 0 or length > len(body):
        raise InvalidRequest(f"{HEADER_LENGTH} is {length}, outside the {len(body)}-byte body")
    if length == 0:
        return None
    return body[:length], body[length:]


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    return value


def _flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"parameter {key!r} must be a boolean")
    return value


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    parts = split_body(body, header_length)
    if parts is None:
        return InferRequest(id=None, inputs=None, raw=body)
    header, binary = parts
    try:
        doc = _object(orjson.loads(header), "the request")
    except orjson.JSONDecodeError as exc:
        if header_length is None:
            raise InvalidRequest(
                f"the body is not valid JSON ({exc}); a body that carries binary tensor data after its "
                f"JSON needs the {HEADER_LENGTH} header"
            ) from None
        raise InvalidRequest(
            f"the JSON header (the body's first {len(header)} bytes, per {HEADER_LENGTH}) is not valid JSON "
            f"({exc})"
        ) from None
    parameters = _object(doc.get("parameters", {}), "'parameters'")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidRequest("'inputs' must be a non-empty list")
    inputs, offset = [], 0
    for item in raw_inputs:
        spec = _object(item, "each input")
        name = spec.get("name")
        if not isinstance(name, str):
            raise InvalidRequest("each input needs a string 'name'")
        shape = checked_shape(name, spec.get("shape"))
        dtype_for(name, spec.get("datatype"))
        datatype: str = spec["datatype"]
        size = _object(spec.get("parameters", {}), f"input {name!r} 'parameters'").get("binary_data_size")
        if size is not None and "data" in spec:
            raise InvalidRequest(f"input {name!r} gives both 'data' and parameters.binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0:
                raise InvalidRequest(f"input {name!r}: binary_data_size {size!r} is not a byte count")
            if offset + size > len(binary):
                raise InvalidRequest(f"input {name!r}: binary_data_size {size!r} runs past the body")
            array = from_bytes(name, datatype, shape, binary[offset : offset + size])
            offset += size
        elif "data" in spec:
            array = from_json_data(name, datatype, shape, spec["data"])
        else:
            raise InvalidRequest(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
        inputs.append(WireTensor(name, datatype, shape, array))
    if offset != len(binary):
        raise InvalidRequest(f"{len(binary) - offset} bytes of binary data belong to no input")
    binary_default = _flag(parameters, "binary_data_output", False)
    outputs: list[RequestedOutput] | None = None
    if "outputs" in doc:
        if not isinstance(doc["outputs"], list):
            raise InvalidRequest("'outputs' must be a list")
        outputs = []
        for item in doc["outputs"]:
            spec = _object(item, "each requested output")
            if not isinstance(spec.get("name"), str):
                raise InvalidRequest("each requested output needs a string 'name'")
            out_params = _object(spec.get("parameters", {}), "output 'parameters'")
            if "classification" in out_params:  # answered with raw scores, a client would misread them
                raise InvalidRequest(
                    "the classification extension is not supported: request the scores output and rank "
                    "them, or use /v1/models/{name}/classify"
                )
            if any(o.name == spec["name"] for o in outputs):  # each copy would be encoded in full
                raise InvalidRequest(f"output {spec['name']!r} requested twice")
            outputs.append(RequestedOutput(spec["name"], _flag(out_params, "binary_data", binary_default)))
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("'id' must be a string")
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=outputs,
        binary_output=binary_default,
    )


def encode_response(
    model: str, version: int, request_id: str | None, outputs: list[tuple[str, str, np.ndarray, bool]]
) -> tuple[bytes, int | None]:
    """Body and, when any output is binary, the JSON header's length for ``HEADER_LENGTH``."""
    described, blobs = [], []
    for name, datatype, array, binary in outputs:
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = np.ascontiguousarray(array).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = to_json_data(array)
        described.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": described}
    if request_id is not None:
        doc["id"] = request_id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
