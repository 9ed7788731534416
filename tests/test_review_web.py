"""The review page through Starlette's TestClient: its routes, and every security rule (sessions,
CSRF, tenants, headers, cookie flags, the login slowdown, a blind QA item hiding the outcome)."""

from __future__ import annotations

import html as markup
import io
import itertools
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clirunner import runner
from PIL import Image

from moderation.audit import JsonlAuditLog, records
from moderation.cli import main
from moderation.decision import S3Identity
from moderation.errors import AWSError
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
    ReviewItem,
    Role,
    SQLiteReviewDesk,
    add_reviewer,
)
from moderation.review.web import COOKIE, ItemImages, create_app
from moderation.review.web._view import item_view, paragraphs
from moderation.review_records import AppealRecord, ReviewRecord

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx is what we have
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using `httpx` with `starlette.testclient` is deprecated"
)

START = 1_790_000_000.0
SECRET = "s" * 40
GUIDANCE = "Cartoon violence is fine for kids over 7; real weapons are not."
POLICIES = {
    "default": "default: {reject: 90, escalate: 60}\nescalation: {judge: none}\n",
    "kids": (
        "review: {blur: [Explicit], sla: 4h}\n"
        f"escalation: {{judge: none, guidance: '{GUIDANCE}'}}\n"
    ),
    "forum": "review: {sla: 1h}\n",
}
RATIONALE = "The judge thinks this is a replica rifle in a shop window."
REASON = "Explicit Nudity 72.0% >= review 60 (rule 'Explicit')"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


@dataclass
class Desk:
    desk: SQLiteReviewDesk
    store: DirectoryImageStore
    audit: Path
    reviewers: Path
    tokens: dict[str, str]
    clock: Clock
    sleeps: list[float]

    def add(
        self,
        n: int,
        tenant: str = "kids",
        *,
        kind: ItemKind = ItemKind.REVIEW,
        label: str = "Explicit Nudity",
        rules: DeskRules | None = None,
    ) -> ReviewItem:
        key = self.store.put(png((n * 20 % 255, 40, 90)))
        return self.desk.enqueue(
            NewItem(
                decision_id=f"01DEC{n:021d}",
                tenant=tenant,
                reasons=(REASON,),
                findings=(ItemFinding(label=label, confidence=72.0, band="review"),),
                rationale=RATIONALE,
                image=ItemImage(store_key=key),
            ),
            rules=rules or DeskRules(sla_seconds=4 * 3600),
            kind=kind,
        )

    def reviews(self) -> list[ReviewRecord]:
        if not self.audit.exists():
            return []
        return [r for r in records([self.audit]) if isinstance(r, ReviewRecord)]

    def app(self, **kwargs: Any) -> Any:
        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        kwargs.setdefault("secret", SECRET)
        return create_app(
            self.desk,
            ReviewersFile(self.reviewers),
            kwargs.pop("images", self.store),
            PolicyStore.from_sources(POLICIES),
            clock=self.clock,
            sleep=sleep,
            **kwargs,
        )

    def client(self, who: str | None = None, **kwargs: Any) -> TestClient:
        base = kwargs.pop("base_url", "http://testserver")
        client = TestClient(self.app(**kwargs), base_url=base, follow_redirects=False)
        if who is not None:
            response = client.post("/login", data={"token": self.tokens[who]})
            assert response.status_code == 303, response.text
        return client


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Desk]:
    clock = Clock()
    audit = tmp_path / "audit.jsonl"
    ids = (f"01ITEM{n:020d}" for n in itertools.count(1))  # in order of creation
    desk = SQLiteReviewDesk(
        tmp_path / "desk.db",
        clock=clock,
        sink=AuditRecordSink(JsonlAuditLog(audit)),
        new_id=lambda: next(ids),
    )
    reviewers = tmp_path / "reviewers.yaml"
    tokens = {
        "alice": add_reviewer(reviewers, "alice", ["kids", "forum"]),
        "bob": add_reviewer(reviewers, "bob", ["forum"]),
        "carol": add_reviewer(reviewers, "carol", ["kids"]),
        "sam": add_reviewer(reviewers, "sam", "*", role=Role.SENIOR),
    }
    yield Desk(desk, DirectoryImageStore(tmp_path / "images"), audit, reviewers, tokens, clock, [])
    desk.close()


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


# -- logging in --------------------------------------------------------------------------------


def test_every_route_but_login_needs_a_session(web: Desk) -> None:
    item = web.add(1)
    client = web.client()
    assert client.get("/login").status_code == 200
    for path in ("/", "/queue"):
        response = client.get(path)
        assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert client.get(f"/items/{item.id}/image").status_code == 403
    posted = client.post(f"/items/{item.id}/decision", data={"verdict": "approve", "csrf": "x"})
    assert posted.status_code == 403
    assert client.post("/logout", data={"csrf": "x"}).status_code == 403
    assert web.reviews() == []


def test_login_sets_a_signed_httponly_strict_cookie(web: Desk) -> None:
    client = web.client()
    response = client.post("/login", data={"token": web.tokens["alice"]})
    assert (response.status_code, response.headers["location"]) == (303, "/")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on 127.0.0.1
    assert web.tokens["alice"] not in cookie
    # a tampered cookie is no session
    client.cookies.set(COOKIE, client.cookies[COOKIE][:-2] + "xx")
    assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    ("base_url", "secure_cookies"),
    [("https://testserver", False), ("http://testserver", True)],
)
def test_the_cookie_is_secure_over_tls_or_when_told(
    web: Desk, base_url: str, secure_cookies: bool
) -> None:
    client = web.client(base_url=base_url, secure_cookies=secure_cookies)
    response = client.post("/login", data={"token": web.tokens["alice"]})
    assert "Secure" in response.headers["set-cookie"]


def test_failed_logins_are_slowed_down_more_each_time(web: Desk) -> None:
    client = web.client()
    for _ in range(3):
        response = client.post("/login", data={"token": "guess"})
        assert response.status_code == 401
        assert "That token is not valid." in response.text
    assert web.sleeps == [1.0, 2.0, 4.0]
    assert COOKIE not in client.cookies
    # a success starts again from the first delay
    assert client.post("/login", data={"token": web.tokens["bob"]}).status_code == 303
    client.post("/login", data={"token": "guess"})
    assert web.sleeps[-1] == 1.0
    # and so does a quarter of an hour without failures
    client.post("/login", data={"token": "guess"})
    web.clock.now += 901
    client.post("/login", data={"token": "guess"})
    assert web.sleeps[-2:] == [2.0, 1.0]
    # the delay stops growing at 30 s
    for _ in range(8):
        client.post("/login", data={"token": ""})
    assert web.sleeps[-1] == 30.0


def test_a_rotated_token_or_an_old_session_ends_the_session(web: Desk) -> None:
    client = web.client("alice")
    assert client.get("/").status_code == 200
    web.clock.now += 12 * 3600 + 1
    assert client.get("/").status_code == 303
    web.clock.now = START
    assert client.get("/").status_code == 200
    add_reviewer(web.reviewers, "alice", ["kids"], rotate=True)
    assert client.get("/").status_code == 303


def test_logout_clears_the_cookie(web: Desk) -> None:
    client = web.client("alice")
    page = client.get("/queue")
    response = client.post("/logout", data={"csrf": csrf(page.text)})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert COOKIE not in client.cookies
    assert client.get("/").status_code == 303


# -- the item page -------------------------------------------------------------------------------


def test_the_item_page_shows_the_evidence_and_blurs_for_the_tenant(web: Desk) -> None:
    item = web.add(1)  # kids: Explicit is blurred
    page = web.client("carol").get("/")
    assert page.status_code == 200
    html = page.text
    assert f'src="/items/{item.id}/image"' in html
    assert "blur-first" in html and 'id="reveal" class="toggle">' in html  # not checked
    for shown in ("Explicit Nudity", "72.0%", "band-review", REASON, RATIONALE, GUIDANCE):
        assert shown in markup.unescape(html), shown
    assert "due in 4 h 00 min" in html
    for key in ("<kbd>a</kbd>", "<kbd>r</kbd>", "<kbd>s</kbd>", "<kbd>v</kbd>", "<kbd>g</kbd>"):
        assert key in html
    assert 'name="categories" value="Violence"' in html


def test_an_image_outside_the_blur_categories_is_shown(web: Desk) -> None:
    web.add(1, "forum", label="Weapons")
    html = web.client("bob").get("/").text
    assert "blur-first" not in html and 'id="reveal" class="toggle" checked>' in html
    assert "overdue" not in html


def test_a_blind_qa_item_hides_what_the_machine_decided(web: Desk) -> None:
    item = web.add(1, "kids", kind=ItemKind.QA)
    html = web.client("carol").get("/").text
    assert item.id in html and "Blind QA" in html
    text = markup.unescape(html).replace("Non-Explicit Nudity", "")  # a tick box's category
    for hidden in ("Explicit Nudity", "72.0", "band-", "review 60", REASON, RATIONALE):
        assert hidden not in text, hidden
    assert "approved" not in html.lower() and "rejected" not in html.lower()
    assert "blur-first" in html  # wellbeing still holds


def test_an_appeal_shows_its_reason_and_the_earlier_verdicts(web: Desk) -> None:
    item = web.add(1, "forum", label="Weapons")
    alice = web.client("alice")
    page = alice.get("/")
    alice.post(
        f"/items/{item.id}/decision",
        data={"verdict": "reject", "note": "a real rifle", "csrf": csrf(page.text)},
    )
    web.desk.appeal(item.decision_id, "It is an airsoft replica, see the orange tip.")
    html = web.client("bob").get("/").text
    assert "Appeal" in html and "orange tip" in html
    assert "a real rifle" in html and "by alice (final)" in html
    assert len(web.reviews()) == 1
    assert any(isinstance(r, AppealRecord) for r in records([web.audit]))


def test_a_second_reviewer_does_not_see_the_first_verdict_of_the_round(web: Desk) -> None:
    item = web.add(1, "forum", label="Weapons", rules=DeskRules(reviewers=2))
    alice = web.client("alice")
    alice.post(
        f"/items/{item.id}/decision",
        data={"verdict": "reject", "note": "first look", "csrf": csrf(alice.get("/").text)},
    )
    bob = web.client("bob")
    assert "first look" not in bob.get("/").text
    bob.post(
        f"/items/{item.id}/decision",
        data={"verdict": "approve", "csrf": csrf(bob.get("/").text)},
    )
    # they disagreed: the senior sees both verdicts
    html = web.client("sam").get("/").text
    assert "Reviewers disagreed" in html and "first look" in html and "by bob" in html


# -- verdicts ----------------------------------------------------------------------------------


def test_a_verdict_is_recorded_with_its_reviewer_and_the_next_item_follows(web: Desk) -> None:
    first, second = web.add(1), web.add(2)
    client = web.client("carol")
    page = client.get("/")
    assert first.id in page.text
    response = client.post(
        f"/items/{first.id}/decision",
        data={
            "verdict": "reject",
            "note": "clearly explicit",
            "categories": ["Explicit", "Violence"],
            "csrf": csrf(page.text),
        },
    )
    assert (response.status_code, response.headers["location"]) == (303, "/?last=reject")
    (record,) = web.reviews()
    assert (record.item_id, record.reviewer, record.verdict) == (first.id, "carol", "reject")
    assert record.note == "clearly explicit" and record.categories == ("Explicit", "Violence")
    assert record.final
    following = client.get("/?last=reject")
    assert second.id in following.text and "Rejected." in following.text


def test_skip_releases_the_item_and_is_recorded(web: Desk) -> None:
    first, second = web.add(1), web.add(2)
    client = web.client("carol")
    page = client.get("/")
    response = client.post(
        f"/items/{first.id}/decision", data={"verdict": "skip", "csrf": csrf(page.text)}
    )
    assert response.status_code == 303
    assert [(r.verdict, r.final) for r in web.reviews()] == [("skip", False)]
    assert second.id in client.get("/").text


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_a_post_without_the_sessions_csrf_token_is_refused(web: Desk, token: str | None) -> None:
    item = web.add(1)
    client = web.client("carol")
    client.get("/")
    data = {"verdict": "approve"} if token is None else {"verdict": "approve", "csrf": token}
    response = client.post(f"/items/{item.id}/decision", data=data)
    assert response.status_code == 403
    assert web.reviews() == []
    # another session's token is no better
    other = web.client("carol")
    response = client.post(
        f"/items/{item.id}/decision", data={"verdict": "approve", "csrf": csrf(other.get("/").text)}
    )
    assert response.status_code == 403 and web.reviews() == []
    assert client.post("/logout", data=data).status_code == 403


def test_a_verdict_on_a_lost_lease_is_a_clear_409(web: Desk) -> None:
    item = web.add(1, "forum", label="Weapons")
    alice = web.client("alice")
    token = csrf(alice.get("/").text)
    web.clock.now += 601  # alice's lease expires and bob takes the item
    assert item.id in web.client("bob").get("/").text
    response = alice.post(f"/items/{item.id}/decision", data={"verdict": "approve", "csrf": token})
    assert response.status_code == 409
    assert "no longer yours" in response.text and "not recorded" in response.text
    assert web.reviews() == []


def test_a_verdict_on_another_tenants_item_or_a_bad_verdict_is_refused(web: Desk) -> None:
    kids = web.add(1, "kids")
    bob = web.client("bob")
    web.add(2, "forum", label="Weapons")
    token = csrf(bob.get("/").text)
    assert (
        bob.post(
            f"/items/{kids.id}/decision", data={"verdict": "approve", "csrf": token}
        ).status_code
        == 403
    )
    assert (
        bob.post("/items/nope/decision", data={"verdict": "approve", "csrf": token}).status_code
        == 404
    )
    forum = web.desk.find("01DEC000000000000000000002")
    assert forum is not None
    assert (
        bob.post(
            f"/items/{forum.id}/decision", data={"verdict": "maybe", "csrf": token}
        ).status_code
        == 400
    )
    long_note = {"verdict": "approve", "note": "x" * 2001, "csrf": token}
    response = bob.post(f"/items/{forum.id}/decision", data=long_note)
    assert response.status_code == 400 and "2000" in response.text
    assert web.reviews() == []


# -- images ------------------------------------------------------------------------------------


def test_the_image_is_served_to_the_reviewer_holding_the_item_only(web: Desk) -> None:
    item = web.add(1, "forum", label="Weapons")
    alice = web.client("alice")
    alice.get("/")
    response = alice.get(f"/items/{item.id}/image")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "no-store"
    assert response.content == web.store.get(item.image.store_key)  # type: ignore[union-attr]
    # carol is not granted forum; bob is, but does not hold the item
    assert web.client("carol").get(f"/items/{item.id}/image").status_code == 403
    assert web.client("bob").get(f"/items/{item.id}/image").status_code == 403
    assert alice.get("/items/nope/image").status_code == 404


def test_an_image_purged_from_the_store_is_a_404_page(web: Desk) -> None:
    item = web.add(1, "forum", label="Weapons")
    web.store.delete(item.image.store_key)  # type: ignore[union-attr]
    alice = web.client("alice")
    alice.get("/")
    response = alice.get(f"/items/{item.id}/image")
    assert response.status_code == 404 and "no longer in the image store" in response.text


class FakeS3:
    def __init__(self, data: bytes | AWSError) -> None:
        self.data = data
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def get(self, bucket: str, key: str, **kwargs: Any) -> bytes:
        self.calls.append((bucket, key, kwargs))
        if isinstance(self.data, AWSError):
            raise self.data
        return self.data


def s3_item(web: Desk) -> ReviewItem:
    where = S3Identity(bucket="uploads", key="u/1.png", version_id="v1", etag='"abc"')
    return web.desk.enqueue(
        NewItem(decision_id="01DECS3", tenant="forum", image=ItemImage(s3=where))
    )


def test_an_s3_image_is_read_at_the_version_and_etag_moderated(web: Desk) -> None:
    item = s3_item(web)
    s3 = FakeS3(png())
    client = web.client(images=ItemImages(web.store, s3=s3))
    client.post("/login", data={"token": web.tokens["bob"]})
    assert item.id in client.get("/").text
    response = client.get(f"/items/{item.id}/image")
    assert response.status_code == 200 and response.content == png()
    ((bucket, key, kwargs),) = s3.calls
    assert (bucket, key, kwargs["version_id"], kwargs["if_match"]) == (
        "uploads",
        "u/1.png",
        "v1",
        '"abc"',
    )


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (AWSError("gone", kind="not found"), 404, "S3 object is gone"),
        (AWSError("etag", kind="changed"), 404, "changed since the decision"),
        (AWSError("throttled", kind="throttled"), 502, "S3 did not give the image"),
    ],
)
def test_an_s3_image_that_cannot_be_read_is_named(
    web: Desk, error: AWSError, status: int, text: str
) -> None:
    item = s3_item(web)
    client = web.client(images=ItemImages(web.store, s3=FakeS3(error)))
    client.post("/login", data={"token": web.tokens["bob"]})
    client.get("/")
    response = client.get(f"/items/{item.id}/image")
    assert response.status_code == status and text in response.text


# -- the queue ---------------------------------------------------------------------------------


def test_the_queue_shows_depth_age_and_breaches_of_granted_tenants_only(web: Desk) -> None:
    web.add(1, "forum", label="Weapons", rules=DeskRules(sla_seconds=60))
    web.clock.now += 30 * 60
    web.add(2, "forum", label="Weapons")
    web.add(3, "kids")
    html = web.client("bob").get("/queue").text
    assert "forum" in html and "kids" not in html
    assert re.search(r"forum</th>\s*<td class=\"num\">2</td>", html)
    assert "30 min" in html and '<span class="badge late">1</span>' in html
    both = web.client("alice").get("/queue").text
    assert "kids" in both and "forum" in both


def test_the_empty_desk_says_so_and_looks_again(web: Desk) -> None:
    html = web.client("bob").get("/").text
    assert "Nothing waiting for you" in html
    assert 'http-equiv="refresh" content="30"' in html


# -- headers -----------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(web: Desk) -> None:
    item = web.add(1, "forum", label="Weapons")
    client = web.client("alice")
    responses = [
        client.get("/"),
        client.get("/queue"),
        client.get(f"/items/{item.id}/image"),
        client.get("/static/desk.js"),
        client.get("/static/nope.js"),
        web.client().get("/login"),
        web.client().post("/login", data={"token": "no"}),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert responses[0].headers["cache-control"] == "no-store"
    assert responses[3].headers["content-type"].startswith("text/javascript")


def test_pages_hold_no_inline_script_or_style(web: Desk) -> None:
    web.add(1)
    client = web.client("carol")
    for html in (client.get("/").text, client.get("/queue").text, web.client().get("/login").text):
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
        assert re.findall(r"\son[a-z]+=", html) == []
        assert "style=" not in html and "<style" not in html


# -- the view's rules without a server ---------------------------------------------------------


def test_without_policies_the_image_is_blurred_to_be_safe(web: Desk) -> None:
    item = web.add(1, "forum", label="Weapons")
    view = item_view(item, None, Reviewer("x", "*"), item.created_at)
    assert view.blurred and view.guidance == ()


def test_guidance_wrapped_in_its_yaml_file_reads_as_paragraphs() -> None:
    text = "Reject anything a parent would not want a\nchild to see.\n\nCartoons are fine.\n"
    assert paragraphs(text) == (
        "Reject anything a parent would not want a child to see.",
        "Cartoons are fine.",
    )
    assert paragraphs("  \n\n ") == ()


# -- the command -------------------------------------------------------------------------------


def test_serve_builds_the_app_on_loopback_with_the_audit_sink(
    web: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: list[tuple[str, str]] = []

    def run(app: Any, **kwargs: Any) -> None:
        # THEN it binds loopback:8080, and its app records verdicts in --audit
        assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", 8080)
        client = TestClient(app, follow_redirects=False)
        client.post("/login", data={"token": web.tokens["bob"]})
        page = client.get("/")
        item_id = re.search(r"/items/([0-9A-Za-z]+)/image", page.text)
        assert item_id is not None
        client.post(
            f"/items/{item_id.group(1)}/decision",
            data={"verdict": "approve", "csrf": csrf(page.text)},
        )
        served.extend(
            (r.reviewer, r.verdict) for r in records([audit]) if isinstance(r, ReviewRecord)
        )

    monkeypatch.setattr(uvicorn, "run", run)
    policies = tmp_path / "policies"
    (policies / "tenants").mkdir(parents=True)
    (policies / "default.yaml").write_text(POLICIES["default"])
    (policies / "tenants" / "forum.yaml").write_text(POLICIES["forum"])
    audit = tmp_path / "served.jsonl"
    web.add(1, "forum", label="Weapons")
    result = runner().invoke(
        main,
        ["review", "serve", "--reviewers", str(web.reviewers), "--desk",
         f"sqlite:///{tmp_path / 'desk.db'}", "--policies", str(policies), "--audit", str(audit),
         "--images", str(tmp_path / "images")],
        env={"MODERATION_REVIEW_SECRET": SECRET},
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert served == [("bob", "approve")]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--desk", "sqlite:///d.db"], {}, "--audit"),
        (["--audit", "a.jsonl"], {}, "--desk"),
        (["--desk", "sqlite:///d.db", "--audit", "a.jsonl"], {"MODERATION_REVIEW_SECRET": "short"},
         "MODERATION_REVIEW_SECRET"),
    ],
)  # fmt: skip
def test_serve_names_what_is_missing(
    web: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
    env: dict[str, str], expected: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODERATION_REVIEW", raising=False)
    monkeypatch.delenv("MODERATION_AUDIT", raising=False)
    result = runner().invoke(
        main, ["review", "serve", "--reviewers", str(web.reviewers), *args], env=env
    )
    assert result.exit_code == 2 and expected in result.stderr


def test_serve_names_a_bad_reviewers_file(tmp_path: Path) -> None:
    bad = tmp_path / "reviewers.yaml"
    bad.write_text("reviewers: [{name: x}]")
    result = runner().invoke(
        main,
        ["review", "serve", "--reviewers", str(bad), "--desk", "sqlite:///d.db", "--audit", "a"],
    )
    assert result.exit_code == 2 and str(bad) in result.stderr and "entry 1 ('x')" in result.stderr


@pytest.mark.parametrize("missing", ["uvicorn", "python_multipart", "jinja2"])
def test_serve_without_the_review_extra_names_it(
    web: Desk, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    for loaded in [m for m in sys.modules if m.startswith("moderation.review.web")]:
        monkeypatch.delitem(sys.modules, loaded)
    result = runner().invoke(main, ["review", "serve", "--reviewers", str(web.reviewers)])
    assert result.exit_code == 2
    assert "`review` extra" in result.stderr and "moderation[review]" in result.stderr
    assert f"missing: {missing}" in result.stderr


class FailingSink:
    def append_review(self, record: object) -> None:
        raise OSError("the audit disk is full")


def test_a_verdict_the_audit_log_cannot_take_is_not_kept(web: Desk, tmp_path: Path) -> None:
    # GIVEN a desk whose audit log fails
    desk = SQLiteReviewDesk(tmp_path / "failing.db", clock=web.clock, sink=FailingSink())
    web.desk = desk
    item = web.add(1, "forum", label="Weapons")
    client = web.client("bob")
    page = client.get("/")
    # WHEN bob rejects it
    response = client.post(
        f"/items/{item.id}/decision", data={"verdict": "reject", "csrf": csrf(page.text)}
    )
    # THEN he is told, and the desk kept no verdict: the item is still his to judge
    assert response.status_code == 503 and "the audit disk is full" in response.text
    assert desk.get(item.id).verdicts == () and desk.get(item.id).lease_holder == "bob"
    desk.close()


# -- golden items ------------------------------------------------------------------------------


def test_a_golden_showing_renders_exactly_like_a_review_item(web: Desk) -> None:
    # GIVEN a golden item of kids with the same evidence as a review item, brought along by it
    key = web.store.put(png((1, 2, 3)))
    web.desk.add_golden(
        NewItem(
            decision_id=f"01DEC{99:021d}",
            tenant="kids",
            reasons=(REASON,),
            findings=(ItemFinding(label="Explicit Nudity", confidence=72.0, band="review"),),
            rationale=RATIONALE,
            image=ItemImage(store_key=key),
        ),
        "reject",
    )
    item = web.add(1, rules=DeskRules(sla_seconds=4 * 3600, golden_rate=1.0))
    client = web.client("carol")
    # WHEN carol judges the review item and then is offered the next
    first = client.get("/").text
    assert item.id in first
    client.post(f"/items/{item.id}/decision", data={"verdict": "approve", "csrf": csrf(first)})
    second = client.get("/").text
    showing = re.search(r'action="/items/([^/]+)/decision"', second)
    assert showing is not None and showing.group(1) != item.id
    # THEN the two pages differ only in the item id and the decision id
    assert f"01DEC{99:021d}" in second and f"01DEC{99:021d}" not in first

    def blank(html: str, item_id: str, decision_id: str) -> str:
        return html.replace(item_id, "ITEM").replace(decision_id, "DECISION")

    assert blank(second, showing.group(1), f"01DEC{99:021d}") == blank(
        first, item.id, item.decision_id
    )
    # AND its image is served like any other; the verdict on it is recorded as golden
    assert client.get(f"/items/{showing.group(1)}/image").content == png((1, 2, 3))
    response = client.post(
        f"/items/{showing.group(1)}/decision", data={"verdict": "approve", "csrf": csrf(second)}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/?last=approve")
    judged = web.reviews()[-1]
    assert (judged.item_kind, judged.golden_answer, judged.final) == ("golden", "reject", False)
