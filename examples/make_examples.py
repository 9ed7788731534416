"""Regenerate examples/images and examples/recordings (run by hand; outputs are committed).

The pictures are simple drawings made here. The recordings pair each picture with a response in the
exact DetectModerationLabels / Converse formats; they are synthetic (no AWS account made them), so
that `make demo` can show every path offline. Committing the outputs keeps their sha256 stable
across Pillow versions.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent
IMAGES = HERE / "images"
RECORDINGS = HERE / "recordings"
DETECTIONS = HERE / "detections"


def picture(kind: str, size: tuple[int, int] = (480, 320)) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (135, 190, 235))
    d = ImageDraw.Draw(img)
    if kind == "landscape":
        d.polygon([(0, h), (w * 0.3, h * 0.45), (w * 0.6, h), (0, h)], fill=(70, 120, 70))
        d.polygon([(w * 0.3, h), (w * 0.7, h * 0.35), (w, h), (w * 0.3, h)], fill=(90, 140, 80))
        d.ellipse([w * 0.75, h * 0.1, w * 0.87, h * 0.28], fill=(250, 220, 90))
    elif kind == "beach":
        d.rectangle([0, h * 0.55, w, h * 0.75], fill=(40, 110, 190))
        d.rectangle([0, h * 0.75, w, h], fill=(230, 210, 160))
        d.ellipse([w * 0.45, h * 0.6, w * 0.55, h * 0.9], fill=(200, 60, 60))
    elif kind == "cartoon":
        d.rectangle([0, 0, w, h], fill=(255, 250, 230))
        d.ellipse([w * 0.2, h * 0.3, w * 0.4, h * 0.6], outline=(0, 0, 0), width=4)
        d.ellipse([w * 0.6, h * 0.3, w * 0.8, h * 0.6], outline=(0, 0, 0), width=4)
        d.text((w * 0.43, h * 0.4), "POW!", fill=(220, 0, 0))
    elif kind == "couple":
        d.rectangle([0, 0, w, h], fill=(250, 200, 210))
        d.ellipse([w * 0.3, h * 0.25, w * 0.48, h * 0.55], fill=(230, 180, 150))
        d.ellipse([w * 0.52, h * 0.25, w * 0.7, h * 0.55], fill=(200, 150, 120))
    elif kind == "surgery":
        d.rectangle([0, 0, w, h], fill=(200, 230, 220))
        d.rectangle([w * 0.2, h * 0.4, w * 0.8, h * 0.6], fill=(240, 240, 240))
        d.line([w * 0.35, h * 0.5, w * 0.65, h * 0.5], fill=(170, 30, 30), width=3)
    elif kind == "game":
        d.rectangle([0, 0, w, h], fill=(20, 20, 40))
        d.rectangle([w * 0.1, h * 0.7, w * 0.9, h * 0.75], fill=(90, 200, 90))
        d.rectangle([w * 0.45, h * 0.45, w * 0.6, h * 0.5], fill=(160, 160, 170))
        d.text((10, 10), "HP 100  AMMO 30", fill=(255, 255, 255))
    return img


def encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()


def tool_reply(verdict: str, rationale: str, categories: list[str]) -> dict[str, object]:
    return {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_demo0001",
                            "name": "record_verdict",
                            "input": {
                                "verdict": verdict,
                                "categories": categories,
                                "rationale": rationale,
                            },
                        }
                    }
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1245, "outputTokens": 61, "totalTokens": 1306},
        "metrics": {"latencyMs": 1830},
    }


BLOCKED = {
    "output": {"message": {"role": "assistant", "content": [{"text": ""}]}},
    "stopReason": "content_filtered",
    "usage": {"inputTokens": 1190, "outputTokens": 0, "totalTokens": 1190},
    "metrics": {"latencyMs": 640},
}
TEXT_ONLY = {
    "output": {
        "message": {"role": "assistant", "content": [{"text": "I would not APPROVE this."}]}
    },
    "stopReason": "end_turn",
    "usage": {"inputTokens": 1230, "outputTokens": 9, "totalTokens": 1239},
    "metrics": {"latencyMs": 910},
}

# name, drawing, format, recorded detection, recorded Converse reply (None: not recorded)
EXAMPLES = [
    ("landscape.png", "landscape", "PNG", "clean-landscape", None),
    ("beach.jpg", "beach", "JPEG", "beach-swimwear", None),
    (
        "cartoon-fight.png",
        "cartoon",
        "PNG",
        "cartoon-fight",
        tool_reply("approve", "A cartoon with a comic-book 'POW'; stylised, no real harm.", []),
    ),
    (
        "couple.jpg",
        "couple",
        "JPEG",
        "couple-kiss",
        tool_reply("unsure", "Two faces close together; cannot tell the context.", []),
    ),
    ("surgery.jpg", "surgery", "JPEG", "surgery-photo", BLOCKED),
    ("game-screenshot.png", "game", "PNG", "game-screenshot", TEXT_ONLY),
]

# Recorded answers that differ by tenant: the medical platform's guidance accepts clinical images.
BY_TENANT: dict[str, dict[str, object]] = {
    "surgery.jpg": {
        "medical": tool_reply(
            "approve",
            "An operating-room photograph in a clinical setting; educational, not gratuitous.",
            [],
        )
    },
}


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    RECORDINGS.mkdir(exist_ok=True)
    for name, kind, fmt, detection, converse in EXAMPLES:
        data = encode(picture(kind), fmt)
        (IMAGES / name).write_bytes(data)
        entry: dict[str, object] = {
            "image": f"examples/images/{name}",
            "sha256": hashlib.sha256(data).hexdigest(),
            "detect_moderation_labels": json.loads((DETECTIONS / f"{detection}.json").read_text()),
        }
        if converse is not None:
            entry["converse"] = converse
        if name in BY_TENANT:
            entry["converse_by_tenant"] = BY_TENANT[name]
        stem = name.rsplit(".", 1)[0]
        (RECORDINGS / f"{stem}.json").write_text(json.dumps(entry, indent=2) + "\n")
    # The refusal path: not an image, a truncated JPEG, and one too small for Rekognition.
    (IMAGES / "notes.txt").write_text("Not an image: meeting notes.\n")
    full = encode(picture("beach"), "JPEG")
    (IMAGES / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (IMAGES / "tiny.png").write_bytes(encode(picture("landscape", (60, 40)), "PNG"))


if __name__ == "__main__":
    main()
