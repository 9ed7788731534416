"""Amazon DynamoDB, for the detection cache: GetItem and conditional PutItem on the transport.

Every failure leaves as `AWSError` (a table that does not exist is `not found`, a missing
permission `denied`, a condition that did not hold `changed`), classified by the one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moderation.aws.transport import AWSService

__all__ = ["DynamoDBTable"]


class DynamoDBTable(AWSService):
    """One DynamoDB table's items, read and written with the transport's retries and limiter."""

    service = "dynamodb"

    def __init__(self, table: str, client: Any | None = None, **kwargs: Any) -> None:
        self.table = table
        super().__init__(client, **kwargs)

    def __repr__(self) -> str:
        return f"DynamoDBTable({self.table!r})"

    def get_item(self, key: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The item under `key` (DynamoDB's attribute values), or None; eventually consistent."""
        params = {"TableName": self.table, "Key": dict(key)}
        answer = self.call("GetItem", lambda: self._client.get_item(**params), self._name(key))
        item = answer.get("Item")
        return item if item else None

    def put_item(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Write `item`; with `condition` (a ConditionExpression) one that fails is `changed`."""
        params: dict[str, Any] = {"TableName": self.table, "Item": dict(item)}
        if condition is not None:
            params["ConditionExpression"] = condition
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        if values:
            params["ExpressionAttributeValues"] = dict(values)
        key = {"id": item["id"]} if "id" in item else {}
        self.call("PutItem", lambda: self._client.put_item(**params), self._name(key))

    def _name(self, key: Mapping[str, Any]) -> str:
        ids = [next(iter(v.values()), "") for v in key.values() if isinstance(v, Mapping)]
        return f"{self.table}/{ids[0]}" if ids else self.table
