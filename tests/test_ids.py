"""Decision ids are ULIDs: 26 Crockford base32 digits, milliseconds first."""

from __future__ import annotations

import random

import pytest

from moderation._ids import new_ulid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RNG = random.Random(16)


def digit_by_digit(value: int) -> str:
    """The ULID spec's encoding: 26 digits of 5 bits, most significant first."""
    return "".join(CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))


@pytest.mark.parametrize(
    ("millis", "bits"),
    [(0, 0), ((1 << 48) - 1, (1 << 80) - 1), (1_765_000_000_000, 1 << 79), (1, 1)]
    + [(RNG.getrandbits(48), RNG.getrandbits(80)) for _ in range(200)],
)
def test_an_id_is_its_time_and_random_bits_in_crockford_base32(millis: int, bits: int):
    made = new_ulid(now=lambda: millis / 1000 + 0.0001, random_bits=lambda n: bits)
    assert made == digit_by_digit(millis << 80 | bits)


def test_ids_sort_by_time():
    ids = [new_ulid(now=lambda t=t: t) for t in (1.0, 2.0, 1_765_000_000.5, 2**40)]
    assert ids == sorted(ids) and all(len(i) == 26 for i in ids)
