"""`moderation check` over backlogs: directories, S3 prefixes and @lists, resume from the audit
log, the summary, the progress line on a terminal, --workers and --rate."""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import io
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clirunner import runner
from images import solid

from moderation import Decision
from moderation.audit import decisions
from moderation.cli import main
from moderation.cli._inputs import Arg, Image, expand, parse_args
from moderation.cli._progress import ProgressLine, Tally, limiter_stats
from moderation.decision import Cost, Outcome
from moderation.errors import DetectorError
from moderation.testing.recorded import RecordedDetector

# `moderation.cli.check` the module (the package's attribute of that name is the command)
check_module = importlib.import_module("moderation.cli.check")
ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
IMAGES = ROOT / "examples/images"
RECORDINGS = ROOT / "examples/recordings"
GOLDEN = ROOT / "examples/golden/decisions.jsonl"
# The examples that are images with a recording, and what the default policy decides for each.
DEFAULT_OUTCOMES = {
    "beach.jpg": "approved",
    "cartoon-fight.png": "approved",
    "couple.jpg": "approved",
    "game-screenshot.png": "review",
    "landscape.png": "approved",
    "surgery.jpg": "rejected",
}


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Any:
    return runner().invoke(main, list(args), catch_exceptions=False, env=env, input=input)


def lines(text: str) -> list[str]:
    return text.splitlines()


def outcome_of(line: str) -> tuple[str, str]:
    """(input, outcome) of a result line `<input>  <outcome>  by <stage>  <reason>`."""
    source, outcome = line.split("  ")[:2]
    return source, outcome


def new_png(i: int) -> bytes:
    """A distinct 100x100 PNG for each i (no recording exists for it in the examples)."""
    return solid("png", (100, 100), (10 + i, 200 - i, 77))


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    """The examples' recordings, plus `new_png(0..9)` recorded with no labels (approved)."""
    target = tmp_path / "recordings"
    shutil.copytree(RECORDINGS, target)
    for i in range(10):
        entry = {
            "sha256": hashlib.sha256(new_png(i)).hexdigest(),
            "detect_moderation_labels": {
                "ModerationLabels": [],
                "ModerationModelVersion": "7.0",
                "ContentTypes": [],
            },
        }
        (target / f"new-{i}.json").write_text(json.dumps(entry))
    return target


@pytest.fixture
def detect_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sha256 of every image the recorded detector is asked about."""
    calls: list[str] = []
    real = RecordedDetector.detect

    def counting(self: RecordedDetector, image: Any, *, min_confidence: float) -> Any:
        calls.append(image.sha256)
        return real(self, image, min_confidence=min_confidence)

    monkeypatch.setattr(RecordedDetector, "detect", counting)
    return calls


def offline(recordings: Path | str, *args: str, **kwargs: Any) -> Any:
    return run("check", "--offline", str(recordings), "--policies", str(POLICIES), *args, **kwargs)


# -- directories ---------------------------------------------------------------------------------


def test_a_directory_is_walked_recursively_in_sorted_order_skipping_hidden_names(tmp_path: Path):
    # GIVEN a nested directory with hidden files and directories, and a file that is no image
    top = tmp_path / "uploads"
    (top / "b" / "deeper").mkdir(parents=True)
    (top / ".cache").mkdir()
    shutil.copy(IMAGES / "beach.jpg", top / "z-beach.jpg")
    shutil.copy(IMAGES / "surgery.jpg", top / "b" / "surgery.jpg")
    shutil.copy(IMAGES / "landscape.png", top / "b" / "deeper" / "landscape.png")
    shutil.copy(IMAGES / "couple.jpg", top / "a.jpg")
    shutil.copy(IMAGES / "couple.jpg", top / ".hidden.jpg")
    shutil.copy(IMAGES / "surgery.jpg", top / ".cache" / "surgery.jpg")
    (top / "b" / "README").write_text("not an image\n")
    # WHEN checked in input order
    result = offline(RECORDINGS, str(top), "--ordered")
    # THEN every visible file is an input, depth first in name order; the hidden ones are not
    assert [outcome_of(line) for line in lines(result.stdout)] == [
        (f"{top}/a.jpg", "approved"),
        (f"{top}/b/deeper/landscape.png", "approved"),
        (f"{top}/b/surgery.jpg", "rejected"),
        (f"{top}/z-beach.jpg", "approved"),
    ]
    # AND the file that is not an image is an error, not silently skipped: exit 3
    assert f"{top}/b/README: error: not an image (no known magic bytes)" in result.stderr
    assert "  errors: 1 (InvalidImage 1)" in lines(result.stderr)
    assert result.exit_code == 3


def test_expand_is_lazy_and_follows_a_directory_link_once(tmp_path: Path):
    # GIVEN a directory with a link back to itself
    top = tmp_path / "d"
    top.mkdir()
    (top / "1.png").write_bytes(b"x")
    (top / "loop").symlink_to(top)
    errors: list[tuple[str, Exception]] = []
    images = expand(
        [Arg(str(top), "dir"), Arg(str(top / "1.png"), "file")],
        lister=lambda: pytest.fail("no S3 input"),
        on_error=lambda s, e: errors.append((s, e)),
    )
    # THEN it is an iterator (nothing walked up front) and the loop is not followed
    assert iter(images) is images
    assert list(images) == [Image(str(top / "1.png")), Image(str(top / "1.png"))]
    assert errors == []


# -- @lists ---------------------------------------------------------------------------------------


def test_an_at_list_takes_one_input_per_line_with_comments_and_blank_lines(tmp_path: Path):
    # GIVEN a list with a comment, blank lines, a directory, and a file that does not exist
    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(IMAGES / "landscape.png", folder / "landscape.png")
    listing = tmp_path / "inputs.txt"
    listing.write_text(
        "# the backlog of 2024-05\n"
        f"{IMAGES / 'beach.jpg'}\n"
        "\n"
        f"   {IMAGES / 'surgery.jpg'}   \n"
        "  # an indented comment\n"
        f"{folder}\n"
        f"{tmp_path / 'gone.jpg'}\n"
    )
    # WHEN checked
    result = offline(RECORDINGS, f"@{listing}", "--ordered")
    # THEN each line is one input (the directory expanded), in order
    assert [outcome_of(line) for line in lines(result.stdout)] == [
        (str(IMAGES / "beach.jpg"), "approved"),
        (str(IMAGES / "surgery.jpg"), "rejected"),
        (str(folder / "landscape.png"), "approved"),
    ]
    # AND a line naming no file is an error of its own, not a usage error: every line counts
    assert f"{tmp_path / 'gone.jpg'}: error: file not found" in result.stderr
    assert result.exit_code == 3


def test_file_names_that_are_not_utf8_are_moderated_and_printed_with_a_replacement(
    tmp_path: Path,
):
    # GIVEN a directory and a list naming files whose names are Latin-1 bytes, not UTF-8
    folder = tmp_path / "in"
    folder.mkdir()
    image = os.path.join(os.fsencode(folder), b"pl\xe4ge.jpg")
    shutil.copy(IMAGES / "beach.jpg", image)
    with open(os.path.join(os.fsencode(folder), b"notes-\xe9.txt"), "wb") as fh:
        fh.write(b"text")
    listing = tmp_path / "list.txt"
    listing.write_bytes(image + b"\n")
    # WHEN both are checked
    result = offline(RECORDINGS, str(folder), f"@{listing}", "--ordered")
    # THEN the image is moderated each time, and the names print with U+FFFD for the odd byte
    assert [outcome_of(line) for line in lines(result.stdout)] == [
        (f"{folder}/pl\ufffdge.jpg", "approved"),
        (f"{folder}/pl\ufffdge.jpg", "approved"),
    ]
    assert f"{folder}/notes-\ufffd.txt: error: not an image" in result.stderr
    assert result.exit_code == 3


def test_at_dash_reads_the_list_from_stdin():
    text = f"{IMAGES / 'landscape.png'}\n#{IMAGES / 'surgery.jpg'}\n{IMAGES / 'couple.jpg'}\n"
    result = offline(RECORDINGS, "@-", "--ordered", input=text)
    assert [outcome_of(line)[0] for line in lines(result.stdout)] == [
        str(IMAGES / "landscape.png"),
        str(IMAGES / "couple.jpg"),
    ]
    assert result.exit_code == 0


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("@{tmp}/nope.txt", "no such file: {tmp}/nope.txt"),
        ("@", "'@' names no list file (use @FILE, or @- to read stdin)"),
        ("s3://", "s3://: not an S3 location: names no bucket"),
        ("s3://a bucket/x", "s3://a bucket/x: not an S3 location: bucket name 'a bucket' holds"),
        # Names S3 gives no bucket are refused as the settings refuse them (one rule).
        ("s3://Not_A_Bucket/x.jpg", "s3://Not_A_Bucket/x.jpg: not an S3 location: bucket name"),
        (
            "s3://{{{{{{bucket}}}}}}/x/",
            "s3://{{{{{{bucket}}}}}}/x/: not an S3 location: bucket name",
        ),
        ("s3://xn--abc/x.jpg", "starts with 'xn--', which S3 reserves"),
    ],
)
def test_inputs_that_cannot_be_used_are_usage_errors_before_anything_runs(
    tmp_path: Path, argument: str, message: str
):
    result = offline(RECORDINGS, str(IMAGES / "beach.jpg"), argument.format(tmp=tmp_path))
    assert result.exit_code == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert result.stdout == ""


def test_parse_args_tells_objects_from_prefixes_by_the_trailing_slash(tmp_path: Path):
    given = ["s3://bkt/k.jpg", "s3://bkt/photos/", "s3://bkt", "s3://bkt/"]
    assert [a.kind for a in parse_args(given)] == ["object", "prefix", "prefix", "prefix"]
    assert parse_args(["s3://bkt/dir/?versionId=3"])[0].kind == "object"
    assert parse_args([str(tmp_path), f"@{os.devnull}"]) == [
        Arg(str(tmp_path), "dir"),
        Arg(os.devnull, "list"),
    ]


# -- S3 -------------------------------------------------------------------------------------------


def put(s3: Any, key: str, data: bytes) -> None:
    s3.put_object(Bucket="uploads", Key=key, Body=data)


def test_an_s3_prefix_is_every_object_under_it(s3: Any, recordings: Path):
    # GIVEN objects under photos/ (one nested, a folder marker) and one outside it
    put(s3, "photos/", b"")
    put(s3, "photos/2024/beach.jpg", (IMAGES / "beach.jpg").read_bytes())
    put(s3, "photos/surgery.jpg", (IMAGES / "surgery.jpg").read_bytes())
    put(s3, "photos/z.png", new_png(1))
    put(s3, "other/couple.jpg", (IMAGES / "couple.jpg").read_bytes())
    # WHEN the prefix is checked, then a missing bucket, a prefix without its slash, a file
    result = offline(
        recordings, "s3://uploads/photos/", "s3://no-such-bucket/x/", "s3://uploads/photos",
        str(IMAGES / "landscape.png"),
    )  # fmt: skip
    # THEN every object under the prefix is moderated, in key order; the folder marker is not
    assert sorted(outcome_of(line) for line in lines(result.stdout)) == [
        (str(IMAGES / "landscape.png"), "approved"),
        ("s3://uploads/photos/2024/beach.jpg", "approved"),
        ("s3://uploads/photos/surgery.jpg", "rejected"),
        ("s3://uploads/photos/z.png", "approved"),
    ]
    # AND a listing that fails is an error naming the bucket; the next input still runs
    assert (
        "s3://no-such-bucket/x/: error: s3 bucket not found: no-such-bucket "
        "(listing s3://no-such-bucket/x/)"
    ) in result.stderr
    # AND without its trailing slash a prefix is one object, and the error says how to list
    assert (
        "s3://uploads/photos: error: s3 object not found: s3://uploads/photos (for every object "
        "under a prefix, end it with /: s3://uploads/photos/)"
    ) in result.stderr
    assert "  errors: 2 (ImageSourceError (NoSuchBucket) 1, InvalidImage 1)" in lines(result.stderr)
    assert result.exit_code == 3


def test_a_listed_key_holding_version_id_is_moderated_as_itself(s3: Any, recordings: Path):
    # GIVEN `v/cat.png` (rejected) beside `v/cat.png?versionId=null` (approved)
    put(s3, "v/cat.png", (IMAGES / "surgery.jpg").read_bytes())
    put(s3, "v/cat.png?versionId=null", (IMAGES / "beach.jpg").read_bytes())
    # WHEN the prefix is checked
    result = offline(recordings, "s3://uploads/v/", "--audit", "-")
    # THEN each listed object is moderated as itself (handed over as a location, not a string)
    assert sorted(outcome_of(line) for line in lines(result.stderr + result.stdout)
                  if line.startswith("s3://")) == [
        ("s3://uploads/v/cat.png", "rejected"),
        ("s3://uploads/v/cat.png?versionId=null", "approved"),
    ]  # fmt: skip


def test_the_listing_is_paged_lazily_with_continuation_tokens(fake_aws_env: dict[str, str]):
    # GIVEN S3 answering two pages (the contract checked against the real S3 model)
    import boto3
    from botocore.stub import Stubber

    from moderation.cli._s3 import S3Lister

    client = boto3.client("s3", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response(
        "list_objects_v2",
        {
            "IsTruncated": True,
            "NextContinuationToken": "page-2",
            "Contents": [{"Key": "p/a.jpg", "ETag": '"e1"', "Size": 10}, {"Key": "p/sub/"}],
        },
        {"Bucket": "bkt", "Prefix": "p/", "MaxKeys": 2},
    )
    stub.add_response(
        "list_objects_v2",
        {"IsTruncated": False, "Contents": [{"Key": "p/b.jpg", "ETag": '"e2"', "Size": 20}]},
        {"Bucket": "bkt", "Prefix": "p/", "MaxKeys": 2, "ContinuationToken": "page-2"},
    )
    with stub:
        objects = S3Lister(client).objects("bkt", "p/", page_size=2)
        # WHEN the first object is taken, only the first page has been asked for
        first = next(objects)
        with pytest.raises(AssertionError):
            stub.assert_no_pending_responses()
        rest = list(objects)
        stub.assert_no_pending_responses()
    # THEN the ETags lose their quotes and the folder marker is left out
    assert [(o.key, o.etag, o.size) for o in [first, *rest]] == [
        ("p/a.jpg", "e1", 10),
        ("p/b.jpg", "e2", 20),
    ]


# -- resume ---------------------------------------------------------------------------------------


def write_images(directory: Path, indexes: range) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = []
    for i in indexes:
        path = directory / f"img-{i}.png"
        path.write_bytes(new_png(i))
        paths.append(path)
    return paths


def test_a_second_run_decides_only_the_new_inputs_and_a_policy_change_decides_all(
    tmp_path: Path, recordings: Path, detect_calls: list[str]
):
    audit = tmp_path / "audit.jsonl"
    folder = tmp_path / "in"
    # GIVEN a first run over 5 images
    write_images(folder, range(5))
    first = offline(recordings, str(folder), "--audit", str(audit))
    assert first.exit_code == 0, first.output
    assert len(detect_calls) == 5 and len(list(decisions(audit))) == 5
    # WHEN the same 5 and 3 new ones are checked with the same audit log
    write_images(folder, range(5, 8))
    second = offline(recordings, str(folder), "--audit", str(audit))
    # THEN exactly the 3 new ones are decided: detector calls, audit records and printed lines
    assert second.exit_code == 0, second.output
    assert len(detect_calls) == 8 and len(list(decisions(audit))) == 8
    assert sorted(outcome_of(line)[0] for line in lines(second.stdout)) == [
        str(folder / f"img-{i}.png") for i in range(5, 8)
    ]
    assert f"  skipped: 5 already decided in {audit} under the same policy (5 approved)" in lines(
        second.stderr
    )
    # AND a file whose content changed is decided again (its sha256 is another)
    (folder / "img-0.png").write_bytes(new_png(9))
    third = offline(recordings, str(folder), "--audit", str(audit))
    assert [outcome_of(line)[0] for line in lines(third.stdout)] == [str(folder / "img-0.png")]
    assert len(detect_calls) == 9
    # AND --no-resume decides everything again
    offline(recordings, str(folder), "--audit", str(audit), "--no-resume")
    assert len(detect_calls) == 17
    # AND under a changed policy (another sha256) everything is decided again
    changed = tmp_path / "policies"
    shutil.copytree(POLICIES, changed)
    default = changed / "default.yaml"
    default.write_text(default.read_text().replace("Alcohol: allow", "Alcohol: {escalate: 80}"))
    fourth = run(
        "check", "--offline", str(recordings), "--policies", str(changed), str(folder),
        "--audit", str(audit),
    )  # fmt: skip
    assert fourth.exit_code == 0, fourth.output
    assert len(detect_calls) == 25
    assert len(lines(fourth.stdout)) == 8
    assert f"  skipped: 0 already decided in {audit} under the same policy" in lines(fourth.stderr)


def test_another_tenant_is_not_resumed_from_this_tenants_decisions(tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    offline(RECORDINGS, str(IMAGES / "beach.jpg"), "--audit", str(audit))
    kids = offline(RECORDINGS, str(IMAGES / "beach.jpg"), "--audit", str(audit), "--tenant", "kids")
    assert [outcome_of(line) for line in lines(kids.stdout)] == [
        (str(IMAGES / "beach.jpg"), "rejected")
    ]


def test_a_run_interrupted_half_way_continues_where_it_stopped(
    tmp_path: Path, recordings: Path, monkeypatch: pytest.MonkeyPatch
):
    audit = tmp_path / "audit.jsonl"
    paths = write_images(tmp_path / "in", range(8))
    # GIVEN a run that is interrupted (Ctrl-C reaches the main thread) as the 3rd result comes
    real = check_module._Run.decided
    seen: list[str] = []

    def interrupted(self: Any, source: str, decision: Decision) -> None:
        seen.append(source)
        if len(seen) == 3:
            raise KeyboardInterrupt
        real(self, source, decision)

    monkeypatch.setattr(check_module._Run, "decided", interrupted)
    args = [*map(str, paths), "--audit", str(audit), "--workers", "1", "--ordered"]
    first = offline(recordings, *args)
    # THEN it stops with 130, counts what it reported, and says how to continue
    assert first.exit_code == 130
    assert [outcome_of(line) for line in lines(first.stdout)] == [
        (str(paths[0]), "approved"),
        (str(paths[1]), "approved"),
    ]
    assert lines(first.stderr)[0].startswith("interrupted: 2 inputs in ")
    assert "with a file --audit log, the same command continues" in first.stderr
    # AND the images not yet started were not moderated; those started finished and are audited
    decided_first = len(list(decisions(audit)))
    assert 3 <= decided_first < 8
    # WHEN the same command runs again
    monkeypatch.setattr(check_module._Run, "decided", real)
    second = offline(recordings, *args)
    # THEN it decides the others only: every image is in the log exactly once
    assert second.exit_code == 0
    assert [outcome_of(line)[0] for line in lines(second.stdout)] == list(
        map(str, paths[decided_first:])
    )
    assert f"  skipped: {decided_first} already decided in" in second.stderr
    logged = sorted(d.image.sha256 or "" for d in decisions(audit))
    assert logged == sorted(hashlib.sha256(new_png(i)).hexdigest() for i in range(8))


def test_s3_objects_resume_by_bucket_key_and_etag(
    s3: Any, recordings: Path, tmp_path: Path, detect_calls: list[str]
):
    audit = tmp_path / "audit.jsonl"
    for i in range(3):
        put(s3, f"in/{i}.png", new_png(i))
    put(s3, "one.png", new_png(7))
    first = offline(recordings, "s3://uploads/in/", "s3://uploads/one.png", "--audit", str(audit))
    assert first.exit_code == 0, first.output
    assert len(detect_calls) == 4
    # WHEN one object is overwritten (another ETag) and one is added
    put(s3, "in/1.png", new_png(5))
    put(s3, "in/3.png", new_png(6))
    second = offline(recordings, "s3://uploads/in/", "s3://uploads/one.png", "--audit", str(audit))
    # THEN only those two are decided; the single object is matched by a HEAD's ETag
    assert sorted(outcome_of(line)[0] for line in lines(second.stdout)) == [
        "s3://uploads/in/1.png",
        "s3://uploads/in/3.png",
    ]
    assert len(detect_calls) == 6
    assert "  skipped: 3 already decided in" in second.stderr


def test_skipped_inputs_count_in_the_exit_code_with_their_recorded_outcome(tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    assert offline(RECORDINGS, str(IMAGES / "surgery.jpg"), "--audit", str(audit)).exit_code == 1
    again = offline(RECORDINGS, str(IMAGES / "surgery.jpg"), "--audit", str(audit))
    assert again.stdout == ""
    assert "(1 rejected)" in again.stderr
    assert again.exit_code == 1


# -- the summary ----------------------------------------------------------------------------------


def test_the_summary_counts_outcomes_escalations_and_errors_by_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN the examples, an image with no recording, and a throttled detector for one image
    unrecorded = tmp_path / "new.png"
    unrecorded.write_bytes(new_png(0))
    real = RecordedDetector.detect
    landscape = hashlib.sha256((IMAGES / "landscape.png").read_bytes()).hexdigest()

    def throttled(self: RecordedDetector, image: Any, *, min_confidence: float) -> Any:
        if image.sha256 == landscape:
            raise DetectorError("rekognition: rate exceeded", code="ThrottlingException")
        return real(self, image, min_confidence=min_confidence)

    monkeypatch.setattr(RecordedDetector, "detect", throttled)
    result = offline(RECORDINGS, str(IMAGES), str(unrecorded), "--audit", str(tmp_path / "a"))
    summary = lines(result.stderr)[-7:]
    assert summary[0].startswith("summary: 10 inputs in ")
    assert summary[0].endswith(" images/s)")
    # The judge stage's queue: how many escalations it held at most depends on timing.
    assert re.fullmatch(
        r"  judge queue: peak [123] of 256, 64 judge threads, detection waited 0\.00s for room",
        summary.pop(3),
    )
    assert summary[1:] == [
        # beach, couple, cartoon-fight (judge approved) | surgery (blocked) | game (no tool call)
        "  outcomes: 3 approved, 1 rejected, 1 review",
        "  escalated: 3 (1 judged, 1 blocked by the model's filter, 1 no usable verdict)",
        "  errors: 5 (InvalidImage 3, DetectorError (ThrottlingException) 1, NoRecording 1)",
        f"  skipped: 0 already decided in {tmp_path / 'a'} under the same policy",
        "  estimated cost: $0.0000",
    ]
    assert result.exit_code == 3


def decision(**update: Any) -> Decision:
    first = next(iter(decisions(GOLDEN)))
    return first.model_copy(update=update)


def test_tally_summary_sums_cost_and_reports_limiter_stats():
    class Limiter:
        per = 1.0

        def stats(self) -> Any:
            from types import SimpleNamespace

            return SimpleNamespace(
                name="rekognition", per=1.0, max_rate=10.0, rate=7.0, acquired=40,
                throttles=3, decreases=1, waited_s=2.5,
            )  # fmt: skip

    tally = Tally()
    tally.decided(decision(cost=Cost(rekognition_usd=0.001, bedrock_usd=0.0025)))
    tally.decided(decision(cost=Cost(rekognition_usd=0.001, bedrock_usd=None)))
    tally.decided(decision(outcome=Outcome.REVIEW, cost=Cost(rekognition_usd=0.001)))
    tally.failed(DetectorError("x", code="ThrottlingException"))
    tally.skip(Outcome.APPROVED)
    stats = [s for s in (limiter_stats("rekognition", Limiter()), limiter_stats("b", None)) if s]
    text = tally.summary(elapsed=2.0, limiters=stats)
    assert text == [
        "summary: 5 inputs in 2.00s (2.0 images/s)",
        "  outcomes: 2 approved, 0 rejected, 1 review",
        "  errors: 1 (DetectorError (ThrottlingException) 1)",
        "  throttles: rekognition 3 (limit 10/s, now 7/s, backed off 1x, waited 2.50s)",
        "  estimated cost: $0.0045 (and 1 decision(s) of unknown price)",
    ]
    assert tally.exit_code() == 3
    # A limiter without stats (the placeholder) says nothing rather than guess
    from moderation.limits import RateLimiter

    assert limiter_stats("rekognition", object()) is None
    if not callable(getattr(RateLimiter, "stats", None)):
        assert limiter_stats("rekognition", RateLimiter(5)) is None


# -- the progress line ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_line_shows_done_total_rate_eta_and_counts_and_redraws_at_most_every_interval():
    clock, stream, tally = FakeClock(), io.StringIO(), Tally()
    progress = ProgressLine(stream, tally, clock=clock, interval=0.5, width=lambda: 200)
    progress.total = 10
    for outcome in (Outcome.APPROVED, Outcome.APPROVED, Outcome.REJECTED):
        tally.decided(decision(outcome=outcome))
    tally.failed(ValueError("x"))
    clock.now += 2.0  # 4 processed in 2 s
    assert progress.text() == (
        "4/10 40%  2.0 images/s  ETA 3.00s  approved 2  rejected 1  review 0  errors 1"
    )
    progress.update()
    clock.now += 0.2
    progress.update()  # within the interval: not drawn
    assert stream.getvalue().count("\r\x1b[K") == 1
    progress.above("a line")  # erases the line, writes, draws again
    assert stream.getvalue().endswith("\r\x1b[Ka line\n\r\x1b[K" + progress.text())
    progress.finish()
    assert stream.getvalue().endswith(progress.text() + "\n")
    # skipped inputs count as done, not in the rate, and are shown apart from this run's counts
    # (2.2 s have passed: 4 / 2.2 = 1.8 images/s, and 5 to go take 2.75 s)
    tally.skip(Outcome.APPROVED)
    assert progress.text() == (
        "5/10 50%  1.8 images/s  ETA 2.75s  approved 2  rejected 1  review 0  errors 1  skipped 1"
    )
    # a narrow terminal gets the line cut, never wrapped
    narrow = ProgressLine(io.StringIO(), tally, clock=clock, width=lambda: 30)
    narrow.update()
    drawn = narrow.stream.getvalue().removeprefix("\r\x1b[K")  # type: ignore[attr-defined]
    assert len(drawn) == 29 and drawn.endswith("…")


def read_pty(master: int, proc: subprocess.Popen[bytes]) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            proc.kill()
            pytest.fail("the command did not finish in 30 s")
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def spawn_on_pty(args: list[str], *, stdout_on_pty: bool) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 250, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATION_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moderation", *args],
        cwd=ROOT,  # this checkout's package comes first on sys.path
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_on_pty else subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    try:
        terminal = read_pty(master, proc)
        stdout = b"" if stdout_on_pty else proc.stdout.read()  # type: ignore[union-attr]
        proc.wait(timeout=30)
    finally:
        os.close(master)
    return proc.returncode, stdout.decode(), terminal.decode()


def test_on_a_terminal_a_progress_line_is_redrawn_and_the_summary_follows_it(tmp_path: Path):
    # WHEN the examples are checked with stderr on a pseudo-terminal and stdout to a pipe
    code, stdout, terminal = spawn_on_pty(
        [
            "check", "--offline", str(RECORDINGS), "--policies", str(POLICIES),
            "--audit", str(tmp_path / "audit.jsonl"), str(IMAGES),
        ],
        stdout_on_pty=False,
    )  # fmt: skip
    assert code == 3, terminal
    # THEN the line was redrawn in place, and its final redraw shows every input and the counts
    screens = terminal.split("\r\x1b[K")
    final, after = screens[-1].split("\r\n", 1)
    assert final.startswith("9/9 100%  ")
    assert final.endswith("approved 4  rejected 1  review 1  errors 3")
    assert len([s for s in screens if "images/s" in s]) >= 2
    # AND errors were printed above it; the summary comes after it
    assert "notes.txt: error: not an image (no known magic bytes)\r\n" in terminal
    assert after.splitlines()[0].startswith("summary: 9 inputs in ")
    assert "  outcomes: 4 approved, 1 rejected, 1 review" in after.splitlines()
    # AND stdout, not a terminal, still gets one line per decided image
    assert sorted(outcome_of(line)[0] for line in lines(stdout)) == sorted(
        str(IMAGES / name) for name in DEFAULT_OUTCOMES
    )


def run_on_this_pty(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> tuple[Any, str]:
    """Run the CLI in this process with stdout and stderr on a pseudo-terminal (a subprocess
    costs a second of imports): its exit code and what the terminal received."""
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 250, 0, 0))
    terminal = os.fdopen(slave, "w", encoding="utf-8")
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other end is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", terminal)
            patch.setattr(sys, "stderr", terminal)
            with pytest.raises(SystemExit) as stopped:
                main.main(args, prog_name="moderation")
    finally:
        terminal.close()
        reader.join(timeout=10)
        os.close(master)
    return stopped.value.code, b"".join(chunks).decode()


def test_on_a_terminal_approved_images_of_a_directory_are_only_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a directory with an approved and a rejected image
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(IMAGES / "beach.jpg", folder / "beach.jpg")
    shutil.copy(IMAGES / "surgery.jpg", folder / "surgery.jpg")
    common = ["check", "--offline", str(RECORDINGS), "--policies", str(POLICIES), "--no-resume"]
    common += ["--audit", str(tmp_path / "audit.jsonl")]
    # WHEN it is checked with stdout and stderr on a terminal
    code, text = run_on_this_pty(monkeypatch, [*common, str(folder)])
    # THEN only the rejected image is listed: the approved one is counted in the progress line
    assert code == 1, text
    assert f"{folder / 'surgery.jpg'}  rejected  by fallback" in text
    assert f"{folder / 'beach.jpg'}  approved" not in text
    assert "2/2 100%  " in text and "approved 1  rejected 1  review 0  errors 0\r\n" in text
    # AND images named one by one each get their line
    code, text = run_on_this_pty(
        monkeypatch, [*common, str(folder / "beach.jpg"), str(folder / "surgery.jpg")]
    )
    assert f"{folder / 'beach.jpg'}  approved  by policy" in text
    assert f"{folder / 'surgery.jpg'}  rejected  by fallback" in text


def test_without_a_terminal_every_image_is_one_plain_line_and_nothing_is_redrawn():
    result = offline(RECORDINGS, str(IMAGES / "beach.jpg"), str(IMAGES / "surgery.jpg"))
    assert [outcome_of(line) for line in lines(result.stdout)] == [
        (str(IMAGES / "beach.jpg"), "approved"),
        (str(IMAGES / "surgery.jpg"), "rejected"),
    ]
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    assert result.exit_code == 1


def test_json_lines_name_their_input_and_failed_inputs_are_lines_too(tmp_path: Path):
    result = offline(RECORDINGS, str(IMAGES), "--json", "--audit", str(tmp_path / "a.jsonl"))
    printed = [json.loads(line) for line in lines(result.stdout)]
    # one line per input, each naming it: a decision for each image, an error for the others
    decided = {
        Path(p["input"]).name: Decision.model_validate(p["decision"])
        for p in printed
        if "decision" in p
    }
    assert {name: d.outcome.value for name, d in decided.items()} == DEFAULT_OUTCOMES
    failed = {Path(p["input"]).name: p["error"] for p in printed if "error" in p}
    inputs = sorted(p.name for p in IMAGES.iterdir() if not p.name.startswith("."))
    assert sorted([*decided, *failed]) == inputs
    assert all(set(p) in ({"input", "decision"}, {"input", "error"}) for p in printed)
    assert failed["notes.txt"]["type"] == "InvalidImage"
    assert failed["notes.txt"]["message"] in result.stderr  # the person's line is still there
    assert result.exit_code == 3


def test_json_lines_name_s3_objects_and_failed_listings(s3: Any, recordings: Path):
    put(s3, "photos/surgery.jpg", (IMAGES / "surgery.jpg").read_bytes())
    result = offline(recordings, "s3://uploads/photos/", "s3://no-such-bucket/x/", "--json")
    printed = sorted((json.loads(line) for line in lines(result.stdout)), key=lambda p: p["input"])
    assert [p["input"] for p in printed] == [
        "s3://no-such-bucket/x/",
        "s3://uploads/photos/surgery.jpg",
    ]
    listing, decided = printed
    assert listing["error"] == {
        "type": "ImageSourceError",
        "code": "NoSuchBucket",
        "message": "s3 bucket not found: no-such-bucket (listing s3://no-such-bucket/x/)",
    }
    assert decided["decision"]["outcome"] == "rejected"
    assert decided["decision"]["image"]["s3"]["key"] == "photos/surgery.jpg"


def test_offline_with_a_missing_recordings_directory_is_a_usage_error(tmp_path: Path):
    missing = tmp_path / "no-recordings"
    result = offline(missing, str(IMAGES / "beach.jpg"))
    assert result.exit_code == 2, result.output
    assert "--offline" in result.stderr and str(missing) in result.stderr
    assert "does not exist" in result.stderr
    assert result.stdout == ""


# -- --workers and --rate -------------------------------------------------------------------------


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every engine `moderation check` builds."""
    built: list[Any] = []
    real = check_module._engine

    def spy(*args: Any, **kwargs: Any) -> Any:
        engine = real(*args, **kwargs)
        built.append(engine)
        return engine

    monkeypatch.setattr(check_module, "_engine", spy)
    return built


def test_rate_reaches_the_engines_rekognition_limiter_over_the_environment(engines: list[Any]):
    env = {"MODERATION_REKOGNITION_TPS": "9", "MODERATION_BEDROCK_RPM": "120"}
    result = offline(RECORDINGS, str(IMAGES / "beach.jpg"), "--rate", "2.5", env=env)
    assert result.exit_code == 0, result.output
    [engine] = engines
    assert engine.rekognition_limiter.max_rate == 2.5
    assert engine.bedrock_limiter.max_rate == 120
    # without --rate, the environment's
    offline(RECORDINGS, str(IMAGES / "beach.jpg"), env=env)
    assert engines[1].rekognition_limiter.max_rate == 9


def test_rate_reaches_the_aws_engine_too(
    engines: list[Any], monkeypatch: pytest.MonkeyPatch, fake_aws_env: dict[str, str]
):
    from moderation.engine import Engine
    from moderation.testing.recorded import RecordedJudge, Recordings

    recorded = Recordings.load(RECORDINGS)
    build = Engine.from_settings.__func__  # type: ignore[attr-defined]

    def answered_offline(cls: type[Engine], settings: Any, **kwargs: Any) -> Engine:
        engine = build(cls, settings, **kwargs)
        engine.detector = RecordedDetector(recorded)
        engine.judge = RecordedJudge(recorded)
        return engine

    monkeypatch.setattr(Engine, "from_settings", classmethod(answered_offline))
    result = run("check", "--policies", str(POLICIES), "--rate", "4", str(IMAGES / "beach.jpg"))
    assert result.exit_code == 0, result.output
    assert engines[0].rekognition_limiter.max_rate == 4


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_workers_must_be_a_whole_number_of_at_least_one(value: str):
    result = offline(RECORDINGS, str(IMAGES / "beach.jpg"), "--workers", value)
    assert result.exit_code == 2
    assert "--workers" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1"])
def test_rate_must_be_positive(value: str):
    result = offline(RECORDINGS, str(IMAGES / "beach.jpg"), "--rate", value)
    assert result.exit_code == 2
    assert "--rate" in result.stderr


def test_workers_reach_moderate_many(monkeypatch: pytest.MonkeyPatch):
    from moderation.engine import Engine

    seen: list[tuple[int, bool]] = []
    real = Engine.moderate_many

    def spy(self: Engine, images: Any, **kwargs: Any) -> Iterator[Any]:
        seen.append((kwargs["max_workers"], kwargs["ordered"]))
        return real(self, images, **kwargs)

    monkeypatch.setattr(Engine, "moderate_many", spy)
    offline(RECORDINGS, str(IMAGES / "beach.jpg"), "--workers", "3")
    offline(RECORDINGS, str(IMAGES))
    offline(RECORDINGS, str(IMAGES), "--ordered", "--workers", "1")
    # one image per INPUT: input order by default; a directory: as they finish
    assert seen == [(3, True), (16, False), (1, True)]


def test_an_audit_log_that_cannot_be_written_stops_the_run(
    tmp_path: Path, recordings: Path, monkeypatch: pytest.MonkeyPatch
):
    from moderation.audit import JsonlAuditLog

    def broken(self: JsonlAuditLog, decision: Decision) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(JsonlAuditLog, "append", broken)
    paths = write_images(tmp_path / "in", range(10))
    result = offline(
        recordings, *map(str, paths), "--audit", str(tmp_path / "a.jsonl"), "--workers", "1"
    )
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "stopping: the audit log cannot be written" in result.stderr
    # the images not yet started were not moderated
    assert result.stderr.count("could not be written to the audit log") < 10
