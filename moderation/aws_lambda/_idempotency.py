"""Redelivered events return the first answer: Powertools' idempotency, in DynamoDB or in memory.

Only the moderation itself is idempotent: for one key (bucket, key, version or ETag, tenant, the
policy's sha256) the first call runs and its answer is stored; every later call with the same key
gets the stored answer back without running anything. Applying the answer (tags, quarantine,
review message) is outside, so a failure there retries the application, never the moderation.

With `MODERATION_IDEMPOTENCY_TABLE` the answers live in DynamoDB (`DynamoDBPersistenceLayer`: a
partition key string `id`, a TTL attribute `expiration`) and every instance sees them. Without
it, `MemoryPersistenceLayer` keeps them in this instance only: a redelivery to the same warm
instance gets the first answer, one to another instance (or after a cold start) moderates again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (
    STATUS_CONSTANTS,
    DataRecord,
)

__all__ = ["MemoryPersistenceLayer", "idempotent"]


class MemoryPersistenceLayer(BasePersistenceLayer):
    """Powertools' persistence contract on a dict: the records of one process, with the same
    conditional put as the DynamoDB layer (a record may be replaced only once it has expired, or
    while in progress once its in-progress deadline has passed)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._records: dict[str, DataRecord] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def __len__(self) -> int:
        return len(self._records)

    def _replaceable(self, record: DataRecord) -> bool:
        now = self._clock()
        if record.expiry_timestamp is not None and record.expiry_timestamp < now:
            return True
        return (
            record._status == STATUS_CONSTANTS["INPROGRESS"]
            and record.in_progress_expiry_timestamp is not None
            and record.in_progress_expiry_timestamp < now * 1000
        )

    def _get_record(self, idempotency_key: str) -> DataRecord:
        with self._lock:
            record = self._records.get(idempotency_key)
        if record is None:
            raise IdempotencyItemNotFoundError
        return record

    def _put_record(self, data_record: DataRecord) -> None:
        with self._lock:
            old = self._records.get(data_record.idempotency_key)
            if old is not None and not self._replaceable(old):
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self._records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records.pop(data_record.idempotency_key, None)


def idempotent(
    function: Callable[..., dict[str, Any]],
    persistence: BasePersistenceLayer,
    config: IdempotencyConfig,
) -> Callable[..., dict[str, Any]]:
    """`function` made idempotent on its keyword argument `identity` (a JSON-able dict).

    Its answer must be a non-empty JSON-able dict: it is stored as JSON and handed back, parsed,
    to every later call with the same identity. The stored key is
    `<AWS_LAMBDA_FUNCTION_NAME>.<module>.<function>#<md5 of identity>`, so two functions sharing a
    table never see each other's answers.
    """
    wrapped: Callable[..., dict[str, Any]] = idempotent_function(
        function,
        data_keyword_argument="identity",
        persistence_store=persistence,
        config=config,
    )
    return wrapped
