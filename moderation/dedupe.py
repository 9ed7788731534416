"""PLACEHOLDER until the detection cache lands (the real module replaces this file whole)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

from moderation.detection import Detection

__all__ = ["DetectionCache", "MemoryDetectionCache", "cache_key", "detection_cache_from_spec"]


@runtime_checkable
class DetectionCache(Protocol):
    name: str

    def get(self, key: str) -> Detection | None: ...

    def put(self, key: str, detection: Detection) -> None: ...


def cache_key(sha256: str, *, detector: str, min_confidence: float, max_frames: int) -> str:
    body = json.dumps([1, sha256, detector, min_confidence, max_frames])
    return hashlib.sha256(body.encode()).hexdigest()


class MemoryDetectionCache:
    name = "memory"

    def __init__(self, maxsize: int = 10_000) -> None:
        self._items: OrderedDict[str, Detection] = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def get(self, key: str) -> Detection | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, detection: Detection) -> None:
        with self._lock:
            self._items[key] = detection


def detection_cache_from_spec(
    spec: str, *, ttl_seconds: float = 604800, region: str | None = None
) -> DetectionCache | None:
    return None if spec == "off" else MemoryDetectionCache()
