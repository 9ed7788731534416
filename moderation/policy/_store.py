"""The `PolicyStore`: every tenant's policy, validated together, and kept up to date.

A store reads `default.yaml` and `tenants/*.yaml` from a directory, an S3 prefix or an AppConfig
profile, builds one `Version` of every policy from them (`_build`: each file checked, `extends`
chains resolved) and hands out resolved `Policy`s. With a ttl it checks its source for a new
version on a thread of its own, and swaps in a valid one whole; an invalid one leaves the last
good version in force. No reader waits for a check.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from moderation.errors import InvalidS3Location, PolicyError, Problem, UnknownTenant
from moderation.policy._build import Version, build_version, with_init_hint
from moderation.policy._check import close_match
from moderation.policy._checker import CHECKER
from moderation.policy._model import DEFAULT_POLICY, Policy, validate_tenant
from moderation.policy.sources import (
    DirectorySource,
    Entry,
    PolicySource,
    Snapshot,
    files_version,
    read_file,
)
from moderation.s3location import S3Prefix
from moderation.settings import policies_location

__all__ = ["PolicyStore"]

logger = logging.getLogger("moderation.policy")

#: Seconds between checks for new policies in S3 or AppConfig when `load` is given no ttl.
DEFAULT_TTL = 60.0

#: The stores that check their source, for a forked child to forget their parent's checks.
_CHECKED: weakref.WeakSet[PolicyStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_CHECKED):
        store._after_fork()


def _detail(exc: BaseException) -> str:
    return exc.rendered() if isinstance(exc, PolicyError) else f"{type(exc).__name__}: {exc}"


def _first_fetch(source: PolicySource) -> Snapshot | None:
    """What `source` holds now; a PolicyError saying there is no store hints at `policy init`."""
    try:
        return source.fetch(None)
    except PolicyError as exc:
        hinted = [with_init_hint(p) for p in exc.problems]
        if hinted == list(exc.problems):
            raise
        raise PolicyError(hinted, exc.warnings) from exc


class PolicyStore:
    """Every tenant's policy, all validated together before any is handed out.

    `PolicyStore(dir)` reads a directory once; `PolicyStore.load(location)` reads a directory, an
    S3 prefix (`s3://bucket/prefix`) or an AWS AppConfig profile
    (`appconfig://application/environment/profile`) and, with a ttl, checks it again for a new
    version once the ttl has passed: the first read after it starts the check on a thread of its
    own and, like every read meanwhile, gets the version in force. A new version is validated
    whole, on that thread, and swapped in at once; an invalid one (or a failed check) is logged
    at ERROR on the `moderation.policy` logger, kept in `last_error`, and the last good version
    stays in force. A tenant the new version no longer has is logged at WARNING by name. Every
    `Policy` records the `version` it came from. Reads are safe from any number of threads; use
    `snapshot()` to read several policies from one version.

    `get(tenant)` raises `UnknownTenant` for a tenant with no policy file, unless the store was
    built with `fallback_to_default=True`: then such a tenant gets the default policy, whose `id`
    stays `default` (so a caller can tell a fallback by `policy.id != tenant`). A shadow
    candidate (a policy named under another's `shadow`) is never a tenant: `get` refuses it with
    `UnknownTenant` either way. `default` is a tenant like any policy file: the tenant must come
    from the caller's authentication, never from the request.

    `policy(id)` gets a policy by its own id (never a fallback), and `shadows(policy)` the policies
    it names under `shadow`: ids the store checked when it was built.

    `drafts`: policy files from outside the directory, each read as tenant `<file stem>` (in place
    of a tenant file of that name), so a new tenant is checked with everything it extends.
    """

    path: Path | None
    location: str | None
    fallback_to_default: bool
    last_error: PolicyError | Exception | None

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fallback_to_default: bool = False,
        drafts: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        root = Path(path)
        source = DirectorySource(root)
        snapshot = _first_fetch(source)
        assert snapshot is not None  # nothing is known yet
        draft_paths = [Path(d) for d in drafts]
        if not draft_paths:
            self._start(
                build_version(snapshot.files, snapshot.version),
                fallback_to_default,
                path=root,
                location=str(root),
                source=source,
            )
            return
        files = dict(snapshot.files)
        for draft in draft_paths:
            name = draft.stem
            for key in [k for k in files if k.split("\0")[0] == name]:
                del files[key]
            files[name] = (str(draft), read_file(draft, str(draft)))
        # Drafts are read once: a store with drafts is never checked again.
        self._start(
            build_version(files, files_version(files, root)),
            fallback_to_default,
            path=root,
            location=str(root),
        )

    def _start(
        self,
        loaded: Version,
        fallback_to_default: bool,
        *,
        path: Path | None = None,
        location: str | None = None,
        source: PolicySource | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl == math.inf:
            ttl = None
        self.path = path
        self.location = location
        self.fallback_to_default = fallback_to_default
        self.last_error = None
        self._loaded = loaded
        self._view: PolicyStore | None = None  # `snapshot()`'s, while `loaded` is in force
        self._source = source
        self._ttl = ttl if source is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        # The version the source last gave (it may have been refused) and why it was refused.
        self._seen = loaded.version
        self._seen_error: PolicyError | None = None
        self._due = clock() + self._ttl if self._ttl is not None else math.inf
        # Set while no check runs in the background (`wait_for_check`).
        self._idle = threading.Event()
        self._idle.set()
        if self._ttl is not None:
            _CHECKED.add(self)
            CHECKER.ensure_started()  # here, not on the request path

    @classmethod
    def from_sources(
        cls,
        sources: Mapping[str, str | bytes],
        *,
        fallback_to_default: bool = False,
    ) -> PolicyStore:
        """A store from in-memory documents: `{"default": yaml_text, "kids": yaml_text}`."""
        store = cls.__new__(cls)
        files: dict[str, Entry] = {
            name: (f"{name}.yaml" if name == DEFAULT_POLICY else f"tenants/{name}.yaml", text)
            for name, text in sources.items()
        }
        store._start(build_version(files, None), fallback_to_default)
        return store

    @classmethod
    def from_source(
        cls,
        source: PolicySource,
        *,
        ttl: float | None = None,
        fallback_to_default: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> PolicyStore:
        """A store of what `source` holds now, checked again every `ttl` seconds (None or
        math.inf: never). PolicyError if the current version cannot be read or is invalid."""
        if ttl is not None and not ttl > 0:
            raise ValueError(
                f"ttl must be a positive number of seconds (None: never check again), got {ttl!r}"
            )
        snapshot = _first_fetch(source)
        if snapshot is None:
            raise TypeError(
                f"{source!r}.fetch(None) returned None: with no version known, a source returns "
                "its current one"
            )
        store = cls.__new__(cls)
        store._start(
            build_version(snapshot.files, snapshot.version),
            fallback_to_default,
            path=source.path if isinstance(source, DirectorySource) else None,
            location=source.describe(),
            source=source,
            ttl=ttl,
            clock=clock,
        )
        return store

    @classmethod
    def load(
        cls,
        location: str | os.PathLike[str],
        *,
        ttl: float | None = None,
        fallback_to_default: bool = False,
        region: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        s3_client: Any | None = None,
        appconfig_client: Any | None = None,
    ) -> PolicyStore:
        """The policies at `location`: a directory, `s3://bucket/prefix` or
        `appconfig://application/environment/profile` (MODERATION_POLICIES).

        `ttl`: seconds between checks for a new version; None is 60 for S3 and AppConfig and
        never for a directory; math.inf is never. The first load must succeed: PolicyError lists
        every problem. `region`, `s3_client` and `appconfig_client` are for the AWS sources
        (an injected client keeps its own configuration); `clock` times the ttl.
        """
        spec = os.fspath(location)
        kind = policies_location(spec)
        source = _source(
            spec,
            kind,
            region=region,
            clock=clock,
            s3_client=s3_client,
            appconfig_client=appconfig_client,
        )
        if ttl is None and kind != "dir":
            ttl = DEFAULT_TTL
        store = cls.from_source(
            source, ttl=ttl, fallback_to_default=fallback_to_default, clock=clock
        )
        store.location = spec
        return store

    @classmethod
    def of(
        cls, policies: PolicyStore | Mapping[str, str | bytes] | str | os.PathLike[str]
    ) -> PolicyStore:
        """`policies` itself if it is a store; else a store from a directory (or an `s3://` or
        `appconfig://` location, read by `load`) or from in-memory documents (`from_sources`).
        TypeError for anything else."""
        if isinstance(policies, PolicyStore):
            return policies
        if isinstance(policies, str) and policies_location(policies) != "dir":
            return cls.load(policies)
        if isinstance(policies, str | os.PathLike):
            return cls(policies)
        if isinstance(policies, Mapping):
            return cls.from_sources(policies)
        raise TypeError(
            "policies is a PolicyStore, a policy directory or a mapping of tenant to YAML, "
            f"not {type(policies).__name__}"
        )

    def __repr__(self) -> str:
        return f"PolicyStore({self.location!r}, version={self._loaded.version!r})"

    # ----------------------------------------------------------------------- reloading

    def _current(self) -> Version:
        """The version in force. Once the ttl has passed, the first caller starts a check in the
        background (`_start_check`) and goes on, like every other caller, with this version."""
        loaded = self._loaded
        if self._ttl is not None and self._clock() >= self._due:
            self._start_check()
        return loaded

    def _start_check(self) -> None:
        """A check on the checker's thread (`CHECKER`), unless one is under way: no reader
        waits for the source, nor for the validation of what it holds."""
        if not self._lock.acquire(blocking=False):
            return  # a check is under way
        if self._clock() < self._due:  # made by another caller since this one looked
            self._lock.release()
            return
        self._idle.clear()
        try:
            CHECKER.submit(self)
        except RuntimeError as exc:  # no thread to be had (interpreter shutting down)
            self._end_check()
            self._idle.set()
            logger.error("policies at %s: cannot start a check: %s", self.location, exc)

    def _check_in_background(self) -> None:
        """The check `_start_check` handed the checker's thread (which holds the lock for it)."""
        try:
            self._refresh()
        finally:
            self._end_check()
            self._idle.set()

    def _end_check(self) -> None:
        """After a check, with the lock held: the next one is due a ttl from now."""
        if self._ttl is not None:
            self._due = self._clock() + self._ttl
        self._lock.release()

    def _after_fork(self) -> None:
        """In a forked child: the parent's check thread does not exist here."""
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def _refresh(self) -> bool:
        assert self._source is not None
        current = self._loaded
        where = self._source.describe()
        try:
            snapshot = self._source.fetch(self._seen)
        except Exception as exc:
            self.last_error = exc
            logger.error(
                "policies at %s: cannot check for a new version; still using version %s:\n%s",
                where,
                current.version,
                _detail(exc),
                exc_info=not isinstance(exc, PolicyError),
            )
            return False
        if snapshot is None:
            self.last_error = self._seen_error  # what the source holds is what was last seen
            return False
        if snapshot.version == current.version:  # back to the version in force
            self._seen, self._seen_error, self.last_error = current.version, None, None
            return False
        try:
            loaded = build_version(snapshot.files, snapshot.version)
        except Exception as exc:
            self._seen = snapshot.version
            self._seen_error = exc if isinstance(exc, PolicyError) else None
            self.last_error = exc
            logger.error(
                "policies at %s: version %s refused; still using version %s:\n%s",
                where,
                snapshot.version,
                current.version,
                _detail(exc),
                exc_info=not isinstance(exc, PolicyError),
            )
            return False
        self._loaded = loaded  # one assignment: readers see the old version or the new, whole
        self._seen, self._seen_error, self.last_error = snapshot.version, None, None
        self._log_swap(where, current, loaded)
        return True

    def _log_swap(self, where: str, current: Version, loaded: Version) -> None:
        """The swap at INFO; the new version's warnings, and every tenant it no longer has (by
        name: a deleted or misnamed file changes what its images get), at WARNING."""
        logger.info(
            "policies at %s: now using version %s (was %s)", where, loaded.version, current.version
        )
        if loaded.warnings:
            logger.warning(
                "policies at %s: version %s has warnings:\n%s",
                where,
                loaded.version,
                "\n".join(f"  {w.render()}" for w in loaded.warnings),
            )
        gone = sorted(set(self._tenants_in(current)) - set(self._tenants_in(loaded)))
        if gone:
            logger.warning(
                "policies at %s: version %s has no policy for %s %s (version %s had): %s",
                where,
                loaded.version,
                "tenant" if len(gone) == 1 else "tenants",
                ", ".join(gone),
                current.version,
                "their images get the default policy"
                if self.fallback_to_default
                else "their images are refused as an unknown tenant",
            )

    def reload(self) -> bool:
        """Check for a new version now, on this thread, without waiting for the ttl (after a
        check under way in the background, if any); True if one was swapped in. Never raises for
        an invalid version or a failed check: both are logged and kept in `last_error`. False at
        once for a store that has no source to check (`from_sources`, a snapshot, a directory
        read with drafts)."""
        if self._source is None:
            return False
        self._lock.acquire()
        try:
            return self._refresh()
        finally:
            self._end_check()

    def wait_for_check(self, timeout: float | None = None) -> bool:
        """Wait for the check under way in the background, if any; False if it is still under
        way after `timeout` seconds. For tests, benchmarks and an orderly shutdown: readers never
        need it."""
        return self._idle.wait(timeout)

    def snapshot(self) -> PolicyStore:
        """The version in force as a store that never changes: for reading several policies
        (a tenant's and its shadows) from one version. The same object while that version is in
        force."""
        loaded = self._current()
        view = self._view
        fallback = self.fallback_to_default
        # One per version: built on every decision, it cost a lock and an event each time.
        if view is None or view._loaded is not loaded or view.fallback_to_default != fallback:
            view = type(self).__new__(type(self))
            view._start(loaded, fallback, path=self.path, location=self.location)
            self._view = view
        return view

    # ----------------------------------------------------------------------- reading

    @property
    def version(self) -> str | None:
        """The version in force: a digest of the files, an AppConfig version label, or None for a
        store built from in-memory documents."""
        return self._current().version

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The warnings of the version in force."""
        return self._current().warnings

    @property
    def tenants(self) -> tuple[str, ...]:
        """The tenants that have their own policy file, sorted: not `default`, not a shadow
        candidate."""
        return self._tenants_in(self._current())

    @property
    def candidates(self) -> Mapping[str, tuple[str, ...]]:
        """The shadow candidates (policies named under another's `shadow`), each with the ids of
        the policies that name it. A candidate is never a tenant's policy."""
        return self._current().candidates

    @staticmethod
    def _tenants_in(loaded: Version) -> tuple[str, ...]:
        return tuple(
            sorted(n for n in loaded.policies if n != DEFAULT_POLICY and n not in loaded.candidates)
        )

    def get(self, tenant: str) -> Policy:
        """The tenant's policy; `UnknownTenant` if it has no file (unless `fallback_to_default`)
        and, whatever the fallback, if its file is a shadow candidate.

        A candidate is under trial, not in force: whoever names the tenant must not be able to
        pick it (it may well be the most lenient policy of the store).
        """
        validate_tenant(tenant)
        loaded = self._current()
        naming = loaded.candidates.get(tenant)
        if naming is not None:
            raise UnknownTenant(
                f"{tenant!r} is a shadow candidate (named under `shadow` by "
                + ", ".join(repr(n) for n in naming)
                + "), not a tenant: its policy is only evaluated beside theirs; to put it in "
                "force, take it out of every `shadow` list"
            )
        policy = loaded.policies.get(tenant)
        if policy is not None:
            return policy
        if self.fallback_to_default:
            return loaded.policies[DEFAULT_POLICY]
        near = close_match(tenant, self._tenants_in(loaded))
        raise UnknownTenant(
            f"no policy for tenant {tenant!r}" + (f" ({near})" if near else "") + "; this store "
            "does not fall back to default (fallback_to_default=False)"
        )

    def policy(self, policy_id: str) -> Policy:
        """The policy with this id (`default` or a tenant file's name), never a fallback.

        For a policy's `shadow` ids, which the store checked when it was built: they always
        exist. Any other id that is not a policy of this store raises `UnknownTenant`.
        """
        return self._policy_in(self._current(), policy_id)

    @staticmethod
    def _policy_in(loaded: Version, policy_id: str) -> Policy:
        policy = loaded.policies.get(policy_id)
        if policy is None:
            near = close_match(policy_id, loaded.policies)
            raise UnknownTenant(
                f"no policy {policy_id!r} in this store" + (f" ({near})" if near else "")
            )
        return policy

    def shadows(self, policy: Policy) -> tuple[Policy, ...]:
        """The policies `policy` names under `shadow`, in the order named (its own list only)."""
        loaded = self._current()
        return tuple(self._policy_in(loaded, name) for name in policy.shadow)

    def __contains__(self, tenant: object) -> bool:
        """Whether `get(tenant)` finds a policy of the tenant's own: `default` or a tenant file,
        not a shadow candidate (and not a fallback)."""
        loaded = self._current()
        return (
            isinstance(tenant, str)
            and tenant in loaded.policies
            and tenant not in loaded.candidates
        )

    def __iter__(self) -> Iterator[Policy]:
        policies = self._current().policies
        return iter([policies[n] for n in sorted(policies)])


def _source(
    spec: str,
    kind: str,
    *,
    region: str | None,
    clock: Callable[[], float],
    s3_client: Any | None,
    appconfig_client: Any | None,
) -> PolicySource:
    """The source `PolicyStore.load` reads `spec` from, by its kind (`policies_location`)."""
    if kind == "s3":
        try:
            where = S3Prefix.parse(spec)
        except InvalidS3Location as exc:
            raise PolicyError([Problem(spec, "", str(exc), "write s3://bucket/prefix")]) from None
        from moderation.policy.sources import S3Source  # imported only by who reads S3

        return S3Source(where.bucket, where.prefix, client=s3_client, region=region)
    if kind == "appconfig":
        parts = spec[len("appconfig://") :].split("/")
        if len(parts) != 3:
            raise PolicyError(
                [
                    Problem(
                        spec,
                        "",
                        "an AppConfig location has three parts",
                        "write appconfig://application/environment/profile (names or ids)",
                    )
                ]
            )
        application, environment, profile = parts
        from moderation.policy.sources import AppConfigSource

        return AppConfigSource(
            application,
            environment,
            profile,
            client=appconfig_client,
            region=region,
            clock=clock,
        )
    return DirectorySource(spec)


os.register_at_fork(after_in_child=_after_fork_in_child)
