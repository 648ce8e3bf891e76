"""The in-memory multipart/form-data parser, against python-multipart (Starlette's parser) as reference."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator

import httpx
import pytest
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartParser

from poolserve.service.api.multipart import MultipartError, Part, TooManyPartsError, boundary_of, parse_form

Form = tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]


def _encode(data: dict[str, str], files: list[tuple[str, tuple[str, bytes, str]]]) -> tuple[str, bytes]:
    request = httpx.Request("POST", "http://x/", data=data, files=files)
    return request.headers["content-type"], request.read()


def _reference(content_type: str, body: bytes) -> list[Part]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    async def parse() -> list[Part]:
        parser = MultiPartParser(Headers({"content-type": content_type}), stream(), max_files=1000)
        form = await parser.parse()
        parts = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                ctype = value.headers.get("content-type")
                parts.append(Part(name, value.filename, ctype, await value.read()))
            else:
                parts.append(Part(name, None, None, value.encode()))
        await form.close()
        return parts

    return asyncio.run(parse())


def _ours(content_type: str, body: bytes) -> list[Part]:
    parts = parse_form(body, boundary_of(content_type), 1000)
    # python-multipart gives text fields no content type; compare what both report
    return [Part(p.name, p.filename, p.content_type if p.filename else None, p.data) for p in parts]


def _random_form(rng: random.Random) -> Form:
    tricky = [b"", b"\r\n", b"--", b"\r\n--", b"\r\n\r\n", b"--boundary", b"\xff\x00", "é✓".encode()]

    def blob() -> bytes:
        pieces = range(rng.randint(0, 6))
        return b"".join(rng.choice(tricky) + rng.randbytes(rng.randint(0, 40)) for _ in pieces)

    files = [
        (rng.choice(["images", "other"]), (f"f{i} é.png", blob(), rng.choice(["image/png", "application/x"])))
        for i in range(rng.randint(1, 5))  # httpx sends a form without files urlencoded
    ]
    data = {f"field{i}": f"value {i} ✓ \r\n --" for i in range(rng.randint(0, 3))}
    return data, files


@pytest.mark.parametrize("seed", range(40))
def test_random_forms_parse_like_python_multipart(seed: int) -> None:
    data, files = _random_form(random.Random(seed))
    content_type, body = _encode(data, files)
    assert sorted(_ours(content_type, body), key=repr) == sorted(_reference(content_type, body), key=repr)


def test_preamble_epilogue_and_quoted_boundary() -> None:
    body = (
        b"preamble, ignored\r\n--b 1\r\n"
        b'Content-Disposition: form-data; name="images"; filename="a\\"b.png"\r\n'
        b"Content-Type: image/png\r\n\r\nPNG--b 1 not a delimiter\r\n"
        b"--b 1\r\nContent-Disposition: form-data; name=boxes\r\n\r\n[[1,2,3,4]]\r\n"
        b"--b 1--\r\nepilogue, ignored"
    )
    parts = parse_form(body, boundary_of('multipart/form-data; boundary="b 1"'), 10)
    assert parts == [
        Part("images", 'a"b.png', "image/png", b"PNG--b 1 not a delimiter"),
        Part("boxes", None, None, b"[[1,2,3,4]]"),
    ]


def test_rfc5987_file_names_mark_a_file() -> None:
    disposition = b"Content-Disposition: form-data; name=images; filename*=UTF-8''%C3%A9.png"
    body = b"--x\r\n" + disposition + b"\r\n\r\nX\r\n--x--"
    (part,) = parse_form(body, b"x", 10)
    assert part.filename is not None and part.data == b"X"


X = "multipart/form-data; boundary=x"
NAMED = b"Content-Disposition: form-data; name=a"


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", b"", "no boundary"),
        ("multipart/form-data; boundary=" + "x" * 71, b"", "1 to 70"),
        (X, b"no delimiter here", "no boundary delimiter"),
        (X, b"--x\r\n" + NAMED + b"\r\n\r\nv", "not closed"),
        (X, b"--x\r\n" + NAMED, "unterminated"),
        (X, b"--x\r\nContent-Type: text/plain\r\n\r\nv\r\n--x--", "no Content-Disposition"),
        (X, b"--x\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--x--", "form-data"),
        (X, b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--", "with a name"),
        (X, b"--x\r\nno colon\r\n\r\nv\r\n--x--", "without a name"),
        (X, b"--xjunk\r\n\r\nv\r\n--x--", "line break"),
        (X, b"--x\n" + NAMED + b"\n\nv\n--x--", "line break"),
        (X, b"--x\r\n" + NAMED + b"\r\nContent-Transfer-Encoding: base64\r\n\r\ndg==\r\n--x--", "Transfer"),
        (X, b"--x\r\n" + b"H: " + b"v" * 9000 + b"\r\n\r\nv\r\n--x--", "too long"),
    ],
)
def test_malformed_forms_are_refused_with_a_reason(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        parse_form(body, boundary_of(content_type), 10)


def test_part_count_is_capped_before_the_rest_is_read() -> None:
    content_type, body = _encode({}, [("images", (f"{i}.png", b"x", "image/png")) for i in range(6)])
    assert len(parse_form(body, boundary_of(content_type), 6)) == 6
    with pytest.raises(TooManyPartsError):
        parse_form(body, boundary_of(content_type), 5)


def test_look_alike_delimiters_in_a_preamble_are_skipped_in_one_search() -> None:
    """A delimiter counts only at the body's start or a line's: a preamble full of look-alikes is passed
    over by one search (a loop over them took seconds on 4 million), and one made only of them is no form."""
    disposition = b'Content-Disposition: form-data; name="images"; filename="a.png"'
    form = b"\r\n--b\r\n" + disposition + b"\r\n\r\nPNG\r\n--b--\r\n"
    (part,) = parse_form(b"x--b" * 1000 + form, b"b", 8)
    assert (part.name, part.filename, part.data) == ("images", "a.png", b"PNG")
    with pytest.raises(MultipartError, match="no boundary delimiter"):
        parse_form(b"x--b" * 1_000_000, b"b", 8)
