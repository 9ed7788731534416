"""The policy a tenant's decisions are replayed under: shared by the run and the live judging
(its own module, so that neither of them imports the other for it)."""

from __future__ import annotations

from dataclasses import dataclass

from moderation.policy import Policy
from moderation.triage import CompiledPolicy

__all__ = ["Resolved"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The policy a tenant's decisions are replayed under, compiled once."""

    policy: Policy
    compiled: CompiledPolicy
