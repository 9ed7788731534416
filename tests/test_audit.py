"""Audit sinks: the default cannot silently drop a decision, and neither can the logging sink."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from moderation import AuditError, Engine, PolicyStore
from moderation.audit import LoggingAuditLog, StreamAuditLog, audit_log_from_spec
from moderation.errors import ConfigurationError
from moderation.testing import RecordedDetector, Recordings

ROOT = Path(__file__).resolve().parent.parent
BEACH = ROOT / "examples/images/beach.jpg"


@pytest.fixture
def engine_parts() -> tuple[PolicyStore, RecordedDetector]:
    recordings = Recordings.load(ROOT / "examples/recordings")
    return PolicyStore(ROOT / "policies"), RecordedDetector(recordings)


@pytest.fixture
def lonely_logger() -> logging.Logger:
    """A logger at INFO with no handlers, outside the logging tree (pytest's handlers sit there).

    Its parent is a bare root at WARNING with no handlers, as in a process that never
    configured logging.
    """
    logger = logging.Logger("moderation.audit.lonely", logging.INFO)
    logger.parent = logging.RootLogger(logging.WARNING)
    return logger


def test_an_engine_built_without_an_audit_log_writes_json_lines_to_stdout(engine_parts, capsys):
    # GIVEN an engine with no audit log named, in a process that configured no logging
    engine = Engine(*engine_parts)
    # WHEN it decides
    decision = engine.moderate(BEACH)
    # THEN the decision is on stdout as one JSON line (what Lambda and containers collect)
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == decision.id


def test_the_environment_default_is_stdout(fake_aws_env):
    engine = Engine.from_env({"MODERATION_POLICIES": str(ROOT / "policies")})
    assert isinstance(engine.audit, StreamAuditLog)


def test_the_logging_sink_refuses_to_start_when_its_records_would_be_dropped(lonely_logger):
    # GIVEN a logger with no handler (Python drops INFO records then, with no warning)
    with pytest.raises(ConfigurationError, match="would drop INFO records"):
        LoggingAuditLog(lonely_logger)
    # a handler that only takes warnings does not count either
    lonely_logger.addHandler(logging.StreamHandler(io.StringIO()))
    lonely_logger.handlers[0].setLevel(logging.WARNING)
    with pytest.raises(ConfigurationError):
        LoggingAuditLog(lonely_logger)
    # nor does a logger left at the level it inherits from an unconfigured root (WARNING)
    inheriting = logging.Logger("moderation.audit.inheriting")
    inheriting.parent = lonely_logger.parent
    inheriting.addHandler(logging.StreamHandler(io.StringIO()))
    assert inheriting.getEffectiveLevel() == logging.WARNING
    with pytest.raises(ConfigurationError):
        LoggingAuditLog(inheriting)


def test_the_logging_sink_emits_when_configured(lonely_logger, engine_parts):
    stream = io.StringIO()
    lonely_logger.addHandler(logging.StreamHandler(stream))
    engine = Engine(*engine_parts, audit=LoggingAuditLog(lonely_logger))
    decision = engine.moderate(BEACH)
    assert json.loads(stream.getvalue())["id"] == decision.id


def test_a_decision_is_never_returned_once_logging_would_drop_it(lonely_logger, engine_parts):
    # GIVEN a logging sink that was fine when built, and logging reconfigured afterwards
    lonely_logger.addHandler(logging.StreamHandler(io.StringIO()))
    engine = Engine(*engine_parts, audit=LoggingAuditLog(lonely_logger))
    lonely_logger.handlers.clear()
    # WHEN a decision is made, THEN it is raised with the decision, never returned unaudited
    with pytest.raises(AuditError, match="would drop INFO records") as caught:
        engine.moderate(BEACH)
    assert caught.value.decision is not None


def test_log_in_the_environment_without_logging_configured_is_refused(monkeypatch):
    logger = logging.getLogger("moderation.audit")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [])
    with pytest.raises(ConfigurationError, match="MODERATION_AUDIT=log"):
        audit_log_from_spec("log")


def test_a_closed_stdout_is_an_audit_error(engine_parts, monkeypatch):
    monkeypatch.setattr("sys.stdout", None)
    with pytest.raises(AuditError):
        Engine(*engine_parts).moderate(BEACH)
