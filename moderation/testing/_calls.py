"""What the test doubles were asked: one record per call, kept in the double's `.calls` list.

Defined beside the recorded answers (`moderation.recorded`, part of the library: the CLI's
`--offline` uses them) and re-exported here for the fakes.
"""

from __future__ import annotations

from moderation.recorded import DetectCall, JudgeCall

__all__ = ["DetectCall", "JudgeCall"]
