"""Test doubles for code that uses this library, starting with a local AWS endpoint."""

from moderation.testing.endpoint import AWSEndpoint, Reply

__all__ = ["AWSEndpoint", "Reply"]
