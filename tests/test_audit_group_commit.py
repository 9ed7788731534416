"""Group commit in the file log: many appends share one write and one fsync, each returning only
once its own record is durable, and a failed batch raises in every append it held."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_audit_log import FULL_CONTEXT, _run_writers, make_decision

from moderation.audit import JsonlAuditLog, _jsonl, decisions, verify_log


def _threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run `work(t)` in `count` threads; what they raised."""
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            work(t)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(w.is_alive() for w in workers), "an append never returned"
    return errors


def _queued(path: Path, count: int) -> None:
    """Wait until `count` appends wait in the queue of `path` (behind a leader)."""
    shared = _jsonl._shared_for(os.path.realpath(path))
    deadline = time.monotonic() + 30
    while len(shared.queue) < count:
        assert time.monotonic() < deadline, f"{len(shared.queue)} appends queued, not {count}"
        time.sleep(0.005)


def _behind_a_held_append(
    log: JsonlAuditLog, path: Path, count: int, gate: threading.Event, writing: Callable[[], bool]
) -> list[BaseException]:
    """Append decision 1, whose write waits for `gate` (`writing()` tells it has begun); queue
    `count` appends behind it, one batch; release the gate: what those `count` appends raised."""
    first = threading.Thread(target=log.append, args=(make_decision(1),))
    first.start()
    while not writing():
        time.sleep(0.005)
    errors: list[BaseException] = []
    others = threading.Thread(
        target=lambda: errors.extend(_threads(count, lambda t: log.append(make_decision(10 + t))))
    )
    others.start()
    _queued(path, count)
    gate.set()
    first.join(30)
    others.join(30)
    return errors


def test_each_append_returns_only_after_an_fsync_that_covered_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN an fsync that notes which decisions the file holds when it starts (what it makes
    # durable), and is slow, as a disk's is, so that appends arrive while one is under way
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    durable: set[str] = set()
    fsyncs = 0

    def watched_fsync(fd: int) -> None:
        nonlocal fsyncs
        covered = {d.id for d in decisions(path)}
        time.sleep(0.002)
        os.fsync(fd)
        fsyncs += 1
        durable.update(covered)

    monkeypatch.setattr(_jsonl, "_os_fsync", watched_fsync)

    # WHEN 16 threads append 20 decisions each
    def work(t: int) -> None:
        for i in range(20):
            decision = make_decision(t * 100 + i, context=FULL_CONTEXT)
            log.append(decision)
            # THEN each append returns only once an fsync has covered its record
            assert decision.id in durable, decision.id

    assert _threads(16, work) == []
    # AND every record is there exactly once, in one chain, with fewer fsyncs than records
    ids = [d.id for d in decisions(path)]
    assert len(ids) == 320 and len(set(ids)) == 320
    report = verify_log(path)
    assert report.ok and report.decisions == 320, report.summary()
    assert fsyncs < 320


def test_a_failed_fsync_raises_in_every_append_of_its_batch_and_the_log_still_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.append(make_decision(0))
    gate = threading.Event()
    writes = 0
    failing: set[int] = set()  # the threads whose fsync fails: those that wrote the batch

    def gated_write(fd: int, data: Any) -> int:
        nonlocal writes
        writes += 1
        if writes == 1:  # the first batch waits for seven appends to queue behind it
            gate.wait(30)
        elif b"d000010" in bytes(data):
            failing.add(threading.get_ident())
        return os.write(fd, data)

    def failing_fsync(fd: int) -> None:
        if threading.get_ident() in failing:
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)

    monkeypatch.setattr(_jsonl, "_os_write", gated_write)
    monkeypatch.setattr(_jsonl, "_os_fsync", failing_fsync)
    # WHEN seven appends queue behind the first one, and their batch's fsync fails
    errors = _behind_a_held_append(log, path, 7, gate, lambda: writes > 0)
    # THEN every one of the seven raises: none takes its record for durable
    assert writes == 2 and len(failing) == 1  # one batch, one write
    assert len(errors) == 7
    assert all(isinstance(e, OSError) and e.errno == errno.EIO for e in errors)
    # AND the log still verifies, and the next append goes on from it
    monkeypatch.setattr(_jsonl, "_os_fsync", os.fsync)
    log.append(make_decision(99))
    report = verify_log(path)
    assert report.ok, report.summary()


def test_a_short_write_raises_in_every_append_of_its_batch_and_is_set_aside_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.append(make_decision(0))
    gate = threading.Event()
    writes = 0

    def full_disk(fd: int, data: Any) -> int:
        nonlocal writes
        writes += 1
        if writes == 1:  # the first batch waits for five appends to queue behind it
            gate.wait(30)
            return os.write(fd, data)
        # the batch of five stores one record and a half, then the disk is full
        if writes == 2:
            lines = bytes(data).split(b"\n")
            return os.write(fd, lines[0] + b"\n" + lines[1][: len(lines[1]) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_jsonl, "_os_write", full_disk)
    errors = _behind_a_held_append(log, path, 5, gate, lambda: writes > 0)
    # THEN all five appends raise, though the first record of the batch reached the file whole
    assert len(errors) == 5
    assert all(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in errors)
    assert not verify_log(path).ok  # an unrepaired crash tail: the half record
    # AND once space returns, the next append sets the torn half aside and the chain verifies
    monkeypatch.setattr(_jsonl, "_os_write", os.write)
    log.append(make_decision(99))
    report = verify_log(path)
    assert report.ok, report.summary()
    assert len(report.warnings) == 1 and "torn record" in report.warnings[0]
    assert [d.id for d in decisions(path)][-1] == "d000099"


def test_keyed_rotating_appends_from_many_threads_keep_one_chain(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, key="s3cret", rotate_bytes=60_000)

    def work(t: int) -> None:
        for i in range(15):
            log.append(make_decision(t * 100 + i, context=FULL_CONTEXT))

    assert _threads(8, work) == []
    assert len(list(tmp_path.glob("audit.jsonl.*"))) > 5
    report = verify_log(path, key="s3cret")
    assert report.ok and report.decisions == 120, report.summary()
    assert len({d.id for d in decisions(path)}) == 120


@pytest.mark.parametrize("rotate", [0, 40_000], ids=["appended", "rotated"])
def test_a_lone_writer_extends_what_other_processes_and_a_joining_thread_wrote(
    tmp_path: Path, rotate: int
):
    # GIVEN a lone writer, which has the end of the chain and the live file's identity cached
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, rotate_bytes=rotate or None)
    mine = [make_decision(i, context=FULL_CONTEXT) for i in range(12)]
    for decision in mine[:4]:
        log.append(decision)
    # WHEN two other processes append to the same path (and rotate the live file away under it)
    theirs = _run_writers(tmp_path, path, each=12, rotate=rotate)
    # AND the lone writer appends again, then a second thread joins it
    log.append(mine[4])
    assert _threads(2, lambda t: [log.append(d) for d in mine[5 + t :: 2]]) == []
    # THEN every record is there once, the lone writer's in its order, in one valid chain
    ids = [d.id for d in decisions(path)]
    assert len(ids) == 36 and set(ids) == theirs | {d.id for d in mine}
    assert [i for i in ids if i.startswith("d")][:5] == [d.id for d in mine[:5]]
    assert (len(list(tmp_path.glob("audit.jsonl.*"))) > 2) == bool(rotate)
    report = verify_log(path)
    assert report.ok and report.decisions == 36 and not report.warnings, report.summary()


def test_a_forked_child_extends_the_chain_its_parent_started_and_the_parent_goes_on(
    tmp_path: Path,
):
    # GIVEN a writer with its descriptor open and the end of the chain cached
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.append(make_decision(0))
    # WHEN a forked child appends through the same instance, then the parent does
    pid = os.fork()
    if pid == 0:  # the child: its own lock and descriptor, the parent's chain
        code = 1
        try:
            log.append(make_decision(1))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    log.append(make_decision(2))
    # THEN the three records are one chain, in that order
    assert [d.id for d in decisions(path)] == [make_decision(i).id for i in range(3)]
    report = verify_log(path)
    assert report.ok and not report.warnings, report.summary()
