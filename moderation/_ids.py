"""Sortable decision ids (ULID: 48-bit milliseconds + 80 random bits, Crockford base32)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

__all__ = ["new_ulid"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(
    now: Callable[[], float] = time.time,
    random_bits: Callable[[int], int] = secrets.randbits,
) -> str:
    """A 26-character id that sorts by creation time; clock and randomness are injectable."""
    value = (int(now() * 1000) & ((1 << 48) - 1)) << 80 | random_bits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
