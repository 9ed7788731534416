"""The review page in a real browser: Debian's chromium, driven by Playwright, against the app
served by uvicorn on 127.0.0.1. A reviewer logs in, sees a blurred image, unblurs it with `v`,
rejects it with `r`, gets the next item, and the verdict is in the audit log.

Playwright never downloads a browser here: it drives /usr/bin/chromium (`make system` installs
Debian's `chromium`). A missing browser or driver fails the test, naming what to install.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from moderation import wiring
from moderation.audit import JsonlAuditLog, records
from moderation.policy import PolicyStore
from moderation.review import (
    DirectoryImageStore,
    ItemFinding,
    ItemImage,
    NewItem,
    ReviewDesk,
    ReviewersFile,
    ReviewItem,
    add_reviewer,
)
from moderation.review.web import create_app
from moderation.review_records import ReviewRecord
from moderation.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
POLICIES = {
    "default": "default: {reject: 90, escalate: 60}\nescalation: {judge: none}\n",
    "kids": "review: {blur: [Explicit], sla: 4h}\n",
    "forum": "review: {sla: 1h}\n",
}


def sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.fail(
            "the browser test needs Playwright's Python package: pip install playwright "
            "(the `dev` extra has it; never `playwright install`: it drives Debian's chromium)"
        )
    return start()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"no browser at {CHROMIUM}: install Debian's `chromium` package "
            "(apt-get install chromium, or `make system`)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Served:
    url: str
    desk: ReviewDesk
    audit: Path
    tokens: dict[str, str]
    items: list[ReviewItem]


def png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(out, "PNG")
    return out.getvalue()


def serve(app: Any) -> tuple[str, Any, threading.Thread]:
    """`app` under uvicorn on a free port of 127.0.0.1, in a thread; its URL once it listens."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("browser")
    audit = root / "audit.jsonl"
    # The desk as `moderation review serve` and the engine build it: its verdicts go to the
    # audit log through the record sink `moderation.wiring` joins to it.
    settings = Settings(review=f"sqlite:///{root / 'desk.db'}", audit=str(audit))
    desk = wiring.review_desk(settings, JsonlAuditLog(audit))
    assert desk is not None
    store = DirectoryImageStore(root / "images")
    items = [
        desk.enqueue(
            NewItem(
                decision_id=f"01DECBROWSER{n:014d}",
                tenant="kids",
                reasons=("Explicit Nudity 72.0% >= review 60 (rule 'Explicit')",),
                findings=(ItemFinding(label="Explicit Nudity", confidence=72.0, band="review"),),
                image=ItemImage(store_key=store.put(png(colour))),
            )
        )
        for n, colour in enumerate([(180, 60, 60), (60, 120, 180)], start=1)
    ]
    reviewers = root / "reviewers.yaml"
    tokens = {
        "alice": add_reviewer(reviewers, "alice", ["kids"]),
        "bob": add_reviewer(reviewers, "bob", ["forum"]),
    }
    app = create_app(
        desk,
        ReviewersFile(reviewers),
        store,
        PolicyStore.from_sources(POLICIES),
        secret="b" * 40,
    )
    url, server, thread = serve(app)
    yield Served(url, desk, audit, tokens, items)
    server.should_exit = True
    thread.join(timeout=10)
    desk.close()


def log_in(page: Any, served: Served, who: str) -> None:
    page.goto(f"{served.url}/login")
    page.fill("#token", served.tokens[who])
    page.press("#token", "Enter")
    page.wait_for_url(f"{served.url}/")


def image_filter(page: Any) -> str:
    return str(page.eval_on_selector("#shot", "img => getComputedStyle(img).filter"))


def settled_filter(page: Any, expected: str) -> str:
    """The image's CSS filter once it contains `expected` (the change is animated)."""
    page.wait_for_function(
        "want => getComputedStyle(document.querySelector('#shot')).filter.includes(want)",
        arg=expected,
        timeout=3000,
    )
    return image_filter(page)


def test_a_reviewer_works_an_item_with_the_keys(browser: Any, served: Served) -> None:
    context = browser.new_context()
    page = context.new_page()
    first, second = served.items
    # GIVEN alice logged in: the first item, its image blurred for the kids' Explicit rule
    log_in(page, served, "alice")
    assert first.id in page.content()
    page.wait_for_function("document.querySelector('#shot').naturalWidth > 0")
    assert "blur" in image_filter(page)
    # WHEN she presses v: the image is shown; g turns it gray, g again back
    page.keyboard.press("v")
    assert settled_filter(page, "none") == "none"
    page.keyboard.press("g")
    assert settled_filter(page, "grayscale(1)") == "grayscale(1)"
    page.keyboard.press("g")
    assert settled_filter(page, "none") == "none"
    # AND typing a, r, s in the note fires no key
    page.fill("#note", "")
    page.type("#note", "a replica? rs")
    page.keyboard.press("Escape")  # leaves the note: the keys work again
    assert page.url == f"{served.url}/" and first.id in page.content()
    # WHEN she presses r: the verdict is sent and the next item is shown
    page.keyboard.press("r")
    page.wait_for_url(f"{served.url}/?last=reject")
    assert second.id in page.content() and "Rejected." in page.content()
    # THEN the audit log holds her verdict, with her note
    found = [r for r in records([served.audit]) if isinstance(r, ReviewRecord)]
    assert [(r.item_id, r.reviewer, r.verdict, r.note) for r in found] == [
        (first.id, "alice", "reject", "a replica? rs")
    ]
    # AND a POST without the CSRF token is refused, even with her session cookie
    response = context.request.post(
        f"{served.url}/items/{second.id}/decision", form={"verdict": "approve"}
    )
    assert response.status == 403
    assert len([r for r in records([served.audit]) if isinstance(r, ReviewRecord)]) == 1
    context.close()


def test_a_reviewer_of_another_tenant_gets_403_on_the_image(browser: Any, served: Served) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, served, "bob")
    response = page.goto(f"{served.url}/items/{served.items[0].id}/image")
    assert response is not None and response.status == 403
    assert "Not your tenant" in page.content()
    context.close()
