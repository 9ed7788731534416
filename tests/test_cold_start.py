"""What a cold start builds: one botocore session for the process, no client before it is used,
and an `import moderation` that loads only what every user needs.

No timing here (benchmarks/cold_start.py measures them): these count sessions, clients and
modules. The Lambda world is test_lambda's (moto's S3, SQS and DynamoDB, the local Rekognition
and Bedrock), without its speed-up that shares one session between every client.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
import test_lambda
from images import BLUE, GREEN, RED, solid
from test_lambda import EXPLICIT, HATE, TABLE, World, event, s3_notification

from moderation.aws.rekognition import RekognitionDetector
from moderation.aws.session import SharedSession, one_session

ROOT = Path(__file__).resolve().parent.parent

lambda_world = test_lambda.world  # the fixture, under a name of this module


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Every botocore session created and every client built from now on."""
    made: dict[str, list[Any]] = {"sessions": [], "clients": []}
    real_init = botocore.session.Session.__init__
    real_create = botocore.session.Session.create_client

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made["sessions"].append(self)
        real_init(self, *args, **kwargs)

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        made["clients"].append(service_name)
        return real_create(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "__init__", init)
    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    return made


def with_table(world: World) -> None:
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    world.cold_start(
        MODERATION_IDEMPOTENCY_TABLE=TABLE,
        MODERATION_DEDUPE=f"dynamodb:{TABLE}",
        MODERATION_QUARANTINE_BUCKET="quarantine",
    )


def test_the_cold_start_builds_no_client(lambda_world: World, built: dict[str, list[Any]]) -> None:
    world = lambda_world
    # GIVEN every part configured: the judge, the review queue, the idempotency table, the cache
    with_table(world)
    built["sessions"].clear()
    built["clients"].clear()
    # WHEN the function starts cold on S3's test event (no object: nothing to moderate)
    world.invoke(event("s3-test-event.json"))
    # THEN the engine and the handler were built, and no AWS client, nor even a session, yet
    assert built["clients"] == []
    assert built["sessions"] == []


def test_every_client_of_the_function_comes_from_one_session(
    lambda_world: World, built: dict[str, list[Any]]
) -> None:
    world = lambda_world
    # GIVEN every part configured, and objects that need every client
    with_table(world)
    approved = world.put("s/approved.png", solid("png", color=GREEN))
    rejected = world.put("s/rejected.png", solid("png", color=RED), labels=EXPLICIT)
    review = world.put("s/review.png", solid("png", color=BLUE), labels=HATE)
    built["sessions"].clear()
    built["clients"].clear()
    # WHEN the function starts cold and moderates them
    result = world.invoke(s3_notification(approved, rejected, review))
    outcomes = [entry["outcome"] for entry in result["objects"]]
    assert outcomes == ["approved", "rejected", "review"]
    # THEN each client was built once (S3 twice: the handler's and the image reader's; DynamoDB
    # twice: the detection cache's and the idempotency layer's), all from one botocore session
    assert sorted(built["clients"]) == ["dynamodb", "dynamodb", "rekognition", "s3", "s3", "sqs"]
    assert len(built["sessions"]) == 1


def test_a_shared_session_builds_one_client_at_a_time_from_one_session(
    fake_aws_env: dict[str, str], built: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN transports made in one scope, first used by many threads at once (and the region
    # Lambda sets: no session is needed to find it)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with one_session() as shared:
        detectors = [RekognitionDetector() for _ in range(8)]
    assert built["sessions"] == []  # nothing is created before a client is needed
    threads = [threading.Thread(target=lambda d=d: d.client) for d in detectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN one session built all eight clients
    assert len(built["sessions"]) == 1
    assert built["clients"] == ["rekognition"] * 8
    assert {d.client.meta.region_name for d in detectors} == {"us-east-1"}
    assert isinstance(shared, SharedSession)


def test_a_transport_built_outside_a_scope_has_a_session_of_its_own(
    fake_aws_env: dict[str, str], built: dict[str, list[Any]]
) -> None:
    first, second = RekognitionDetector(), RekognitionDetector()
    assert first.client is not second.client
    assert len(built["sessions"]) == 2


def run(code: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
    )
    return done.stdout.strip()


# -- import moderation ---------------------------------------------------------------------------


def test_import_moderation_imports_none_of_its_parts() -> None:
    # WHEN the package alone is imported in a fresh interpreter
    loaded = run(
        "import sys, moderation\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('moderation', 'pydantic', 'boto3', 'botocore', 'PIL', 'yaml'))))"
    ).split()
    # THEN only its version, its errors and the lazy loader are: every other name waits for its
    # first use
    assert loaded == ["moderation", "moderation._lazy", "moderation._version", "moderation.errors"]


def test_every_exported_name_resolves_to_the_object_its_module_defines() -> None:
    import importlib

    import moderation

    for name in moderation.__all__:
        value = getattr(moderation, name)
        home = getattr(value, "__module__", None)
        if isinstance(home, str) and home.startswith("moderation."):
            defined = importlib.import_module(home)
            assert getattr(defined, getattr(value, "__name__", name)) is value, name
    assert moderation.TAXONOMY is importlib.import_module("moderation.taxonomy").TAXONOMY
    assert set(moderation.__all__) <= set(dir(moderation))
    with pytest.raises(AttributeError, match="has no attribute 'Engines'"):
        _ = moderation.Engines


def test_from_moderation_import_works_for_every_name_in_a_fresh_interpreter() -> None:
    got = run(
        "import moderation\n"
        "for name in moderation.__all__:\n"
        "    exec(f'from moderation import {name}')\n"
        "from moderation import *\n"
        "print(len(moderation.__all__), Engine.__module__, Decision.__module__)"
    )
    assert got.endswith("moderation.engine moderation.decision")


def test_functions_named_like_subpackages_keep_their_name() -> None:
    # `moderation.replay` and `moderation.evaluate` are functions and subpackages: importing the
    # subpackage (as the CLI does) must not turn the package's name into the module.
    got = run(
        "import moderation.replay, moderation.evaluate, moderation\n"
        "from moderation import replay, evaluate\n"
        "print(callable(replay), callable(evaluate), moderation.replay is replay, "
        "moderation.evaluate.__module__)"
    )
    assert got == "True True True moderation.triage"


def test_a_subpackage_not_imported_yet_is_still_an_attribute() -> None:
    assert run("import moderation\nprint(moderation.policy.PolicyStore.__name__)") == "PolicyStore"


def test_a_client_that_cannot_be_built_fails_its_first_call_with_the_ports_error(
    fake_aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moderation.errors import DetectorError
    from moderation.image import ImageIntake

    # GIVEN an endpoint URL botocore refuses, which only building the client finds
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", "not a url")
    detector = RekognitionDetector()  # made without a client: nothing refused yet
    image = ImageIntake().prepare(solid("png"))
    # WHEN it is first used, THEN the detector's own error says why, not a failed call wrapping it
    with pytest.raises(DetectorError, match=r"^rekognition: cannot build the client: ValueError"):
        detector.detect(image, min_confidence=50)


def test_the_handler_imports_neither_the_desk_nor_the_tools() -> None:
    loaded = run(
        "import sys, moderation.aws_lambda\n"
        "print(' '.join(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules "
        "if m.startswith('moderation.')})))"
    ).split()
    for part in ("moderation.review", "moderation.cli", "moderation.replay", "moderation.tuning"):
        assert part not in loaded
    assert "moderation.engine" in loaded


# The template's function environment: every part configured, audit records to stdout, local
# policies, fake credentials.
TEMPLATE_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "moderation",
    "MODERATION_POLICIES": str(ROOT / "policies"),
    "MODERATION_AUDIT": "stdout",
    "MODERATION_JUDGE": "bedrock",
    "MODERATION_REVIEW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/review",
    "MODERATION_QUARANTINE_BUCKET": "quarantine",
    "MODERATION_IDEMPOTENCY_TABLE": "moderation-idempotency",
    "MODERATION_DEDUPE": "dynamodb:moderation-idempotency",
}

_SNAPSHOT_UNSAFE = """
import gc, socket, sys
import botocore.client, botocore.credentials, botocore.session
kinds = (botocore.session.Session, botocore.client.BaseClient, botocore.credentials.Credentials,
         socket.socket)
held = sorted({type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)})
print(' '.join(held) or 'nothing')
"""


def test_the_lambda_init_holds_no_session_client_credentials_or_socket() -> None:
    # GIVEN the template's function environment (every part configured)
    # WHEN Lambda's init runs (the import) and the first invocation then builds its state
    init = run("import moderation.aws_lambda\n" + _SNAPSHOT_UNSAFE, env=TEMPLATE_ENV)
    state = run(
        "from moderation.aws_lambda import _handler\n_handler._state()\n" + _SNAPSHOT_UNSAFE,
        env=TEMPLATE_ENV,
    )
    # THEN neither holds anything a snapshot of the init (SnapStart) could not share between
    # instances: no botocore session, client, credentials or socket (all made on first use)
    assert init == "nothing"
    assert state == "nothing"


def test_a_cold_start_logging_to_stdout_loads_no_other_sink_reader_or_policy_source(
    tmp_path: Path,
) -> None:
    # GIVEN the template's function (every part configured, audit records to stdout) reading
    # local policies
    # WHEN it starts cold
    loaded = run(
        "import sys\nfrom moderation.aws_lambda import _handler\n_handler._state()\n"
        "print(' '.join(m for m in sys.modules if m.startswith('moderation.')))",
        env=TEMPLATE_ENV,
    ).split()
    # THEN the stdout sink is there, and neither the file log, the S3 trail, their readers and
    # verifiers, nor the S3 and AppConfig policy sources were imported
    assert {"moderation.audit._sinks", "moderation.policy.sources._directory"} <= set(loaded)
    for unused in (
        "moderation.audit._jsonl",
        "moderation.audit._s3",
        "moderation.audit._read",
        "moderation.audit._verify",
        "moderation.audit._digest",
        "moderation.audit._s3verify",
        "moderation.policy.sources._s3",
        "moderation.policy.sources._appconfig",
    ):
        assert unused not in loaded


@pytest.mark.parametrize(
    "package", ["moderation.audit", "moderation.policy", "moderation.policy.sources"]
)
def test_every_name_of_a_lazy_package_imports_in_a_fresh_interpreter(package: str) -> None:
    got = run(
        f"import importlib\nfrom {package} import *\n"
        f"package = importlib.import_module({package!r})\n"
        "missing = [n for n in package.__all__ if n not in dir(package)]\n"
        "try:\n    package.Nothing\nexcept AttributeError as exc:\n    print(exc)\n"
        "print(len(package.__all__), missing)"
    )
    assert got.splitlines() == [
        f"module {package!r} has no attribute 'Nothing'",
        f"{len(importlib.import_module(package).__all__)} []",
    ]


def test_a_first_image_loads_only_its_own_pillow_plugin(tmp_path: Path) -> None:
    # GIVEN one image in each format intake takes, written by this process
    formats = ("jpeg", "png", "webp", "gif", "bmp", "tiff")
    for fmt in formats:
        (tmp_path / fmt).write_bytes(solid(fmt))
    # WHEN a fresh interpreter prepares a JPEG, then each of the others
    got = run(
        "import sys\nfrom pathlib import Path\nfrom moderation.image import ImageIntake\n"
        f"folder, intake = Path({str(tmp_path)!r}), ImageIntake()\n"
        "first = intake.prepare((folder / 'jpeg').read_bytes())\n"
        "plugins = sorted(m for m in sys.modules if m.endswith('ImagePlugin'))\n"
        f"done = [intake.prepare((folder / fmt).read_bytes()).format for fmt in {formats!r}]\n"
        "print(first.format, ' '.join(done))\nprint(' '.join(plugins))"
    ).splitlines()
    # THEN every format was read, and the JPEG needed none of Pillow's forty-odd other plugins
    # (`Image.init()` imports them all; the five Pillow itself preloads are there)
    assert got[0] == "jpeg " + " ".join(formats)
    assert "PIL.PsdImagePlugin" not in got[1].split()
    assert "PIL.TiffImagePlugin" not in got[1].split()
