"""Replay: recorded decisions triaged again under the policies as they are now.

`replay(source, policies)` says what a policy change would have done to real traffic before it
ships: which decisions flip, which need a judgment the log does not hold, what the escalation
rate and cost become. `replay_shadow(source)` compares live outcomes with the shadow results
recorded beside them. Pure: no AWS call unless `live=LiveJudging(...)` is given. docs/replay.md.

Review and appeal records in a log are not decisions: replay passes over them (no flip, no bad
record), and `labels(paths)` reads them as what people finally decided about each decision.
"""

from moderation.audit import labels
from moderation.replay._live import DEFAULT_JUDGE_USAGE, LiveJudging, LivePlan, image_index
from moderation.replay._report import DEFAULT_KEEP, BadRecord, Flip, LiveSummary, ReplayReport
from moderation.replay._run import replay, replay_shadow

__all__ = [
    "DEFAULT_JUDGE_USAGE",
    "DEFAULT_KEEP",
    "BadRecord",
    "Flip",
    "LiveJudging",
    "LivePlan",
    "LiveSummary",
    "ReplayReport",
    "image_index",
    "labels",
    "replay",
    "replay_shadow",
]
