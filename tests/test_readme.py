"""The README's upload-handler example, run as written against recorded responses."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

import moderation
from moderation import Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

ROOT = Path(__file__).resolve().parent.parent
# Accounts added to the example's, one per tenant the tests moderate under; `kidz` has no policy.
ACCOUNTS = {"key-default": "default", "key-kids": "kids", "key-kidz": "kidz"}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer key-{tenant}"}


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    [flask_app] = [b for b in blocks if "Flask(" in b]
    return flask_app


@pytest.fixture
def app_and_audit():
    recordings = Recordings.load(ROOT / "examples/recordings")
    audit = InMemoryAuditLog()
    moderation.configure(
        Engine(
            PolicyStore(ROOT / "policies"),
            RecordedDetector(recordings),
            RecordedJudge(recordings),
            audit,
        )
    )
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    namespace["ACCOUNTS"].update(ACCOUNTS)
    yield namespace["app"], audit
    moderation.configure(None)


@pytest.mark.parametrize(
    ("image", "tenant", "status", "outcome"),
    [
        ("landscape.png", "default", 201, "approved"),
        ("beach.jpg", "default", 201, "approved"),
        ("beach.jpg", "kids", 422, "rejected"),
        ("cartoon-fight.png", "default", 201, "approved"),  # escalated; the judge approved
        ("surgery.jpg", "default", 422, "rejected"),  # the judge's filter blocked: on_blocked
    ],
)
def test_readme_upload_handler(app_and_audit, image, tenant, status, outcome):
    app, audit = app_and_audit
    data = (ROOT / "examples/images" / image).read_bytes()
    response = app.test_client().post(
        "/uploads",
        data={"image": (io.BytesIO(data), image), "upload_id": "up-42"},
        content_type="multipart/form-data",
        headers=auth(tenant),
    )
    assert response.status_code == status
    assert response.json["outcome"] == outcome
    [decision] = audit.decisions
    assert response.json["decision"] == decision.id
    assert decision.context == {"upload_id": "up-42"}
    assert decision.tenant == tenant


def test_readme_upload_handler_refuses_a_non_image(app_and_audit):
    app, audit = app_and_audit
    response = app.test_client().post(
        "/uploads",
        data={"image": (io.BytesIO(b"meeting notes"), "notes.jpg")},
        content_type="multipart/form-data",
        headers=auth("default"),
    )
    assert response.status_code == 415
    assert "not an image" in response.json["error"]
    assert audit.decisions == []


def test_readme_upload_handler_answers_403_for_an_account_without_a_policy(app_and_audit):
    app, audit = app_and_audit
    data = (ROOT / "examples/images/beach.jpg").read_bytes()
    response = app.test_client().post(
        "/uploads",
        data={"image": (io.BytesIO(data), "beach.jpg")},
        content_type="multipart/form-data",
        headers=auth("kidz"),
    )
    assert (response.status_code, response.json) == (
        403,
        {"error": "this account has no moderation policy"},
    )
    assert audit.decisions == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer key-nobody"}])
def test_readme_upload_handler_answers_401_without_a_known_api_key(app_and_audit, headers):
    app, audit = app_and_audit
    data = (ROOT / "examples/images/beach.jpg").read_bytes()
    response = app.test_client().post(
        "/uploads",
        data={"image": (io.BytesIO(data), "beach.jpg")},
        content_type="multipart/form-data",
        headers=headers,
    )
    assert response.status_code == 401
    assert audit.decisions == []


def test_readme_upload_handler_takes_the_tenant_from_the_account_not_the_request(app_and_audit):
    # GIVEN a kids account, whose policy rejects beach.jpg while default approves it
    app, audit = app_and_audit
    data = (ROOT / "examples/images/beach.jpg").read_bytes()
    # WHEN the client names another tenant every way a request could
    response = app.test_client().post(
        "/uploads?tenant=default",
        data={"image": (io.BytesIO(data), "beach.jpg"), "tenant": "default"},
        content_type="multipart/form-data",
        headers={**auth("kids"), "X-Tenant": "default"},
    )
    # THEN it is moderated under its account's tenant
    assert (response.status_code, response.json["outcome"]) == (422, "rejected")
    assert [d.tenant for d in audit.decisions] == ["kids"]


def test_readme_upload_handler_answers_503_when_the_detector_fails(app_and_audit):
    from moderation.errors import DetectorError

    class Down:
        def detect(self, image, *, min_confidence):
            raise DetectorError("Rekognition DetectModerationLabels failed after 4 attempts")

    app, audit = app_and_audit
    moderation.configure(Engine(PolicyStore(ROOT / "policies"), Down(), audit=audit))
    data = (ROOT / "examples/images/beach.jpg").read_bytes()
    response = app.test_client().post(
        "/uploads",
        data={"image": (io.BytesIO(data), "beach.jpg")},
        content_type="multipart/form-data",
        headers=auth("default"),
    )
    assert response.status_code == 503
    assert audit.decisions == []


def test_the_readme_lists_every_error_moderate_can_raise():
    text = (ROOT / "README.md").read_text()
    for name in moderation.errors.__all__:
        if name not in (
            # Raised by the AWS transports' own methods; moderate() turns it into an AuditError
            # (the audit sink) or a cache miss (the detection cache), never raises it.
            "AWSError",
            "ModerationError",
            "Problem",
            "DetectionParseError",
            "JudgeError",
            "ReplayError",
            # The review desk's own errors (docs/review.md): raised by the desk's methods, which
            # moderate() never calls in a way that lets them out.
            "ReviewError",
            "UnknownItem",
            "LeaseLost",
            # `moderation tune`'s (docs/tuning.md): moderate() never tunes.
            "TuningError",
        ):
            assert f"`{name}`" in text, name


def readme_commands() -> list[str]:
    """Every `moderation ...` command line of the shell blocks of the README and docs/."""
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))])
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, flags=re.S)
    lines = [line.strip().removeprefix("$ ") for block in blocks for line in block.splitlines()]
    return [
        line.split("#")[0].strip()
        for line in lines
        if line.startswith(("moderation ", "$ moderation "))
    ]


@pytest.mark.parametrize("line", sorted(set(readme_commands())))
def test_every_command_and_option_the_docs_show_exists(line: str):
    import click

    from moderation.cli import main

    words = line.split()[1:]
    command: click.Command = main
    while words and isinstance(command, click.Group) and words[0] in command.commands:
        command = command.commands[words.pop(0)]
    assert not isinstance(command, click.Group), f"{line!r} names no command of its group"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    used = {w.split("=")[0] for w in words if w.startswith("--")}
    assert used <= known, f"{line!r}: {sorted(used - known)} are not options of it"
