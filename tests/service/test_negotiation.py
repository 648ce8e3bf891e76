from __future__ import annotations

import pytest

from poolserve.service.api.negotiation import preferred

OFFERED = ("application/json", "application/x-npy")


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("application/x-npy", "application/x-npy"),
        ("APPLICATION/X-NPY", "application/x-npy"),
        ("application/x-npy ; q=0.9, application/json;q=0.8", "application/x-npy"),
        ("application/json;q=0.8, application/x-npy;q=0.9", "application/x-npy"),
        ("application/x-npy;q=0, application/json", "application/json"),
        ("application/x-npy;q=0", "application/json"),  # nothing acceptable: the default
        ("application/*;q=0.5, application/x-npy", "application/x-npy"),
        ("application/*, application/json;q=0.1", "application/x-npy"),  # the specific range rules json
        ("application/x-npy, */*", "application/x-npy"),  # equal q: the named type over the wildcard
        ("*/*", "application/json"),  # equal q, equal specificity: the route's default
        ("application/x-npy+zip, text/html", "application/json"),  # no substring matches
        ("application/x-npy;q=high, application/json;q=0.2", "application/json"),  # unreadable q: dropped
        ("application/x-npy;q=2", "application/json"),  # q out of range: dropped
        ("garbage, ,;", "application/json"),
    ],
)
def test_preferred(accept: str | None, chosen: str) -> None:
    assert preferred(accept, OFFERED) == chosen
