"""Small helpers for the words devslice prints."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 slice``, ``2 slices``, ``0 canaries`` (``many`` for plurals beyond adding an s)."""
    if count == 1:
        return f"{count} {word}"
    if many is None:
        many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" \
            else word + "s"
    return f"{count} {many}"
