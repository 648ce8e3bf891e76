"""Content negotiation: which of a route's response media types an ``Accept`` header asks for.

RFC 9110 §12.5.1: media ranges with ``q`` weights; a type is weighted by the most specific range that
matches it (``type/subtype`` over ``type/*`` over ``*/*``), and ``q=0`` means "not this one". Among
equally weighted types the more specifically named one wins (``application/x-npy, */*`` asks for npy),
then the route's own order (its default first).
"""

from __future__ import annotations


def _ranges(accept: str) -> list[tuple[str, str, float]]:
    """(type, subtype, q) per media range, lowercased; a range with an unreadable ``q`` is dropped."""
    ranges = []
    for element in accept.split(","):
        media_range, *params = element.split(";")
        kind, _, subtype = media_range.strip().lower().partition("/")
        if not kind or not subtype:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if 0.0 <= q <= 1.0:
            ranges.append((kind, subtype, q))
    return ranges


def _weight(media_type: str, ranges: list[tuple[str, str, float]]) -> tuple[float, int]:
    """(q, specificity) of the most specific range matching ``media_type``; (0, 0) when none does."""
    kind, _, subtype = media_type.partition("/")
    best = (0.0, -1)
    for range_kind, range_subtype, q in ranges:
        if (range_kind, range_subtype) == (kind, subtype):
            specificity = 2
        elif (range_kind, range_subtype) == (kind, "*"):
            specificity = 1
        elif (range_kind, range_subtype) == ("*", "*"):
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (q, specificity)
    return (best[0], max(best[1], 0))


def preferred(accept: str | None, offered: tuple[str, ...]) -> str:
    """The offered media type the client weights highest; ``offered[0]`` (the route's default) when the
    header is absent or accepts none of them, since an answer in the default type is more use to a
    client than a 406."""
    if not accept:
        return offered[0]
    ranges = _ranges(accept)
    weights = [_weight(media_type, ranges) for media_type in offered]
    best = max(range(len(offered)), key=lambda i: (weights[i], -i))
    return offered[best] if weights[best][0] > 0 else offered[0]
