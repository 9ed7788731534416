"""`moderation audit digest s3://...`, and `audit verify` of an S3 trail against its digests.

Exit codes: 0 ok (records written after the newest digest are reported as not yet covered, not
as tampering); 1 a digest or record does not match (each finding named), the trail not found, or
a digest could not be written; 2 usage error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import click

from moderation.audit._digest import SETTLE, DigestError, DigestRun, write_digest
from moderation.audit._s3read import S3Store, is_s3
from moderation.audit._s3verify import S3VerifyReport, verify_s3
from moderation.cli._common import KEY_ENV, audit_key
from moderation.cli._sources import Source
from moderation.errors import AWSError, ConfigurationError
from moderation.settings import read_env

__all__ = ["digest", "verify_trails"]

_EPILOG = f"""\b
Exit codes:
  0  ok: a digest was written, or there was nothing new to cover
  1  the digest could not be written (the newest digest does not verify, S3 failed)
  2  usage error

The key that signs the digests comes from {KEY_ENV} or --key-file (never from the command
line). docs/audit.md, "Digests of an S3 trail", explains what a digest covers."""


def _store(uri: str) -> S3Store:
    try:
        return S3Store.open(uri, region=read_env().settings.region)
    except (ValueError, ConfigurationError, AWSError) as exc:
        raise click.BadParameter(str(exc), param_hint="S3_PREFIX") from exc


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run_json(store: S3Store, run: DigestRun) -> dict[str, object]:
    return {
        "trail": store.uri,
        "digest": store.uri_of(run.key) if run.key else None,
        "seq": run.seq,
        "start": _when(run.start),
        "end": _when(run.end),
        "records": run.records,
        "vanished": [store.uri_of(key) for key in run.vanished],
        "skipped": run.skipped,
    }


@click.command(epilog=_EPILOG)
@click.argument("uri", metavar="S3_PREFIX")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the HMAC key that signs the digest from FILE; default: ${KEY_ENV}.",
)
@click.option(
    "--settle",
    type=click.IntRange(min=0),
    default=int(SETTLE.total_seconds()),
    show_default=True,
    help="Cover records written up to this many seconds ago (later ones: the next digest).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def digest(uri: str, key_file: Path | None, settle: int, as_json: bool) -> None:
    """Write the next digest of the S3 audit trail S3_PREFIX (`s3://bucket/prefix`): every
    record object written since the previous digest, with its SHA-256, chained to the previous
    digest and signed with an HMAC under the key. Safe to run while writers write, and twice at
    once (one of the runs writes the digest)."""
    if not is_s3(uri):
        raise click.BadParameter("a digest is of an S3 trail: s3://bucket/prefix", param_hint=uri)
    key = audit_key(key_file)
    store = _store(uri)
    if key is None:
        click.echo(
            f"warning: no key ({KEY_ENV}): the digest is plain SHA-256, which whoever can write "
            "the bucket can recompute",
            err=True,
        )
    try:
        run = write_digest(store, key=key, settle=timedelta(seconds=settle))
    except DigestError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(1) from exc
    for vanished in run.vanished:
        click.echo(f"warning: {store.uri_of(vanished)} was deleted before it was hashed", err=True)
    if as_json:
        click.echo(json.dumps(_run_json(store, run)))
    elif run.key is None:
        click.echo(f"{store.uri}: no digest written: {run.skipped}")
    else:
        click.echo(
            f"{store.uri_of(run.key)}: digest {run.seq}, {run.records} records written after "
            f"{_when(run.start) or 'the start'} up to {_when(run.end)}"
        )


def _print_report(report: S3VerifyReport) -> None:
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for finding in report.findings:
        click.echo(f"  {finding}", err=True)
    click.echo(f"{report.uri}: {report.summary()}", err=not report.ok)


def verify_trails(
    sources: tuple[Source, ...], *, key_file: Path | None, since: datetime | None
) -> NoReturn:
    """`audit verify` of S3 trails: each against its digests; exits 0 or 1 as `verify` does."""
    if not any(isinstance(source, str) and is_s3(source) for source in sources):
        raise click.UsageError("--from DATE names a digest of an s3:// trail, not a log file's")
    if not all(isinstance(source, str) and is_s3(source) for source in sources):
        raise click.UsageError("give either log files or s3:// trails, not both")
    key = audit_key(key_file)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    failed = False
    for source in sources:
        assert isinstance(source, str)
        store = _store(source)
        try:
            report = verify_s3(store, key=key, since=since)
        except (FileNotFoundError, AWSError) as exc:
            click.echo(f"{source}: FAILED: {exc}", err=True)
            failed = True
            continue
        _print_report(report)
        failed |= not report.ok
    raise click.exceptions.Exit(1 if failed else 0)
