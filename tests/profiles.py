"""How hard the property tests search: a Hypothesis profile chosen by `MODERATION_HYPOTHESIS`.

`fast` (the default, what `make test` runs) keeps the whole suite within minutes on a 2-core
machine; `deep` (`make test-deep`) runs ten times the examples of every property test, for a
change to the pure core or before a release. Each test states its example count for the fast
profile through `examples(n)`; the profile scales it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = {"fast": 1, "deep": 10}
PROFILE = os.environ.get("MODERATION_HYPOTHESIS", "fast")
if PROFILE not in PROFILES:
    raise RuntimeError(
        f"MODERATION_HYPOTHESIS={PROFILE!r}: expected one of {', '.join(sorted(PROFILES))}"
    )

settings.register_profile(
    "fast",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "deep",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    max_examples=1000,
)
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """`n` examples under the fast profile, ten times as many under the deep one."""
    return n * PROFILES[PROFILE]
