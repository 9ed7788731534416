"""Take the review page's screenshots in docs/images/ (run by hand; the PNGs are committed).

    python docs/screenshots.py

Builds a desk in a temporary folder with demo items, serves the review page on 127.0.0.1 and
photographs the item page and the queue page in Debian's chromium (Playwright drives it; it
never downloads a browser). Needs the `review` and `dev` extras and /usr/bin/chromium.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from moderation.audit import JsonlAuditLog
from moderation.policy import PolicyStore
from moderation.review import (
    AuditRecordSink,
    DeskRules,
    DirectoryImageStore,
    ItemFinding,
    ItemImage,
    ItemKind,
    NewItem,
    Reviewer,
    ReviewersFile,
    Role,
    SQLiteReviewDesk,
    add_reviewer,
)
from moderation.review.web import create_app

HERE = Path(__file__).resolve().parent
OUT = HERE / "images"
IMAGE = HERE.parent / "examples" / "images" / "cartoon-fight.png"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
GUIDANCE = (
    "Cartoon and game violence is fine for this audience when nobody is hurt in a realistic "
    "way. Real weapons, blood and injuries are not. When in doubt, reject and say why."
)
POLICIES = {
    "default": "default: {reject: 90, escalate: 60}\nescalation: {judge: none}\n",
    "kids": (
        "review: {sla: 4h, blur: [Violence, Explicit], priority: {Violence: 20}}\n"
        f"escalation: {{judge: none, guidance: '{GUIDANCE}'}}\n"
    ),
    "forum": "review: {sla: 24h}\n",
    "marketplace": "review: {sla: 2h}\n",
}
HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def demo_desk(root: Path, clock: Clock) -> SQLiteReviewDesk:
    """A desk with an appealed kids item on top and a realistic queue behind it."""
    desk = SQLiteReviewDesk(
        root / "desk.db", clock=clock, sink=AuditRecordSink(JsonlAuditLog(root / "audit.jsonl"))
    )
    store = DirectoryImageStore(root / "images")
    start = clock.now
    # The queue: forum and marketplace items of various ages, a few past due.
    for n, (tenant, age, sla) in enumerate(
        [("forum", 20, 24)] * 14 + [("forum", 26, 24)] * 3 + [("marketplace", 1.5, 2)] * 5
        + [("marketplace", 3, 2)] * 2 + [("kids", 0.5, 4)] * 4,
        start=1,
    ):  # fmt: skip
        clock.now = start - age * HOUR + n
        desk.enqueue(
            NewItem(decision_id=f"01DEMO{n:020d}", tenant=tenant),
            rules=DeskRules(sla_seconds=sla * HOUR),
        )
    # The item on the page: rejected yesterday by dana, appealed this morning.
    clock.now = start - 26 * HOUR
    item = desk.enqueue(
        NewItem(
            decision_id="01JF3QZ7K2M8D9XW4E6B1C5A0T",
            tenant="kids",
            reasons=(
                "Physical Violence 71.4% >= review 60 (rule 'Violence')",
                "Graphic Violence 48.2% >= escalate 40 (rule 'Violence')",
            ),
            findings=(
                ItemFinding(label="Physical Violence", confidence=71.4, band="review"),
                ItemFinding(label="Graphic Violence", confidence=48.2, band="escalate"),
            ),
            rationale=(
                "Two figures drawn in a cartoon style with a 'POW!' caption; no blood or "
                "realistic injury. Unsure whether the policy allows stylised fights."
            ),
            image=ItemImage(store_key=store.put(IMAGE.read_bytes())),
        ),
        rules=DeskRules(sla_seconds=4 * HOUR, priority=90),
        kind=ItemKind.REVIEW,
    )
    dana = Reviewer("dana", "*", Role.SENIOR)
    clock.now = start - 25 * HOUR
    assert desk.next(dana) is not None
    desk.decide(item.id, "reject", reviewer=dana, note="Looks like a fight.",
                categories=["Violence"])  # fmt: skip
    clock.now = start - 1.2 * HOUR
    desk.appeal(item.decision_id, "It is my son's drawing for the comic contest, nobody is hurt.")
    clock.now = start
    return desk


def serve(app: object) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clock = Clock()
        desk = demo_desk(root, clock)
        token = add_reviewer(root / "reviewers.yaml", "alice", ["kids", "forum", "marketplace"])
        app = create_app(
            desk,
            ReviewersFile(root / "reviewers.yaml"),
            DirectoryImageStore(root / "images"),
            PolicyStore.from_sources(POLICIES),
            clock=clock,
        )
        url, server, thread = serve(app)
        try:
            shoot(url, token)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            desk.close()


def shoot(url: str, token: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 960})
        page.goto(f"{url}/login")
        page.fill("#token", token)
        page.press("#token", "Enter")
        page.wait_for_url(f"{url}/")
        page.wait_for_function("document.querySelector('#shot').naturalWidth > 0")
        page.wait_for_timeout(300)
        page.screenshot(path=str(OUT / "review-item.png"), full_page=True)
        page.set_viewport_size({"width": 1100, "height": 480})
        page.goto(f"{url}/queue")
        page.screenshot(path=str(OUT / "review-queue.png"))
        browser.close()
    print(f"wrote {OUT / 'review-item.png'} and {OUT / 'review-queue.png'}")


if __name__ == "__main__":
    main()
