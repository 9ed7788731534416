"""The review desk's image store: reviewers' copies of uploads, kept by sha256 in a directory or
S3, filled by the engine when it enqueues an item, and purged once the items are closed."""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import builders
import pytest
from clirunner import runner

from moderation import Engine, Outcome
from moderation.aws.s3 import S3ImageReader
from moderation.cli import main
from moderation.errors import ConfigurationError, ReviewError
from moderation.image import ImageIntake
from moderation.review import (
    DirectoryImageStore,
    ItemImage,
    NewItem,
    Reviewer,
    S3ImageStore,
    SQLiteReviewDesk,
    open_image_store,
    purge_closed_images,
)
from moderation.s3location import S3Location
from moderation.settings import Settings
from moderation.wiring import review_image_store

DEFAULT = "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\nescalation: {judge: none}\n"
BORDERLINE = builders.detection(("Explicit Nudity", "Explicit", 70.0), ("Explicit", "", 70.0))
CLEAN = builders.detection()
ALICE = Reviewer("alice", "*")
PICTURE = b"\x89PNG not really, but bytes all the same"
DAY = 86400.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Detector:
    def __init__(self, result: Any) -> None:
        self.result = result

    def detect(self, image: Any, *, min_confidence: float) -> Any:
        return self.result


class BrokenStore:
    """An image store whose disk is full."""

    def put(self, data: bytes) -> str:
        raise OSError(28, "No space left on device")


class Clock:
    """Epoch seconds that a test moves by hand."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def ids() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"01JD000000000000000000{next(counter):04d}"


# -- the directory store ---------------------------------------------------------------------------


def test_directory_put_stores_by_sha256_under_a_fan_out_folder_and_get_returns_it(tmp_path: Path):
    store = DirectoryImageStore(tmp_path / "images")
    key = store.put(PICTURE)
    assert key == sha(PICTURE)
    assert (tmp_path / "images" / key[:2] / key).read_bytes() == PICTURE
    assert store.get(key) == PICTURE
    assert store.exists(key)


def test_directory_put_is_idempotent_and_leaves_no_temporary_file(tmp_path: Path):
    store = DirectoryImageStore(tmp_path)
    first = store.put(PICTURE)
    mtime = (tmp_path / first[:2] / first).stat().st_mtime_ns
    assert store.put(bytearray(PICTURE)) == first
    assert (tmp_path / first[:2] / first).stat().st_mtime_ns == mtime  # not written again
    assert [p.name for p in (tmp_path / first[:2]).iterdir()] == [first]


def test_directory_put_that_fails_part_way_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a disk whose fsync fails (the write did not reach it)
    store = DirectoryImageStore(tmp_path)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    # WHEN an image is put THEN the error comes out, and neither the image nor a temp file is there
    with pytest.raises(OSError, match="Input/output"):
        store.put(PICTURE)
    key = sha(PICTURE)
    assert not store.exists(key)
    assert list((tmp_path / key[:2]).iterdir()) == []


def test_directory_get_delete_and_exists_of_a_missing_key(tmp_path: Path):
    store = DirectoryImageStore(tmp_path)
    key = sha(b"never stored")
    assert not store.exists(key)
    with pytest.raises(KeyError):
        store.get(key)
    store.delete(key)  # nothing to delete: no error
    stored = store.put(PICTURE)
    store.delete(stored)
    assert not store.exists(stored)


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, sha(b"x") + "0", "", 7]
)
def test_a_bad_key_is_refused_before_the_disk_is_touched(tmp_path: Path, key: Any):
    store = DirectoryImageStore(tmp_path / "never-made")
    for call in (store.get, store.exists, store.delete):
        with pytest.raises(ReviewError, match="sha256 in hex"):
            call(key)
    assert not (tmp_path / "never-made").exists()


# -- the S3 store --------------------------------------------------------------------------------


def test_s3_store_puts_once_under_its_prefix_and_reads_back(s3: Any):
    store = S3ImageStore("uploads", "review/", s3=s3)
    key = store.put(PICTURE)
    assert key == sha(PICTURE)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="uploads")["Contents"]]
    assert listed == [f"review/{key[:2]}/{key}"]
    assert store.put(PICTURE) == key  # idempotent: the object is there already
    assert store.get(key) == PICTURE and store.exists(key)
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(KeyError):
        store.get(key)
    with pytest.raises(ReviewError):
        store.get("../other-tenant/secret")


def test_open_image_store_reads_a_directory_or_an_s3_prefix(tmp_path: Path, s3: Any):
    assert isinstance(open_image_store(str(tmp_path)), DirectoryImageStore)
    opened = open_image_store("s3://uploads/desk-images", region="us-east-1")
    assert isinstance(opened, S3ImageStore)
    assert (opened.location.bucket, opened.location.prefix) == ("uploads", "desk-images/")
    with pytest.raises(ConfigurationError, match="MODERATION_REVIEW_IMAGES"):
        open_image_store("s3://uploads/x?versionId=3")
    with pytest.raises(ConfigurationError, match="MODERATION_REVIEW_IMAGES"):
        open_image_store("  ")


def test_the_store_is_wired_from_settings_only_beside_a_desk(tmp_path: Path):
    images = str(tmp_path / "images")
    assert review_image_store(Settings(review_images=images)) is None
    built = review_image_store(Settings(review="sqlite:///desk.db", review_images=images))
    assert isinstance(built, DirectoryImageStore)


# -- the engine fills the store ------------------------------------------------------------------


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[SQLiteReviewDesk]:
    with SQLiteReviewDesk(tmp_path / "desk.db", clock=Clock(1_000_000.0)) as opened:
        yield opened


def make_engine(detection: Any, desk: SQLiteReviewDesk, store: Any) -> Engine:
    return builders.engine(
        builders.store(DEFAULT), Detector(detection), review=desk, review_images=store,
        new_id=ids(),
    )  # fmt: skip


def test_the_engine_stores_the_uploads_own_bytes_for_a_review_item(
    desk: SQLiteReviewDesk, tmp_path: Path
):
    store = DirectoryImageStore(tmp_path / "images")
    engine = make_engine(BORDERLINE, desk, store)
    decision = engine.moderate(builders.IMAGE)
    assert decision.outcome is Outcome.REVIEW
    item = desk.find(decision.id)
    assert item is not None and item.image == ItemImage(store_key=sha(builders.IMAGE))
    assert store.get(sha(builders.IMAGE)) == builders.IMAGE  # the upload, not a re-encoding


def test_the_engine_stores_a_local_files_bytes(desk: SQLiteReviewDesk, tmp_path: Path):
    path = tmp_path / "upload.png"
    path.write_bytes(builders.IMAGE)
    store = DirectoryImageStore(tmp_path / "images")
    decision = make_engine(BORDERLINE, desk, store).moderate(path)
    item = desk.find(decision.id)
    assert item is not None and item.image is not None
    assert item.image.store_key is not None
    assert store.get(item.image.store_key) == builders.IMAGE


def test_the_engine_stores_nothing_for_an_approved_image(desk: SQLiteReviewDesk, tmp_path: Path):
    store = DirectoryImageStore(tmp_path / "images")
    decision = make_engine(CLEAN, desk, store).moderate(builders.IMAGE)
    assert decision.outcome is Outcome.APPROVED
    assert not store.exists(sha(builders.IMAGE))


def test_the_engine_does_not_copy_an_image_in_s3(desk: SQLiteReviewDesk, tmp_path: Path, s3: Any):
    s3.put_object(Bucket="uploads", Key="a/b.png", Body=builders.IMAGE)
    store = DirectoryImageStore(tmp_path / "images")
    engine = make_engine(BORDERLINE, desk, store)
    engine.intake = ImageIntake(s3=S3ImageReader(s3))
    decision = engine.moderate(S3Location("uploads", "a/b.png"))
    item = desk.find(decision.id)
    assert item is not None and item.image is not None
    assert item.image.s3 is not None and item.image.s3.key == "a/b.png"
    assert item.image.store_key is None
    assert not (tmp_path / "images").exists()


def test_a_failing_store_is_logged_and_the_decision_and_item_still_made(
    desk: SQLiteReviewDesk, caplog: pytest.LogCaptureFixture
):
    engine = make_engine(BORDERLINE, desk, BrokenStore())
    with caplog.at_level(logging.ERROR, logger="moderation.review"):
        decision = engine.moderate(builders.IMAGE)
    assert decision.outcome is Outcome.REVIEW
    assert desk.find(decision.id) is not None
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert decision.id in record.getMessage()
    assert "could not be stored" in record.getMessage()
    assert record.exc_info is not None


# -- closed items and the purge ------------------------------------------------------------------


def item(decision_id: str, data: bytes) -> NewItem:
    return NewItem(decision_id=decision_id, tenant="default", image=ItemImage(store_key=sha(data)))


def decide(desk: SQLiteReviewDesk, decision_id: str) -> None:
    leased = desk.next(ALICE)
    assert leased is not None and leased.decision_id == decision_id
    desk.decide(leased.id, "approve", reviewer=ALICE)


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000_000.0)


@pytest.fixture
def aged_desk(tmp_path: Path, clock: Clock) -> Iterator[SQLiteReviewDesk]:
    """Items 40 days old: one closed alone (OLD), one closed sharing its image with an open item
    (SHARED), one closed sharing with a closed item made yesterday (RECENT); and one still open."""
    with SQLiteReviewDesk(tmp_path / "desk.db", clock=clock) as desk:
        desk.enqueue(item("d-old", b"OLD"))
        decide(desk, "d-old")
        desk.enqueue(item("d-shared-closed", b"SHARED"))
        decide(desk, "d-shared-closed")
        desk.enqueue(item("d-recent-old", b"RECENT"))
        decide(desk, "d-recent-old")
        desk.enqueue(item("d-open", b"OPEN"))
        clock.at += 39 * DAY
        desk.enqueue(item("d-shared-open", b"SHARED"))  # waits for a reviewer
        desk.enqueue(item("d-recent-new", b"RECENT"))
        decide(desk, "d-open")  # the oldest goes first; closed now, but 39 days after it was made
        clock.at += DAY
        yield desk


def cutoff(clock: Clock, days: float) -> datetime:
    return datetime.fromtimestamp(clock.at, UTC) - timedelta(days=days)


def test_closed_images_are_those_of_old_decided_items_no_other_item_holds(
    aged_desk: SQLiteReviewDesk, clock: Clock
):
    assert aged_desk.closed_images(cutoff(clock, 30)) == sorted([sha(b"OLD"), sha(b"OPEN")])
    assert aged_desk.closed_images(cutoff(clock, 41)) == []  # nothing that old


def test_closed_images_needs_a_time_with_a_zone(aged_desk: SQLiteReviewDesk):
    with pytest.raises(ReviewError, match="time zone"):
        aged_desk.closed_images(datetime(2026, 1, 1))


def test_purge_deletes_only_closed_items_images_and_keeps_shared_ones(
    aged_desk: SQLiteReviewDesk, clock: Clock, tmp_path: Path
):
    store = DirectoryImageStore(tmp_path / "images")
    for data in (b"OLD", b"SHARED", b"RECENT", b"OPEN"):
        store.put(data)
    count = purge_closed_images(aged_desk, store, cutoff(clock, 30))
    assert (count.deleted, count.gone) == (2, 0)
    assert [store.exists(sha(d)) for d in (b"OLD", b"SHARED", b"RECENT", b"OPEN")] == [
        False, True, True, False,
    ]  # fmt: skip
    again = purge_closed_images(aged_desk, store, cutoff(clock, 30))
    assert (again.deleted, again.gone) == (0, 2)


def test_moderation_review_purge_prints_how_many_were_deleted(tmp_path: Path):
    # GIVEN a closed item made in 1970 and an open one made now, each with a stored image
    images = tmp_path / "images"
    store = DirectoryImageStore(images)
    with SQLiteReviewDesk(tmp_path / "desk.db", clock=Clock(1000.0)) as desk:
        desk.enqueue(item("d-closed", b"CLOSED"))
        decide(desk, "d-closed")
        desk.enqueue(item("d-open", b"OPEN"))
    store.put(b"CLOSED")
    store.put(b"OPEN")
    # WHEN the purge runs
    result = runner().invoke(
        main,
        ["review", "purge", "--older-than", "30d", "--desk", f"sqlite:///{tmp_path}/desk.db",
         "--images", str(images)],
    )  # fmt: skip
    # THEN the closed item's image is deleted and the open one's kept
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "1 deleted"
    assert not store.exists(sha(b"CLOSED")) and store.exists(sha(b"OPEN"))


@pytest.mark.parametrize("age", ["30", "thirty days", "0d", "-3d"])
def test_purge_refuses_a_bad_duration(tmp_path: Path, age: str):
    result = runner().invoke(
        main,
        ["review", "purge", "--older-than", age, "--desk", f"sqlite:///{tmp_path}/d.db",
         "--images", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    said = result.stdout + result.stderr  # click before 8.2 keeps stderr out of .output
    assert "--older-than" in said and "30d" in said


def test_purge_without_an_image_store_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MODERATION_REVIEW_IMAGES", raising=False)
    result = runner().invoke(
        main, ["review", "purge", "--older-than", "30d", "--desk", f"sqlite:///{tmp_path}/d.db"]
    )
    assert result.exit_code == 2
    assert "MODERATION_REVIEW_IMAGES" in result.stdout + result.stderr


def test_purge_that_cannot_delete_exits_3_naming_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a closed item whose stored image cannot be deleted (a read-only volume)
    store = DirectoryImageStore(tmp_path / "images")
    with SQLiteReviewDesk(tmp_path / "desk.db", clock=Clock(1000.0)) as desk:
        desk.enqueue(item("d-closed", b"CLOSED"))
        decide(desk, "d-closed")
    store.put(b"CLOSED")

    def read_only(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    # WHEN the purge runs THEN it exits 3 and says what failed
    result = runner().invoke(
        main,
        ["review", "purge", "--older-than", "1d", "--desk", f"sqlite:///{tmp_path}/desk.db",
         "--images", str(tmp_path / "images")],
    )  # fmt: skip
    assert result.exit_code == 3
    assert "Read-only file system" in result.stdout + result.stderr


def test_intake_keeps_a_local_uploads_bytes_and_not_an_s3_objects(tmp_path: Path, s3: Any):
    intake = ImageIntake(s3=S3ImageReader(s3))
    assert intake.prepare(builders.IMAGE).original == builders.IMAGE
    assert intake.prepare(io.BytesIO(builders.IMAGE)).original == builders.IMAGE
    assert intake.prepare(bytearray(builders.IMAGE)).original == builders.IMAGE
    s3.put_object(Bucket="uploads", Key="k.png", Body=builders.IMAGE)
    assert intake.prepare(S3Location("uploads", "k.png")).original is None
