"""Tuning: category thresholds proposed from reviewers' verdicts, with a finite-sample guarantee.

`tune(logs, policies, tenant, max_false_approve=..., max_false_reject=...)` reads the labels the
review desk wrote into the audit log and proposes, per category rule, the thresholds that send the
fewest images to the judge and to people while the false-approve and false-reject rates of the
automatic outcomes stay under their targets at the asked confidence (Learn-Then-Test with exact
binomial bounds). It never edits the live policy: it gives the edited text, its diff, a shadow
candidate file and a backtest. docs/tuning.md says what the method assumes.
"""

from moderation.tuning._ltt import Item, Needed, SideResult, Step, labels_needed, run_side
from moderation.tuning._report import render, to_json
from moderation.tuning._rule import RuleProposal, Targets
from moderation.tuning._tune import Backtest, Proposal, tune

__all__ = [
    "Backtest",
    "Item",
    "Needed",
    "Proposal",
    "RuleProposal",
    "SideResult",
    "Step",
    "Targets",
    "labels_needed",
    "render",
    "run_side",
    "to_json",
    "tune",
]
