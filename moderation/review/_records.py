"""The desk's records in the audit log: review verdicts and appeals, and the final outcome rule.

Defined in `moderation.review_records` (the pure core, so that the audit log can read and verify
them without importing the desk); the desk imports them from here.
"""

from moderation.review_records import (
    OUTCOME_OF_REVIEW,
    REVIEW_SCHEMA_VERSION,
    AppealRecord,
    DecisionHistory,
    ReviewRecord,
    ReviewVerdict,
    final_outcome,
    final_review,
)

__all__ = [
    "OUTCOME_OF_REVIEW",
    "REVIEW_SCHEMA_VERSION",
    "AppealRecord",
    "DecisionHistory",
    "ReviewRecord",
    "ReviewVerdict",
    "final_outcome",
    "final_review",
]
