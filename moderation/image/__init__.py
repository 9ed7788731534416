"""Images in, images the services accept out: sniffing, checking, decoding and conversion.

Pillow only; `s3://` inputs are read through an `S3Reader` (the AWS one lives in `moderation.aws`).
"""

from moderation.image._frames import Frame
from moderation.image._intake import (
    ImageIntake,
    ObjectHead,
    PreparedImage,
    S3Location,
    S3Object,
    S3Reader,
)
from moderation.image._limits import Limits
from moderation.image._sniff import ImageFormat, sniff

__all__ = [
    "Frame",
    "ImageFormat",
    "ImageIntake",
    "Limits",
    "ObjectHead",
    "PreparedImage",
    "S3Location",
    "S3Object",
    "S3Reader",
    "sniff",
]
