"""Sortable decision ids (ULID: 48-bit milliseconds + 80 random bits, Crockford base32)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

__all__ = ["new_ulid"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two digits: an id is 13 look-ups, not 26 shifts and look-ups (the
# 128 bits take 130: the first digit's top bits are zeros).
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_SHIFTS = tuple(range(120, -1, -10))


def new_ulid(
    now: Callable[[], float] = time.time,
    random_bits: Callable[[int], int] = secrets.randbits,
) -> str:
    """A 26-character id that sorts by creation time; clock and randomness are injectable."""
    value = (int(now() * 1000) & ((1 << 48) - 1)) << 80 | random_bits(80)
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
