"""``multipart/form-data`` (RFC 7578) parsed from a body already in memory.

poolserve reads every request body whole (the middleware caps it at ``max_body_bytes``), so a form is a
handful of ``bytes.find`` calls over one buffer instead of python-multipart's per-chunk callback machine
(its cost per request: ``python -m bench.hotpath``), and no upload can spool to a temporary file. It
reads what form clients send: parts with ``Content-Disposition: form-data``, a ``name`` and, for files,
a ``filename`` (or ``filename*``); other part headers are ignored except a ``Content-Transfer-Encoding``
other than binary, which RFC 7578 deprecates and this parser refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEADER_BYTES = 8192  # per part; a form part's headers are a few hundred bytes

_HEADER_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_HEADER_NAME})\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*(?:;|$)')
_QUOTED_PAIR = re.compile(r"\\(.)")
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")  # RFC 2046 bchars


class MultipartError(ValueError):
    """The body is not the multipart form its ``Content-Type`` announces; the message says where."""


class TooManyPartsError(MultipartError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} parts")
        self.limit = limit


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None  # None: a plain field, not a file
    content_type: str | None
    data: bytes


def header_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="a"; filename="b.png"`` -> ("form-data", {"name": "a", "filename": "b.png"})."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            raise MultipartError(f"unreadable header parameters {rest[position:]!r}")
        raw = match.group(2)
        if raw.startswith('"'):
            raw = raw[1:-1]
            if "\\" in raw:  # quoted pairs are rare; the substitution costs more than the search
                raw = _QUOTED_PAIR.sub(r"\1", raw)
        params[match.group(1).lower()] = raw
        position = match.end()
    return kind.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    _, params = header_parameters(content_type)
    boundary = params.get("boundary")
    if boundary is None:
        raise MultipartError("the Content-Type has no boundary parameter")
    if not _BOUNDARY.match(boundary):
        raise MultipartError("the boundary must be 1 to 70 characters of RFC 2046's set")
    return boundary.encode("ascii")


def _part(headers: bytes, data: bytes, index: int) -> Part:
    fields: dict[str, str] = {}
    for line in headers.split(b"\r\n") if headers else ():
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MultipartError(f"part {index} has a header line without a name: {line[:40]!r}")
        fields[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
    encoding = fields.get("content-transfer-encoding", "binary").lower()
    if encoding not in ("binary", "8bit", "7bit"):
        raise MultipartError(f"part {index} has Content-Transfer-Encoding {encoding}; send the raw bytes")
    disposition = fields.get("content-disposition")
    if disposition is None:
        raise MultipartError(f"part {index} has no Content-Disposition header")
    kind, params = header_parameters(disposition)
    if kind != "form-data" or "name" not in params:
        raise MultipartError(f"part {index} is not 'form-data' with a name")
    filename = params.get("filename", params.get("filename*"))
    return Part(params["name"], filename, fields.get("content-type"), data)


def parse_form(body: bytes, boundary: bytes, max_parts: int) -> list[Part]:
    """Every part of the form, in order; more than ``max_parts`` parts is refused before reading on."""
    delimiter = b"--" + boundary
    # The first delimiter opens the body or a line after a preamble: one search for each, in C, where a
    # loop over every look-alike not at a line start took seconds on a body made of them.
    if body.startswith(delimiter):
        start = 0
    else:
        after_line = body.find(b"\r\n" + delimiter)
        start = after_line + 2 if after_line >= 0 else -1
    if start < 0:
        raise MultipartError("the body holds no boundary delimiter")
    parts: list[Part] = []
    position = start + len(delimiter)
    while not body.startswith(b"--", position):  # "--boundary--" closes the form; the epilogue is ignored
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise MultipartError("a boundary delimiter is not followed by a line break")
        if len(parts) == max_parts:
            raise TooManyPartsError(max_parts)
        headers_start = line_end + 2
        if body.startswith(b"\r\n", headers_start):  # a part without headers
            headers_end = headers_start
        else:
            headers_end = body.find(b"\r\n\r\n", headers_start, headers_start + MAX_HEADER_BYTES)
            if headers_end < 0:
                raise MultipartError(f"part {len(parts)}'s headers are unterminated or too long")
        data_start = headers_end + 4 if headers_end > headers_start else headers_start + 2
        data_end = body.find(b"\r\n" + delimiter, data_start)
        if data_end < 0:
            raise MultipartError(f"part {len(parts)} is not closed by the boundary")
        parts.append(_part(body[headers_start:headers_end], body[data_start:data_end], len(parts)))
        position = data_end + 2 + len(delimiter)
    return parts
