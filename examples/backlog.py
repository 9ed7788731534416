"""A day of the forum's traffic for `make demo`, with a known truth, and a reviewer who knows it.

    python examples/backlog.py POLICIES DESK_URL AUDIT_LOG [DAY]

Rekognition's answers are generated (the same every run of a DAY, 1 by default): on day 1,
1,500 images in which Violence is found at a confidence drawn uniformly from 40 to 100, and 60 in
which Visually Disturbing is; a later day is a quarter of that, drawn afresh. Whether
an image is really harmful is drawn from a known function of that confidence (`TRUTH`). Every
image goes through the real engine under the tenant's policy in POLICIES (its QA sample
included) into the audit log and the review desk, which are joined as `moderation review serve`
joins them. Then a reviewer who answers with the truth works the forum's queue, as people do on
the review page: the review band, and the blind QA samples of automatic outcomes.

What `moderation review stats` and `moderation tune` then read from the log is what a
trust-and-safety team would have after a day of reviewing.
"""

from __future__ import annotations

import io
import math
import random
import sys

from PIL import Image

from moderation import Detection, Engine, PolicyStore, wiring
from moderation.image import PreparedImage
from moderation.review import Reviewer
from moderation.settings import Settings

TENANT = "forum"
#: Per category: how many images, and P(harmful | Rekognition's confidence) for it.
TRUTH = {
    "Violence": (1500, lambda score: 1 / (1 + math.exp(-(score - 86) / 2.5))),
    "Visually Disturbing": (60, lambda score: 1 / (1 + math.exp(-(score - 80) / 4))),
}
CHILD = {"Violence": "Graphic Violence", "Visually Disturbing": "Emaciated Bodies"}


class Generated:
    """A detector answering, for each image, the labels drawn for it (as Rekognition's JSON)."""

    def __init__(self) -> None:
        self.category = ""
        self.score = 0.0

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        labels = [
            {"Name": CHILD[self.category], "ParentName": self.category, "TaxonomyLevel": 2},
            {"Name": self.category, "ParentName": "", "TaxonomyLevel": 1},
        ]
        response = {
            "ModerationLabels": [{**label, "Confidence": self.score} for label in labels],
            "ModerationModelVersion": "7.0",
        }
        return Detection.from_rekognition(response, min_confidence=min_confidence)


def image(n: int) -> bytes:
    """A small PNG of its own for image `n` (each image has its own sha256, as uploads do)."""
    buffer = io.BytesIO()
    Image.new("RGB", (80, 80), (n % 256, n // 256 % 256, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def main(policies: str, desk_url: str, audit_log: str, day: str = "1") -> None:
    rng = random.Random(2025 + int(day))
    share = 1 if day == "1" else 4
    settings = Settings(review=desk_url, audit=audit_log)
    audit = wiring.audit_sink(settings)
    desk = wiring.review_desk(settings, audit)
    assert desk is not None
    detector = Generated()
    engine = Engine(PolicyStore(policies), detector, audit=audit, review=desk)
    harmful: dict[str, bool] = {}
    plan = [name for name, (count, _) in TRUTH.items() for _ in range(count // share)]
    rng.shuffle(plan)
    for n, category in enumerate(plan):
        detector.category, detector.score = category, round(rng.uniform(40, 100), 1)
        decision = engine.moderate(image(n + 10_000 * int(day)), tenant=TENANT)
        harmful[decision.id] = rng.random() < TRUTH[category][1](detector.score)
    reviewer = Reviewer("truth-reviewer", frozenset({TENANT}))
    verdicts = {"approve": 0, "reject": 0}
    while (item := desk.next(reviewer)) is not None:
        verdict = "reject" if harmful[item.decision_id] else "approve"
        desk.decide(item.id, verdict, reviewer=reviewer)
        verdicts[verdict] += 1
    engine.close()
    print(
        f"  {len(plan)} images of tenant {TENANT} moderated into {audit_log}; "
        f"{sum(verdicts.values())} desk items decided by {reviewer.name} "
        f"({verdicts['approve']} approved, {verdicts['reject']} rejected)"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
