"""A scripted reviewer for `make demo`: it works the demo's review desk through the library's API,
as a person does through the review page. Its last line is `decided: ID...`, the decisions it
decided.

    python examples/scripted_reviewer.py DESK_URL AUDIT_LOG

The desk is joined to the audit log the decisions are in (as `moderation review serve` joins it),
so every verdict is appended to that log's hash chain.
"""

from __future__ import annotations

import sys

from moderation import wiring
from moderation.review import Reviewer, ReviewItem, Role
from moderation.settings import Settings

# What this reviewer makes of each label the demo's images send to review.
VERDICTS = {
    "Weapons": ("approve", "a video game: no real weapon", ()),
    "Kissing on the Lips": ("reject", "not for the kids' forum", ("Kissing on the Lips",)),
}


def verdict_for(item: ReviewItem) -> tuple[str, str, tuple[str, ...]]:
    """The verdict for the item's strongest finding; a skip for a label the script does not know."""
    for finding in sorted(item.findings, key=lambda f: -f.confidence):
        if finding.label in VERDICTS:
            return VERDICTS[finding.label]
    return ("skip", "", ())


def main(desk_url: str, audit_log: str) -> None:
    settings = Settings(review=desk_url, audit=audit_log)
    desk = wiring.review_desk(settings, wiring.audit_sink(settings))
    assert desk is not None
    reviewer = Reviewer("demo-reviewer", "*", Role.SENIOR)
    decided: list[str] = []
    try:
        while (item := desk.next(reviewer)) is not None:
            verdict, note, categories = verdict_for(item)
            findings = ", ".join(f"{f.label} {f.confidence:.1f}%" for f in item.findings)
            print(f"  {item.tenant:8} {item.decision_id}  {findings}  -> {verdict}: {note}")
            if verdict == "skip":
                desk.release(item.id, reviewer=reviewer)
                break
            desk.decide(item.id, verdict, reviewer=reviewer, note=note, categories=categories)
            decided.append(item.decision_id)
    finally:
        desk.close()
    print("decided:", " ".join(decided))


if __name__ == "__main__":
    main(*sys.argv[1:])
