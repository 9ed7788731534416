"""The bytes of an item's image: from the image store (a sha256 key) or from its S3 object."""

from __future__ import annotations

from typing import Any, Protocol

from moderation.errors import AWSError, ReviewError
from moderation.image import sniff
from moderation.review._images import MAX_STORED_IMAGE, ImageStore
from moderation.review._model import ItemImage

__all__ = ["ImageGone", "ItemImages", "S3Getter", "media_type"]

_MEDIA = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}


class ImageGone(ReviewError):
    """The item's image is not there any more (purged, deleted, or changed in S3)."""


class S3Getter(Protocol):
    """What reading an image from S3 takes (`moderation.aws.s3.S3Objects`)."""

    def get(
        self,
        bucket: str,
        key: str,
        *,
        limit: int,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> bytes:
        """At most `limit` bytes of the object."""


def media_type(data: bytes) -> str | None:
    """The media type of an image from its magic bytes, or None for none the page shows."""
    found = sniff(data)
    return None if found is None else _MEDIA[found]


class ItemImages:
    """Reads items' images: `store` for images kept by sha256, S3 (the library's transport,
    built on first use in `region`, or the given `s3`) for images that are S3 objects."""

    def __init__(
        self,
        store: ImageStore | None = None,
        *,
        s3: S3Getter | None = None,
        region: str | None = None,
    ) -> None:
        self.store = store
        self._s3 = s3
        self._region = region

    def _s3_client(self) -> S3Getter:
        if self._s3 is None:
            from moderation.aws.s3 import S3Objects

            self._s3 = S3Objects(None, region=self._region)
        return self._s3

    def read(self, image: ItemImage) -> bytes:
        """The image's bytes; ImageGone when they are not there any more, ReviewError when no
        store holds this kind of image, AWSError when S3 fails."""
        if image.store_key is not None:
            if self.store is None:
                raise ReviewError(
                    "the item's image is in the image store, and no store is configured "
                    "(--images or MODERATION_REVIEW_IMAGES)"
                )
            try:
                return self.store.get(image.store_key)
            except KeyError:
                raise ImageGone("the image is no longer in the image store (purged?)") from None
        assert image.s3 is not None  # an ItemImage has exactly one of the two
        where: Any = image.s3
        try:
            return self._s3_client().get(
                where.bucket,
                where.key,
                limit=MAX_STORED_IMAGE,
                version_id=where.version_id,
                if_match=where.etag,
            )
        except AWSError as exc:
            if exc.kind == "not found":
                raise ImageGone("the image's S3 object is gone") from None
            if exc.kind == "changed":
                raise ImageGone(
                    "the image's S3 object changed since the decision: this is not the image "
                    "that was moderated"
                ) from None
            raise
