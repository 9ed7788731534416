"""The README's upload-handler example, run as written against recorded responses."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

import moderation
from moderation import Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

ROOT = Path(__file__).resolve().parent.parent


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
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
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
        f"/tenants/{tenant}/uploads",
        data={"image": (io.BytesIO(data), image), "upload_id": "up-42"},
        content_type="multipart/form-data",
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
        "/tenants/default/uploads",
        data={"image": (io.BytesIO(b"meeting notes"), "notes.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 415
    assert "not an image" in response.json["error"]
    assert audit.decisions == []


def test_readme_upload_handler_answers_404_for_an_unknown_tenant(app_and_audit):
    app, audit = app_and_audit
    data = (ROOT / "examples/images/beach.jpg").read_bytes()
    response = app.test_client().post(
        "/tenants/kidz/uploads",
        data={"image": (io.BytesIO(data), "beach.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 404
    assert audit.decisions == []


def test_readme_upload_handler_answers_503_when_the_detector_fails(app_and_audit):
    from moderation.errors import DetectorError

    class Down:
        def detect(self, image, *, min_confidence):
            raise DetectorError("Rekognition DetectModerationLabels failed after 4 attempts")

    app, audit = app_and_audit
    moderation.configure(Engine(PolicyStore(ROOT / "policies"), Down(), audit=audit))
    data = (ROOT / "examples/images/beach.jpg").read_bytes()
    response = app.test_client().post(
        "/tenants/default/uploads",
        data={"image": (io.BytesIO(data), "beach.jpg")},
        content_type="multipart/form-data",
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
        ):
            assert f"`{name}`" in text, name
