"""Where the policies come from: a directory, an S3 prefix, or one AWS AppConfig document.

A `PolicySource` hands the store a `Snapshot`: a version and the policy files as the store reads
them (policy name -> (the name shown in messages, the bytes or why they could not be read)).
`fetch(known)` returns None while the version `known` is still the current one, so that polling is
cheap: an S3 prefix is one ListObjectsV2 (the version is a digest of the keys and ETags) and an
AppConfig session one GetLatestConfiguration that answers with nothing when nothing changed.

A source never half-reads: any failure to reach the store's backend raises `PolicyError` naming
the place and what to fix (a missing bucket, a missing IAM permission, no region). Sources are not
thread-safe; the `PolicyStore` calls `fetch` from one thread at a time.

boto3 and botocore are imported when an AWS client is first needed, not with this module.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import yaml

from moderation.errors import PolicyError, Problem
from moderation.policy._model import DEFAULT_POLICY
from moderation.policy._yaml import MAX_POLICY_BYTES, _syntax_problem
from moderation.s3location import bucket_problem

if TYPE_CHECKING:
    from mypy_boto3_appconfigdata import AppConfigDataClient
    from mypy_boto3_s3 import S3Client

__all__ = [
    "MAX_APPCONFIG_BYTES",
    "AppConfigSource",
    "DirectorySource",
    "Excerpt",
    "PolicySource",
    "S3Source",
    "Snapshot",
]


@dataclass(frozen=True, slots=True)
class Excerpt:
    """One policy cut out of a larger document: `text` begins on line `first_line` (1-based) of
    it, so that problems are reported at the document's own line numbers."""

    text: str
    first_line: int


#: What a source gives for one policy: its bytes (or text), an excerpt, or why it cannot be read.
Content = str | bytes | Excerpt | Problem
#: (the name shown in messages, the content).
Entry = tuple[str, Content]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One version of the policies: `files` maps a policy name (`default`, a tenant id) to
    (shown name, content). Names that start with a NUL carry a problem of the whole source."""

    version: str
    files: Mapping[str, Entry]

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))


@runtime_checkable
class PolicySource(Protocol):
    """A place policies are read from, polled for new versions."""

    def describe(self) -> str:
        """Where the policies are, for messages: a path, `s3://bucket/prefix`, ..."""
        ...

    def fetch(self, known: str | None) -> Snapshot | None:
        """The current version, or None when it is still `known`. PolicyError if the place
        cannot be read at all (what is wrong in a single file is a Problem in the snapshot)."""
        ...


def _digest(parts: Iterable[tuple[str, bytes]]) -> str:
    """`sha256:` and 12 hex digits of a digest over (name, data) pairs, in name order."""
    h = hashlib.sha256()
    for name, data in sorted(parts):
        encoded = name.encode("utf-8", "surrogateescape")
        for piece in (encoded, data):
            h.update(len(piece).to_bytes(8, "big"))
            h.update(piece)
    return "sha256:" + h.hexdigest()[:12]


def _content_bytes(content: Content) -> bytes:
    if isinstance(content, Problem):
        return b"\0problem\0" + content.message.encode()
    if isinstance(content, Excerpt):
        return f"{content.first_line}\0{content.text}".encode("utf-8", "surrogatepass")
    return content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content


def files_version(files: Mapping[str, Entry], root: Path | None = None) -> str:
    """The version of a set of policy files: a digest over each file's name (relative to `root`
    when given) and content, unreadable files by what is wrong with them."""

    def name(shown: str) -> str:
        return os.path.relpath(shown, root) if root is not None else shown

    return _digest((name(shown), _content_bytes(content)) for shown, content in files.values())


# --------------------------------------------------------------------------- a directory


def _open_nonblocking(path: str, flags: int) -> int:
    # Should the file be swapped for a FIFO between the stat and the open, the open still returns.
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _not_regular(mode: int) -> str | None:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def read_file(path: Path, shown: str) -> bytes | Problem:
    """The first MAX_POLICY_BYTES + 1 bytes of a policy file, or why it cannot be read.

    The type is checked with os.stat before anything is opened: opening a FIFO for reading waits
    for a writer, for ever.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return Problem(
                shown,
                "",
                f"cannot read: a symbolic link to {os.readlink(path)!r}, which does not exist",
                "fix or remove the link",
            )
        return Problem(shown, "", "cannot read: the file does not exist")
    except OSError as exc:
        return Problem(shown, "", f"cannot read: {_reason(exc)}")
    kind = _not_regular(st.st_mode)
    if kind is not None:
        return Problem(
            shown, "", f"cannot read: {kind}, not a regular file", "a policy is one YAML file"
        )
    try:
        with open(path, "rb", opener=_open_nonblocking) as fh:
            kind = _not_regular(os.fstat(fh.fileno()).st_mode)
            if kind is not None:
                return Problem(
                    shown,
                    "",
                    f"cannot read: {kind}, not a regular file",
                    "a policy is one YAML file",
                )
            return fh.read(MAX_POLICY_BYTES + 1)  # a bound on what we read; read_yaml names excess
    except OSError as exc:
        return Problem(shown, "", f"cannot read: {_reason(exc)}")


def _tenant_files(root: Path, tenants: Path) -> list[Path] | Problem:
    """The policy files in `tenants/`, or why that directory cannot be used."""
    if not os.path.lexists(tenants):
        return []
    shown = str(tenants)
    try:
        real = tenants.resolve()
    except (OSError, RuntimeError):  # a loop of links
        return Problem(shown, "", "cannot read tenants/: a loop of symbolic links")
    if not real.is_relative_to(root.resolve()):
        return Problem(
            shown,
            "",
            "refused: tenants/ resolves outside the policy directory",
            "keep the tenant files inside the policy directory",
        )
    try:
        st = os.stat(tenants)
    except FileNotFoundError:
        return Problem(
            shown,
            "",
            f"tenants is a symbolic link to {os.readlink(tenants)!r}, which does not exist",
        )
    except OSError as exc:
        return Problem(shown, "", f"cannot read tenants/: {_reason(exc)}")
    if not stat.S_ISDIR(st.st_mode):
        return Problem(shown, "", "tenants is not a directory", "tenant files go in tenants/")
    try:
        return sorted(p for p in tenants.iterdir() if p.suffix in (".yaml", ".yml"))
    except OSError as exc:
        return Problem(shown, "", f"cannot read tenants/: {_reason(exc)}")


def read_dir(root: Path) -> dict[str, Entry]:
    """`default.yaml` and `tenants/*.yaml|yml` of a policy directory, each read or refused."""
    resolved_root = root.resolve()
    found: dict[str, Entry] = {}
    default = root / "default.yaml"
    candidates = [default]
    listing = _tenant_files(root, root / "tenants")
    if isinstance(listing, Problem):
        found["\0tenants"] = (listing.file, listing)
    else:
        candidates += listing
    for p in candidates:
        shown = str(p)
        name = DEFAULT_POLICY if p == default else p.stem
        if name in found:
            found[f"{name}\0{p.suffix}"] = (
                shown,
                Problem(shown, "", f"a second file for '{name}'", "keep one of .yaml/.yml"),
            )
            continue
        if not os.path.lexists(p):
            if p == default:
                found[name] = (shown, Problem(shown, "", "default.yaml not found"))
            continue
        try:
            inside = p.resolve().is_relative_to(resolved_root)
        except (OSError, RuntimeError):  # a loop of links
            found[name] = (shown, Problem(shown, "", "cannot read: a loop of symbolic links"))
            continue
        if not inside:
            found[name] = (
                shown,
                Problem(shown, "", "refused: the file resolves outside the policy directory"),
            )
            continue
        found[name] = (shown, read_file(p, shown))
    return found


class DirectorySource:
    """`default.yaml` and `tenants/*.yaml` in a directory; the version is a digest of the files
    read (so every check reads them all: a directory is local and small)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DirectorySource({str(self.path)!r})"

    def describe(self) -> str:
        """The directory."""
        return str(self.path)

    def fetch(self, known: str | None) -> Snapshot | None:
        """Every policy file, or None if their digest is still `known`."""
        if not self.path.is_dir():
            raise PolicyError([Problem(str(self.path), "", "policy directory not found")])
        files = read_dir(self.path)
        version = files_version(files, self.path)
        return None if version == known else Snapshot(version, files)


# --------------------------------------------------------------------------- AWS clients

#: Connect and read timeouts of the clients built here: a check for new policies is made by a
#: caller that is moderating an image, so it must not hang.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0


def _build_client(service: str, region: str | None, where: str) -> Any:
    """A boto3 client with botocore's standard retries (3 attempts) and short timeouts."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, NoRegionError

    from moderation._version import __version__

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        user_agent_extra=f"moderation/{__version__}",
    )
    session = boto3.Session()
    if region is None and session.region_name is None:
        # botocore reads AWS_DEFAULT_REGION and the config file, not AWS_REGION, which is the one
        # Lambda and most container platforms set.
        region = os.environ.get("AWS_REGION") or None
    try:
        return session.client(service, region_name=region, config=config)  # type: ignore[call-overload]
    except NoRegionError as exc:
        raise PolicyError(
            [
                Problem(
                    where,
                    "",
                    f"cannot read the policies: no AWS region for {service}",
                    "set MODERATION_REGION or AWS_REGION (or a region in the AWS config file)",
                )
            ]
        ) from exc
    except (BotoCoreError, ValueError) as exc:
        raise PolicyError(
            [Problem(where, "", f"cannot build the {service} client: {type(exc).__name__}: {exc}")]
        ) from exc


def _aws_failure(exc: Exception) -> tuple[str | None, str]:
    """(error code, what the service or botocore said) of an AWS failure."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "") or None
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(error.get("Message") or code or f"HTTP {status}")
        return code, message
    return None, f"{type(exc).__name__}: {exc}"


def _credentials_hint(exc: Exception) -> str | None:
    from botocore.exceptions import NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: give the process a role, or set AWS_PROFILE or AWS keys"
    return None


# --------------------------------------------------------------------------- an S3 prefix

_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden"})
_GONE = frozenset({"NoSuchKey", "PreconditionFailed", "404", "412", "NotFound"})
_ATTEMPTS = 3  # listings tried when objects change between the List and the Gets


class _Changed(Exception):
    """An object changed or vanished between the listing and its GetObject."""


@dataclass(frozen=True, slots=True)
class _Object:
    key: str
    etag: str
    size: int


class S3Source:
    """The directory layout under an S3 prefix: `prefix/default.yaml`, `prefix/tenants/*.yaml`.

    A check lists the prefix (ListObjectsV2, paginated); the version is a digest of the policy
    keys and their ETags, so an unchanged prefix costs one List and no Get. Each object is read
    with `If-Match` its listed ETag, so a version never mixes two uploads. The role needs
    `s3:ListBucket` on the bucket and `s3:GetObject` on `prefix/*`.

    Without `client`, one is built on the first check: botocore's standard retries (3 attempts),
    2 s connect and 5 s read timeouts, region `region` (else AWS_REGION or boto3's own).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: S3Client | Any | None = None,
        region: str | None = None,
    ) -> None:
        if (problem := bucket_problem(bucket)) is not None:
            raise PolicyError([Problem(f"s3://{bucket}", "", problem, "write s3://bucket/prefix")])
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._region = region

    def __repr__(self) -> str:
        return f"S3Source({self.bucket!r}, {self.prefix!r})"

    def describe(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def client(self) -> Any:
        """The S3 client (built on first use unless one was given)."""
        if self._client is None:
            self._client = _build_client("s3", self._region, self.describe())
        return self._client

    def _key_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _shown(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self._key_prefix()}{relative}"

    def _iam_hint(self) -> str:
        objects = f"arn:aws:s3:::{self.bucket}/{self._key_prefix()}*"
        return (
            f"the role needs s3:ListBucket on arn:aws:s3:::{self.bucket} and s3:GetObject on "
            f"{objects}"
        )

    def _fail(self, what: str, exc: Exception) -> PolicyError:
        code, said = _aws_failure(exc)
        where = self.describe()
        if code == "NoSuchBucket":
            return PolicyError(
                [
                    Problem(
                        where,
                        "",
                        f"bucket '{self.bucket}' does not exist",
                        f"check MODERATION_POLICIES; {self._iam_hint()}",
                    )
                ]
            )
        if code in _DENIED:
            return PolicyError(
                [
                    Problem(
                        where,
                        "",
                        f"access denied to {what} in bucket '{self.bucket}' ({said})",
                        self._iam_hint(),
                    )
                ]
            )
        hint = _credentials_hint(exc)
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "301"):
            hint = "the bucket is in another region: set MODERATION_REGION to the bucket's region"
        label = f"{code}: {said}" if code and code not in said else said
        return PolicyError([Problem(where, "", f"cannot {what}: {label}", hint)])

    def _list(self) -> list[_Object]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: list[_Object] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key_prefix()
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    found.append(
                        _Object(str(item["Key"]), str(item.get("ETag", "")), int(item["Size"]))
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"list {self.describe()}/", exc) from exc
        return found

    def _layout(self, objects: list[_Object]) -> dict[str, tuple[str, _Object | Problem]]:
        """The policy objects of the listing, by policy name, as a directory would have them."""
        start = len(self._key_prefix())
        chosen: dict[str, tuple[str, _Object | Problem]] = {}
        for obj in sorted(objects, key=lambda o: o.key):
            relative = obj.key[start:]
            if relative == "default.yaml":
                name = DEFAULT_POLICY
            elif relative.startswith("tenants/") and relative.count("/") == 1:
                stem, dot, suffix = relative[len("tenants/") :].rpartition(".")
                if not dot or suffix not in ("yaml", "yml") or not stem:
                    continue
                name = stem
            else:
                continue
            shown = self._shown(relative)
            if name in chosen:
                chosen[f"{name}\0{relative}"] = (
                    shown,
                    Problem(shown, "", f"a second file for '{name}'", "keep one of .yaml/.yml"),
                )
                continue
            chosen[name] = (shown, obj)
        if DEFAULT_POLICY not in chosen:
            shown = self._shown("default.yaml")
            empty = not objects
            chosen[DEFAULT_POLICY] = (
                shown,
                Problem(
                    shown,
                    "",
                    "default.yaml not found"
                    + (f": nothing is stored under {self.describe()}/" if empty else ""),
                    "check the bucket and prefix; policies are default.yaml and tenants/*.yaml "
                    "under the prefix",
                ),
            )
        return chosen

    def _get(self, obj: _Object) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        params: dict[str, Any] = {"Bucket": self.bucket, "Key": obj.key}
        if obj.etag:
            params["IfMatch"] = obj.etag
        if obj.size > MAX_POLICY_BYTES:  # read_yaml names the excess; no need for all of it
            params["Range"] = f"bytes=0-{MAX_POLICY_BYTES}"
        try:
            body = self.client.get_object(**params)["Body"]
            try:
                return bytes(body.read(MAX_POLICY_BYTES + 1))
            finally:
                body.close()
        except ClientError as exc:
            code, _ = _aws_failure(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _GONE or status in (404, 412):
                raise _Changed from exc
            raise self._fail(f"read s3://{self.bucket}/{obj.key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"read s3://{self.bucket}/{obj.key}", exc) from exc

    def fetch(self, known: str | None) -> Snapshot | None:
        """Every policy object under the prefix, or None (after one List) if still `known`."""
        for _ in range(_ATTEMPTS):
            layout = self._layout(self._list())
            start = len(self._key_prefix())
            version = _digest(
                (
                    (item.key[start:], item.etag.encode())
                    if isinstance(item, _Object)
                    else (shown, _content_bytes(item))
                )
                for shown, item in layout.values()
            )
            if version == known:
                return None
            files: dict[str, Entry] = {}
            try:
                for name, (shown, item) in layout.items():
                    files[name] = (shown, item if isinstance(item, Problem) else self._get(item))
            except _Changed:
                continue  # uploaded or deleted while we read: list again
            return Snapshot(version, files)
        raise PolicyError(
            [
                Problem(
                    self.describe(),
                    "",
                    f"the policy objects changed during each of {_ATTEMPTS} attempts to read them",
                    "upload the files, then let the next check read them",
                )
            ]
        )


# --------------------------------------------------------------------------- AWS AppConfig

#: The largest AppConfig document read (AppConfig's own limit is lower unless raised).
MAX_APPCONFIG_BYTES = 4 * 1024 * 1024
_TOP_KEYS = ("default", "tenants")
_NULL_TAG = "tag:yaml.org,2002:null"
# AppConfig refuses a minimum poll interval under 15 seconds.
MIN_POLL_SECONDS = 15


def _node_line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _compose(text: str, where: str) -> yaml.Node | Problem:
    """The document's node tree (aliases not expanded), or why there is none."""
    loader = yaml.SafeLoader(text)
    nodes: list[yaml.Node] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                nodes.append(node)
    except yaml.YAMLError as exc:
        return _syntax_problem(exc, text, where)
    except RecursionError:
        return Problem(where, "", "YAML nesting is too deep")
    finally:
        loader.dispose()
    if len(nodes) != 1:
        what = "is empty" if not nodes else f"holds {len(nodes)} documents"
        return Problem(
            where,
            "",
            f"the configuration {what}; it is one YAML or JSON mapping",
            "{default: <policy>, tenants: {<tenant>: <policy>, ...}}",
        )
    return nodes[0]


def split_document(data: bytes, where: str) -> dict[str, Entry]:
    """The policies of one AppConfig document: `{default: <policy>, tenants: {<id>: <policy>}}`.

    Each policy is cut out of the document as an `Excerpt` and read by the store like a file,
    named `<where>#default` or `<where>#tenants/<id>`, with the document's line numbers. What is
    wrong with the document's own shape is reported under `<where>`.
    """
    files: dict[str, Entry] = {}
    problems: list[Problem] = []

    def problem(path: str, message: str, hint: str | None = None, line: int | None = None) -> None:
        problems.append(Problem(where, path, message, hint, line))

    def policy_entry(node: yaml.Node, shown: str) -> Content:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return Problem(
                shown, "", "empty policy", "write the policy as a mapping under this key", None
            )
        start, end = node.start_mark, node.end_mark
        return Excerpt(" " * start.column + text[start.index : end.index], start.line + 1)

    text = ""
    if len(data) > MAX_APPCONFIG_BYTES:
        problem("", f"the configuration is larger than {MAX_APPCONFIG_BYTES} bytes")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")
    root: yaml.Node | Problem | None = None
    if not problems:
        if "\t" in text:
            # JSON may be indented with tabs, which YAML refuses; valid JSON has no raw tab
            # inside a string, so they can become spaces without moving anything.
            try:
                json.loads(text)
            except ValueError:
                pass
            else:
                text = text.replace("\t", " ")
        root = _compose(text, where)
        if isinstance(root, Problem):
            problems.append(root)
        elif not isinstance(root, yaml.MappingNode):
            problem(
                "",
                "the configuration must be a mapping with the keys default and tenants",
                "{default: <policy>, tenants: {<tenant>: <policy>, ...}}",
                _node_line(root),
            )
    if isinstance(root, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in root.value:
            key, line = str(key_node.value), _node_line(key_node)
            if not isinstance(key_node, yaml.ScalarNode) or key not in _TOP_KEYS:
                close = difflib.get_close_matches(key, _TOP_KEYS, n=1, cutoff=0.5)
                problem(
                    key,
                    f"unknown key '{key}'",
                    f"did you mean '{close[0]}'?" if close else "allowed here: default, tenants",
                    line,
                )
                continue
            if key in seen:
                problem(key, f"duplicate key '{key}' (first at line {seen[key]})", None, line)
                continue
            seen[key] = line
            if key == DEFAULT_POLICY:
                shown = f"{where}#default"
                files[DEFAULT_POLICY] = (shown, policy_entry(value_node, shown))
                continue
            if not isinstance(value_node, yaml.MappingNode):
                problem(
                    "tenants",
                    "tenants must be a mapping of tenant id to policy",
                    "e.g. tenants: {kids: {extends: default}}; leave the key out for none",
                    line,
                )
                continue
            names: dict[str, int] = {}
            for name_node, policy_node in value_node.value:
                name, name_line = str(name_node.value), _node_line(name_node)
                path = f"tenants.{name}"
                if not isinstance(name_node, yaml.ScalarNode):
                    problem("tenants", "a tenant id must be text", None, name_line)
                elif name in names:
                    problem(
                        path,
                        f"duplicate tenant '{name}' (first at line {names[name]})",
                        "keep one",
                        name_line,
                    )
                elif name == DEFAULT_POLICY:
                    problem(
                        path,
                        "'default' is the root policy, not a tenant",
                        "write it as the top-level `default:`",
                        name_line,
                    )
                else:
                    names[name] = name_line
                    shown = f"{where}#tenants/{name}"
                    files[name] = (shown, policy_entry(policy_node, shown))
        if DEFAULT_POLICY not in files:
            shown = f"{where}#default"
            files[DEFAULT_POLICY] = (
                shown,
                Problem(
                    shown,
                    "",
                    "no default policy",
                    "the document needs a top-level `default:` holding the root policy",
                ),
            )
    elif problems:
        # Nothing could be read: the document's problem stands for the default policy too.
        files[DEFAULT_POLICY] = (where, problems.pop(0))
    # What is wrong with the document itself first, then each policy's problems.
    head: dict[str, Entry] = {f"\0document{i}": (where, p) for i, p in enumerate(problems)}
    return head | files


class AppConfigSource:
    """One AWS AppConfig configuration profile holding every policy, read with AppConfig Data.

    The configuration is one YAML (or JSON) document, `{default: <policy>, tenants: {<tenant id>:
    <policy>, ...}}`. A session is started (StartConfigurationSession) on the first check and each
    check then calls GetLatestConfiguration with the token the last call returned: an empty
    answer means unchanged. A token that expired (or a refused call) starts a new session; a check
    made before AppConfig's poll interval has passed is answered as unchanged, without a call.
    The version is the hosted configuration's VersionLabel when it has one, else a digest.
    The role needs `appconfig:StartConfigurationSession` and `appconfig:GetLatestConfiguration`.
    """

    def __init__(
        self,
        application: str,
        environment: str,
        profile: str,
        *,
        client: AppConfigDataClient | Any | None = None,
        region: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for what, value in (
            ("application", application),
            ("environment", environment),
            ("profile", profile),
        ):
            if not value or not value.strip() or len(value) > 128:
                raise PolicyError(
                    [
                        Problem(
                            f"appconfig://{application}/{environment}/{profile}",
                            "",
                            f"the {what} must be a name or id of 1 to 128 characters",
                            "write appconfig://application/environment/profile",
                        )
                    ]
                )
        self.application = application
        self.environment = environment
        self.profile = profile
        self._client = client
        self._region = region
        self._clock = clock
        self._token: str | None = None
        self._next_poll = float("-inf")
        self._last: Snapshot | None = None
        self._last_body: bytes | None = None

    def __repr__(self) -> str:
        return f"AppConfigSource({self.application!r}, {self.environment!r}, {self.profile!r})"

    def describe(self) -> str:
        """`appconfig:application/environment/profile`: also the start of every shown name."""
        return f"appconfig:{self.application}/{self.environment}/{self.profile}"

    @property
    def client(self) -> Any:
        """The AppConfig Data client (built on first use unless one was given)."""
        if self._client is None:
            self._client = _build_client("appconfigdata", self._region, self.describe())
        return self._client

    def _fail(self, operation: str, exc: Exception) -> PolicyError:
        code, said = _aws_failure(exc)
        where = self.describe()
        if code == "ResourceNotFoundException":
            return PolicyError(
                [
                    Problem(
                        where,
                        "",
                        f"AppConfig has no such configuration ({said})",
                        f"check the application '{self.application}', environment "
                        f"'{self.environment}' and profile '{self.profile}' (names or ids), and "
                        "that a configuration was deployed to that environment",
                    )
                ]
            )
        if code in ("AccessDeniedException", "AccessDenied", "403"):
            return PolicyError(
                [
                    Problem(
                        where,
                        "",
                        f"access denied to {operation} ({said})",
                        "the role needs appconfig:StartConfigurationSession and "
                        "appconfig:GetLatestConfiguration on arn:aws:appconfig:REGION:ACCOUNT:"
                        "application/APP_ID/environment/ENV_ID/configuration/PROFILE_ID",
                    )
                ]
            )
        label = f"{code}: {said}" if code and code not in said else said
        return PolicyError(
            [Problem(where, "", f"{operation} failed: {label}", _credentials_hint(exc))]
        )

    def _start(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.start_configuration_session(
                ApplicationIdentifier=self.application,
                EnvironmentIdentifier=self.environment,
                ConfigurationProfileIdentifier=self.profile,
                RequiredMinimumPollIntervalInSeconds=MIN_POLL_SECONDS,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("StartConfigurationSession", exc) from exc
        return str(answer["InitialConfigurationToken"])

    def _poll(self) -> dict[str, Any]:
        """One GetLatestConfiguration answer, on a new session if the current token is refused."""
        from botocore.exceptions import BotoCoreError, ClientError

        while True:
            fresh = self._token is None
            token = self._token if self._token is not None else self._start()
            self._token = None  # a token is good for one call, whatever happens to it
            try:
                answer: dict[str, Any] = dict(
                    self.client.get_latest_configuration(ConfigurationToken=token)
                )
            except ClientError as exc:
                code, _ = _aws_failure(exc)
                if code == "BadRequestException" and not fresh:
                    continue  # an expired token, or a call too early: a new session answers
                raise self._fail("GetLatestConfiguration", exc) from exc
            except BotoCoreError as exc:
                raise self._fail("GetLatestConfiguration", exc) from exc
            self._token = str(answer["NextPollConfigurationToken"])
            interval = float(answer.get("NextPollIntervalInSeconds") or MIN_POLL_SECONDS)
            self._next_poll = self._clock() + interval
            return answer

    def _unchanged(self, known: str | None) -> Snapshot | None:
        last = self._last
        return None if last is None or last.version == known else last

    def fetch(self, known: str | None) -> Snapshot | None:
        """The deployed configuration, or None if AppConfig says it is unchanged and the last
        one this source returned was `known`."""
        if self._last is not None and self._token is not None and self._clock() < self._next_poll:
            return self._unchanged(known)
        from botocore.exceptions import BotoCoreError

        answer = self._poll()
        stream = answer.get("Configuration")
        body = b""
        if stream is not None:
            try:
                body = bytes(stream.read(MAX_APPCONFIG_BYTES + 1))
            except BotoCoreError as exc:
                self._token = None  # the answer was lost: a new session asks again
                raise self._fail("GetLatestConfiguration", exc) from exc
            finally:
                stream.close()
        if not body and self._last is not None:
            return self._unchanged(known)
        if body == self._last_body:  # a new session's first answer repeats what we have
            return self._unchanged(known)
        label, digest = answer.get("VersionLabel"), _digest([("configuration", body)])
        version = str(label) if label else digest
        if self._last is not None and version == self._last.version:
            version = f"{version}+{digest}"  # the same label on other content: still a change
        where = self.describe()
        files = (
            split_document(body, where)
            if body
            else {
                DEFAULT_POLICY: (
                    where,
                    Problem(
                        where,
                        "",
                        "the configuration is empty",
                        "deploy {default: <policy>, tenants: {...}} to the environment",
                    ),
                )
            }
        )
        self._last, self._last_body = Snapshot(version, files), body
        return None if version == known else self._last
