"""Engine.amoderate under asyncio, FastAPI and Starlette, and Engine.close; the README's async and
batch examples, run as written.

Nothing here is timed: that amoderate leaves the event loop free is shown by a detector that can
only finish once a coroutine on that loop has run (a blocked loop would deadlock, which a
generous timeout turns into a failure).
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import builders
import pytest
from builders import audited
from counting import CountingLimiter
from images import solid

from moderation import (
    Decision,
    Detection,
    DetectorError,
    Engine,
    InvalidImage,
    Outcome,
    PolicyStore,
    UnknownTenant,
)
from moderation.audit import InMemoryAuditLog
from moderation.image import PreparedImage
from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

ROOT = Path(__file__).resolve().parent.parent

POLICIES = builders.store(
    kids="min_confidence: 30\ndefault: {reject: 60, escalate: 30}\nescalation: {judge: none}\n"
)
IMAGE = solid("jpeg", (120, 90))
CLEAN = builders.detection()
SWIMWEAR = builders.detection(("Swimwear or Underwear", "", 70.0))


def wait_for(event: threading.Event, what: str) -> None:
    """Wait for `event`; a generous bound turns a deadlock into a failure, not a hang."""
    if not event.wait(10):
        raise AssertionError(f"timed out waiting for {what}")


class Answering:
    """A detector answering `answer`; `hook()` runs first. Keeps the threads it ran on."""

    def __init__(self, answer: Detection | Exception = CLEAN, hook: Any = None) -> None:
        self.answer = answer
        self.hook = hook
        self.threads: list[threading.Thread] = []

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        self.threads.append(threading.current_thread())
        if self.hook is not None:
            self.hook()
        if isinstance(self.answer, Exception):
            raise self.answer.with_traceback(None)
        return self.answer


def make_engine(detector: Any, **kwargs: Any) -> Engine:
    """An engine on POLICIES whose timer stands still: decisions made at once compare equal."""
    return builders.engine(POLICIES, detector, timer=lambda: 0.0, **kwargs)


# -- amoderate is moderate ----------------------------------------------------------------------


def test_amoderate_returns_the_decision_moderate_returns() -> None:
    engine = make_engine(Answering(SWIMWEAR))
    try:
        awaited = asyncio.run(engine.amoderate(IMAGE, tenant="kids", context={"upload_id": "u"}))
        called = engine.moderate(IMAGE, tenant="kids", context={"upload_id": "u"})
    finally:
        engine.close()
    assert isinstance(awaited, Decision)
    assert (awaited.outcome, awaited.tenant) == (Outcome.REJECTED, "kids")  # 70 >= reject 60
    assert awaited.model_dump() == called.model_dump()
    assert audited(engine) == [awaited, called]


@pytest.mark.parametrize(
    ("image", "tenant", "detector", "error"),
    [
        (IMAGE, "nobody", Answering(), UnknownTenant),
        (b"meeting notes", "default", Answering(), InvalidImage),
        (IMAGE, "default", Answering(DetectorError("Rekognition is down")), DetectorError),
    ],
    ids=["unknown-tenant", "not-an-image", "detector-down"],
)
def test_amoderate_raises_what_moderate_raises(
    image: bytes, tenant: str, detector: Answering, error: type[Exception]
) -> None:
    engine = make_engine(detector)
    try:
        with pytest.raises(error):
            asyncio.run(engine.amoderate(image, tenant=tenant))
    finally:
        engine.close()
    assert audited(engine) == []


def test_amoderate_sees_the_callers_context_variables() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    seen: list[str] = []
    engine = make_engine(Answering(hook=lambda: seen.append(request_id.get("unset"))))

    async def handler() -> Decision:
        request_id.set("req-7")
        return await engine.amoderate(IMAGE)

    try:
        asyncio.run(handler())
    finally:
        engine.close()
    assert seen == ["req-7"]


# -- the event loop is never blocked ------------------------------------------------------------


def test_amoderate_leaves_the_event_loop_free_while_the_detector_works() -> None:
    entered = threading.Event()
    released = threading.Event()  # set only by a coroutine running on the event loop

    def hook() -> None:
        entered.set()
        wait_for(released, "a coroutine on the event loop (is the loop blocked?)")

    detector = Answering(hook=hook)
    engine = make_engine(detector)

    async def release() -> None:
        await asyncio.get_running_loop().run_in_executor(None, wait_for, entered, "the detector")
        released.set()

    async def main() -> tuple[Decision, threading.Thread]:
        decision, _ = await asyncio.gather(engine.amoderate(IMAGE), release())
        return decision, threading.current_thread()

    try:
        decision, loop_thread = asyncio.run(main())
    finally:
        engine.close()
    assert decision.outcome is Outcome.APPROVED
    [worker] = detector.threads
    assert worker is not loop_thread and worker.name.startswith("amoderate")


class Concurrency:
    """A detector counting how many calls are inside it at once. The first `together` calls meet
    at a barrier, so that many must be able to run at the same time."""

    def __init__(self, together: int) -> None:
        self.together = together
        self.barrier = threading.Barrier(together)
        self._lock = threading.Lock()
        self.calls = 0
        self.inside = 0
        self.most_inside = 0
        self.threads: set[threading.Thread] = set()

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        with self._lock:
            self.calls += 1
            call = self.calls
            self.threads.add(threading.current_thread())
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            if call <= self.together:
                self.barrier.wait(timeout=10)
            return CLEAN
        finally:
            with self._lock:
                self.inside -= 1


def test_a_thousand_concurrent_calls_share_one_limiter_and_the_engine_threads() -> None:
    workers = 4
    limiter = CountingLimiter()
    detector = Concurrency(together=workers)
    engine = make_engine(detector, rekognition_tps=limiter, async_workers=workers)

    async def main() -> list[Decision]:
        return await asyncio.gather(
            *(engine.amoderate(IMAGE, context={"n": n}) for n in range(1000))
        )

    try:
        decisions = asyncio.run(main())
    finally:
        engine.close()
    assert [d.context["n"] for d in decisions] == list(range(1000))
    assert {d.outcome for d in decisions} == {Outcome.APPROVED}
    assert (limiter.n_acquired, limiter.n_succeeded, limiter.n_throttled) == (1000, 1000, 0)
    assert detector.calls == 1000
    # Every call ran on one of the engine's `workers` threads, all of them at once at the start.
    assert len(detector.threads) == workers
    assert all(t.name.startswith("amoderate") for t in detector.threads)
    assert detector.most_inside == workers
    assert len(audited(engine)) == 1000


def test_async_workers_must_be_a_whole_number_of_at_least_one() -> None:
    with pytest.raises(ValueError, match="async_workers must be at least 1, got 0"):
        make_engine(Answering(), async_workers=0)
    with pytest.raises(ValueError, match="async_workers must be a whole number, got True"):
        make_engine(Answering(), async_workers=True)


# -- cancellation and close ---------------------------------------------------------------------


def test_a_cancelled_call_still_finishes_and_is_audited() -> None:
    entered = threading.Event()
    go = threading.Event()

    def hook() -> None:
        entered.set()
        wait_for(go, "the test to let the detector answer")

    engine = make_engine(Answering(hook=hook))

    async def main() -> None:
        task = asyncio.create_task(engine.amoderate(IMAGE))
        await asyncio.get_running_loop().run_in_executor(None, wait_for, entered, "the detector")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert audited(engine) == []  # still with the detector
    go.set()
    engine.close()  # waits for it
    [decision] = audited(engine)
    assert decision.outcome is Outcome.APPROVED


def test_close_stops_the_engine_threads_and_may_be_called_again() -> None:
    detector = Answering()
    engine = make_engine(detector, async_workers=3)

    async def main() -> None:
        await asyncio.gather(*(engine.amoderate(IMAGE) for _ in range(6)))

    asyncio.run(main())
    threads = set(detector.threads)
    assert 1 <= len(threads) <= 3
    assert all(t.name.startswith("amoderate") and t.is_alive() for t in threads)
    engine.close()
    assert not any(t.is_alive() for t in threads)
    engine.close()
    make_engine(Answering()).close()  # an engine that never ran a call has nothing to stop


def test_close_waits_for_the_calls_in_progress() -> None:
    entered = threading.Event()
    go = threading.Event()

    def hook() -> None:
        entered.set()
        wait_for(go, "the test to let the detector answer")

    engine = make_engine(Answering(hook=hook))
    results: list[Decision] = []
    caller = threading.Thread(target=lambda: results.append(asyncio.run(engine.amoderate(IMAGE))))
    caller.start()
    wait_for(entered, "the detector")
    decisions_when_closed: list[int] = []
    closer = threading.Thread(
        target=lambda: (engine.close(), decisions_when_closed.append(len(audited(engine))))
    )
    closer.start()
    go.set()
    closer.join()
    caller.join()
    assert decisions_when_closed == [1]  # close returned only once the decision was written
    assert [d.id for d in results] == [d.id for d in audited(engine)]


# -- the README's FastAPI and Starlette handlers, under their TestClients -----------------------


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if marker in b]
    assert len(blocks) == 1, f"one README example with {marker!r}, found {len(blocks)}"
    return blocks[0]


class OnThreads:
    """Wraps a detector, keeping the threads it was called on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.threads: set[threading.Thread] = set()

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        self.threads.add(threading.current_thread())
        result: Detection = self.inner.detect(image, min_confidence=min_confidence)
        return result


@pytest.fixture
def recorded_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The engine `Engine.from_env()` gives the README examples: the sample policies, answering
    from recorded Rekognition and Bedrock responses, auditing in memory."""
    recordings = Recordings.load(ROOT / "examples/recordings")
    engine = Engine(
        PolicyStore(ROOT / "policies"),
        OnThreads(RecordedDetector(recordings)),
        RecordedJudge(recordings),
        InMemoryAuditLog(),
    )
    monkeypatch.setattr(Engine, "from_env", classmethod(lambda cls, env=None: engine))
    yield engine
    engine.close()


def readme_app(marker: str) -> Any:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_block(marker), "README.md", "exec"), namespace)
    # One account per tenant the tests moderate under; `kidz` has no policy.
    namespace["ACCOUNTS"].update({f"key-{t}": t for t in ("default", "kids", "kidz", "Kids!")})
    return namespace["app"]


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer key-{tenant}"}


APPS = [
    pytest.param("FastAPI(", "fastapi.testclient", id="fastapi"),
    pytest.param("Starlette(", "starlette.testclient", id="starlette"),
]
CASES = [
    # image, tenant, status, outcome
    ("landscape.png", "default", 201, "approved"),
    ("beach.jpg", "default", 201, "approved"),
    ("beach.jpg", "kids", 422, "rejected"),
    ("cartoon-fight.png", "default", 201, "approved"),  # escalated; the judge approved
    ("surgery.jpg", "default", 422, "rejected"),  # the judge's filter blocked: on_blocked
]


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
@pytest.mark.parametrize(("marker", "client_module"), APPS)
def test_readme_async_upload_handler(
    recorded_engine: Engine, marker: str, client_module: str
) -> None:
    import importlib

    test_client = importlib.import_module(client_module).TestClient
    app = readme_app(marker)
    detector = recorded_engine.detector
    assert isinstance(detector, OnThreads)
    answers = []
    with test_client(app) as client:  # runs the lifespan: the engine is closed on leaving
        for n, (image, tenant, _, _) in enumerate(CASES):
            response = client.post(
                f"/uploads?upload_id=up-{n}&tenant=default",  # a tenant asked for is ignored
                content=(ROOT / "examples/images" / image).read_bytes(),
                headers={"Content-Type": "application/octet-stream", **auth(tenant)},
            )
            answers.append((response.status_code, response.json()))
        not_an_image = client.post("/uploads", content=b"meeting notes", headers=auth("default"))
        unknown = client.post("/uploads", content=b"x" * 100, headers=auth("kidz"))
        invalid = client.post("/uploads", content=b"x" * 100, headers=auth("Kids!"))
        no_key = client.post("/uploads", content=b"x" * 100)
        bad_key = client.post("/uploads", content=b"x" * 100, headers=auth("nobody"))
        threads = set(detector.threads)
        assert threads and all(t.is_alive() for t in threads)
    assert not any(t.is_alive() for t in threads)  # the lifespan closed the engine

    decisions = audited(recorded_engine)
    assert [(status, body["outcome"]) for status, body in answers] == [
        (status, outcome) for _, _, status, outcome in CASES
    ]
    assert [body["decision"] for _, body in answers] == [d.id for d in decisions]
    assert [(d.tenant, d.context) for d in decisions] == [
        (tenant, {"upload_id": f"up-{n}"}) for n, (_, tenant, _, _) in enumerate(CASES)
    ]
    assert not_an_image.status_code == 415
    assert "not an image" in not_an_image.json()["error"]
    no_policy = {"error": "this account has no moderation policy"}
    assert (unknown.status_code, unknown.json()) == (403, no_policy)
    assert (invalid.status_code, invalid.json()) == (403, no_policy)
    assert no_key.status_code == 401  # FastAPI's HTTPBearer, or the Starlette handler itself
    assert bad_key.status_code == 401


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
@pytest.mark.parametrize(("marker", "client_module"), APPS)
def test_readme_async_upload_handler_answers_503_when_the_detector_fails(
    monkeypatch: pytest.MonkeyPatch, marker: str, client_module: str
) -> None:
    import importlib

    engine = Engine(
        PolicyStore(ROOT / "policies"),
        Answering(DetectorError("Rekognition DetectModerationLabels failed after 4 attempts")),
        audit=InMemoryAuditLog(),
    )
    monkeypatch.setattr(Engine, "from_env", classmethod(lambda cls, env=None: engine))
    test_client = importlib.import_module(client_module).TestClient
    with test_client(readme_app(marker)) as client:
        response = client.post(
            "/uploads",
            content=(ROOT / "examples/images/beach.jpg").read_bytes(),
            headers=auth("default"),
        )
    assert (response.status_code, response.json()) == (
        503,
        {"error": "moderation is unavailable, try again later"},
    )
    assert audited(engine) == []


# -- the README's many-images example -----------------------------------------------------------


def test_readme_many_images_example(
    recorded_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for name in ("beach.jpg", "couple.jpg", "surgery.jpg", "truncated.jpg", "landscape.png"):
        shutil.copy(ROOT / "examples/images" / name, uploads / name)
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_block("moderate_many("), "README.md", "exec"), {"__name__": "example"})
    lines = sorted(capsys.readouterr().out.splitlines())
    # forum: swimwear and kissing are allowed; surgery's gore (91.3 %) is borderline there, and
    # forum has no judge, so it goes to a person.
    assert lines[:3] == ["beach.jpg approved", "couple.jpg approved", "surgery.jpg review"]
    assert lines[3].startswith("truncated.jpg failed: ")
    assert len(lines) == 4  # landscape.png is not a *.jpg
    assert {d.tenant for d in audited(recorded_engine)} == {"forum"}
    assert sorted(d.outcome for d in audited(recorded_engine)) == [
        "approved",
        "approved",
        "review",
    ]
