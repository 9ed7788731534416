"""Amazon Rekognition's moderation taxonomy 7.0 as data, with lookups that forgive spelling.

Names are matched after `normalize`: case-folded, `&` read as `and`, punctuation and runs of
spaces folded to one space. Rekognition itself has spelled names differently across releases
("Female Swimwear Or Underwear" in 6.1, "Female Swimwear or Underwear" in 7.0).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "TAXONOMY",
    "TAXONOMY_VERSION",
    "Category",
    "LegacyName",
    "Taxonomy",
    "normalize",
]

TAXONOMY_VERSION = "7.0"

# L1 -> L2 -> [L3], as the Amazon Rekognition Developer Guide lists moderation taxonomy 7.0.
_TREE: dict[str, dict[str, list[str]]] = {
    "Explicit": {
        "Explicit Nudity": [
            "Exposed Male Genitalia",
            "Exposed Female Genitalia",
            "Exposed Buttocks or Anus",
            "Exposed Female Nipple",
        ],
        "Explicit Sexual Activity": [],
        "Sex Toys": [],
    },
    "Non-Explicit Nudity of Intimate parts and Kissing": {
        "Non-Explicit Nudity": [
            "Bare Back",
            "Exposed Male Nipple",
            "Partially Exposed Buttocks",
            "Partially Exposed Female Breast",
            "Implied Nudity",
        ],
        "Obstructed Intimate Parts": ["Obstructed Female Nipple", "Obstructed Male Genitalia"],
        "Kissing on the Lips": [],
    },
    "Swimwear or Underwear": {
        "Female Swimwear or Underwear": [],
        "Male Swimwear or Underwear": [],
    },
    "Violence": {
        "Weapons": [],
        "Graphic Violence": [
            "Weapon Violence",
            "Physical Violence",
            "Self-Harm",
            "Blood & Gore",
            "Explosions and Blasts",
        ],
    },
    "Visually Disturbing": {
        "Death and Emaciation": ["Emaciated Bodies", "Corpses"],
        "Crashes": ["Air Crash"],
    },
    "Drugs & Tobacco": {
        "Products": ["Pills"],
        "Drugs & Tobacco Paraphernalia & Use": ["Smoking"],
    },
    "Alcohol": {"Alcohol Use": ["Drinking"], "Alcoholic Beverages": []},
    "Rude Gestures": {"Middle Finger": []},
    "Gambling": {},
    "Hate Symbols": {"Nazi Party": [], "White Supremacy": [], "Extremist": []},
}


@dataclass(frozen=True, slots=True)
class LegacyName:
    """A taxonomy 6.1 top-level name and the 7.0 categories that now cover what it covered."""

    name: str
    targets: tuple[str, ...]
    note: str


# 6.1 top-level names whose normalised spelling is not a 7.0 name. "Drugs and Tobacco" needs no
# entry: it normalises to the same key as "Drugs & Tobacco". "Explicit Nudity" is no entry either:
# 7.0 kept the name for the level-2 category under "Explicit" (see `Taxonomy.narrowed_by_7_0`).
_LEGACY: tuple[LegacyName, ...] = (
    LegacyName(
        "Suggestive",
        ("Non-Explicit Nudity of Intimate parts and Kissing", "Swimwear or Underwear"),
        "taxonomy 6.1 'Suggestive' was split in 7.0",
    ),
    LegacyName(
        "Drugs", ("Drugs & Tobacco",), "taxonomy 6.1 'Drugs' is part of 7.0 'Drugs & Tobacco'"
    ),
    LegacyName(
        "Tobacco", ("Drugs & Tobacco",), "taxonomy 6.1 'Tobacco' is part of 7.0 'Drugs & Tobacco'"
    ),
)

# Where a label of an old response names a 6.1 parent, the one 7.0 category its children now sit in.
_LEGACY_PARENT: dict[str, str] = {
    "suggestive": "Non-Explicit Nudity of Intimate parts and Kissing",
    "drugs": "Drugs & Tobacco",
    "tobacco": "Drugs & Tobacco",
}

_PUNCT = re.compile(r"[\W_]+")  # any letter of any script is kept


def normalize(name: str) -> str:
    """The key two spellings of one category name share: `"Blood &  Gore"` -> `"blood and gore"`."""
    folded = name.casefold().replace("&", " and ")
    return _PUNCT.sub(" ", folded).strip()


@dataclass(frozen=True, slots=True)
class Category:
    """One node of the taxonomy: its canonical name, level (1-3) and parent (None at level 1)."""

    name: str
    level: int
    parent: str | None


class Taxonomy:
    """Lookups over one moderation taxonomy: by forgiving name, up the tree, and by near miss."""

    def __init__(
        self,
        tree: Mapping[str, Mapping[str, list[str]]],
        legacy: tuple[LegacyName, ...],
        legacy_parent: Mapping[str, str],
        version: str,
    ) -> None:
        self.version = version
        nodes: dict[str, Category] = {}
        for l1, children in tree.items():
            nodes[normalize(l1)] = Category(l1, 1, None)
            for l2, grandchildren in children.items():
                nodes[normalize(l2)] = Category(l2, 2, l1)
                for l3 in grandchildren:
                    nodes[normalize(l3)] = Category(l3, 3, l2)
        self._nodes = nodes
        self._legacy = {normalize(item.name): item for item in legacy}
        self._legacy_parent = {normalize(k): v for k, v in legacy_parent.items()}

    def lookup(self, name: str) -> Category | None:
        """The category this name means, however it is spelled, or None if the taxonomy has none."""
        return self._nodes.get(normalize(name))

    def canonical(self, name: str) -> str | None:
        """The taxonomy's own spelling of `name`, or None if unknown."""
        found = self.lookup(name)
        return found.name if found else None

    def ancestors(self, name: str) -> tuple[str, ...]:
        """Parent, grandparent…, nearest first; empty for level 1 and for unknown names."""
        chain: list[str] = []
        node = self.lookup(name)
        while node is not None and node.parent is not None:
            chain.append(node.parent)
            node = self.lookup(node.parent)
        return tuple(chain)

    def level(self, name: str) -> int | None:
        """1, 2 or 3; None for a name the taxonomy does not know."""
        found = self.lookup(name)
        return found.level if found else None

    def legacy(self, name: str) -> LegacyName | None:
        """The 6.1 mapping for a top-level name 7.0 no longer has, else None."""
        return self._legacy.get(normalize(name))

    def legacy_parent(self, name: str) -> str | None:
        """The 7.0 category a child of the old 6.1 parent `name` now belongs to, if any."""
        return self._legacy_parent.get(normalize(name))

    def narrowed_by_7_0(self, name: str) -> tuple[str, ...]:
        """For a 6.1 top-level name 7.0 kept one level down: the siblings it no longer covers."""
        if normalize(name) != "explicit nudity":
            return ()
        return ("Explicit Sexual Activity", "Sex Toys")

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Known names close to `name`, best first, in the taxonomy's spelling."""
        keys = list(self._nodes) + list(self._legacy)
        close = difflib.get_close_matches(normalize(name), keys, n=n, cutoff=0.6)
        return [self._nodes[k].name if k in self._nodes else self._legacy[k].name for k in close]

    def names(self) -> list[str]:
        """Every category name, level 1 first, in the taxonomy's spelling."""
        return [c.name for c in sorted(self._nodes.values(), key=lambda c: (c.level, c.name))]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize(name) in self._nodes


TAXONOMY = Taxonomy(_TREE, _LEGACY, _LEGACY_PARENT, TAXONOMY_VERSION)
