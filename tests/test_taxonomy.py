"""Taxonomy 7.0: forgiving lookups, the tree, near-miss suggestions and the 6.1 legacy names."""

from __future__ import annotations

import pytest

from moderation.taxonomy import TAXONOMY, TAXONOMY_VERSION, Category, normalize


def test_version_is_7_0():
    assert TAXONOMY_VERSION == "7.0"
    assert TAXONOMY.version == "7.0"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("Blood & Gore", Category("Blood & Gore", 3, "Graphic Violence")),
        ("blood and gore", Category("Blood & Gore", 3, "Graphic Violence")),
        ("BLOOD  &  GORE", Category("Blood & Gore", 3, "Graphic Violence")),
        (
            "FEMALE swimwear or underwear",
            Category("Female Swimwear or Underwear", 2, "Swimwear or Underwear"),
        ),
        (
            "Female Swimwear Or Underwear",  # the 6.1 spelling
            Category("Female Swimwear or Underwear", 2, "Swimwear or Underwear"),
        ),
        ("self harm", Category("Self-Harm", 3, "Graphic Violence")),
        ("  Self-Harm ", Category("Self-Harm", 3, "Graphic Violence")),
        ("Drugs and Tobacco", Category("Drugs & Tobacco", 1, None)),
        (
            "drugs & tobacco paraphernalia and use",
            Category("Drugs & Tobacco Paraphernalia & Use", 2, "Drugs & Tobacco"),
        ),
        (
            "non explicit nudity",
            Category("Non-Explicit Nudity", 2, "Non-Explicit Nudity of Intimate parts and Kissing"),
        ),
        ("violence", Category("Violence", 1, None)),
        ("Gambling", Category("Gambling", 1, None)),
        ("Air Crash", Category("Air Crash", 3, "Crashes")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_lookup_forgives_case_spacing_and_punctuation(spelling, expected):
    assert TAXONOMY.lookup(spelling) == expected
    assert TAXONOMY.canonical(spelling) == expected.name
    assert spelling in TAXONOMY


@pytest.mark.parametrize(
    "name",
    ["Violance", "Suggestive", "Explicit Nudityy", "", "   ", "&", "Weapons!!extra"],
    ids=["typo", "legacy-6.1", "extra-letter", "empty", "blank", "ampersand", "suffix"],
)
def test_unknown_names(name):
    assert TAXONOMY.lookup(name) is None
    assert TAXONOMY.canonical(name) is None
    assert TAXONOMY.level(name) is None
    assert TAXONOMY.ancestors(name) == ()
    assert name not in TAXONOMY


@pytest.mark.parametrize("thing", [None, 7, b"Violence", ("Violence",)], ids=repr)
def test_contains_refuses_non_strings(thing):
    assert thing not in TAXONOMY


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Blood &  Gore", "blood and gore"),
        ("Blood and Gore", "blood and gore"),
        ("Self-Harm", "self harm"),
        ("Drugs & Tobacco Paraphernalia & Use", "drugs and tobacco paraphernalia and use"),
        ("  ÉMOJI\t😀 x ", "émoji x"),  # letters of any script survive; symbols fold away
        ("", ""),
    ],
    ids=["ampersand", "and", "hyphen", "two-ampersands", "non-ascii", "empty"],
)
def test_normalize(raw, key):
    assert normalize(raw) == key


@pytest.mark.parametrize(
    ("name", "ancestors", "level"),
    [
        ("Exposed Female Nipple", ("Explicit Nudity", "Explicit"), 3),
        ("Explicit Nudity", ("Explicit",), 2),
        ("Explicit", (), 1),
        ("Corpses", ("Death and Emaciation", "Visually Disturbing"), 3),
        ("Smoking", ("Drugs & Tobacco Paraphernalia & Use", "Drugs & Tobacco"), 3),
        ("Pills", ("Products", "Drugs & Tobacco"), 3),
        ("Drinking", ("Alcohol Use", "Alcohol"), 3),
        ("Alcoholic Beverages", ("Alcohol",), 2),
        ("Middle Finger", ("Rude Gestures",), 2),
        ("Extremist", ("Hate Symbols",), 2),
        ("Kissing on the Lips", ("Non-Explicit Nudity of Intimate parts and Kissing",), 2),
        (
            "obstructed male genitalia",
            ("Obstructed Intimate Parts", "Non-Explicit Nudity of Intimate parts and Kissing"),
            3,
        ),
        ("Weapons", ("Violence",), 2),
        ("Blood and Gore", ("Graphic Violence", "Violence"), 3),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_ancestors_and_level(name, ancestors, level):
    assert TAXONOMY.ancestors(name) == ancestors
    assert TAXONOMY.level(name) == level


def test_the_tree_has_the_7_0_shape():
    names = TAXONOMY.names()
    assert len(names) == len(set(names)) == 52
    by_level = [sum(1 for n in names if TAXONOMY.level(n) == lvl) for lvl in (1, 2, 3)]
    assert by_level == [10, 20, 22]
    # Level 1 first, each level sorted by name.
    assert names[:10] == [
        "Alcohol",
        "Drugs & Tobacco",
        "Explicit",
        "Gambling",
        "Hate Symbols",
        "Non-Explicit Nudity of Intimate parts and Kissing",
        "Rude Gestures",
        "Swimwear or Underwear",
        "Violence",
        "Visually Disturbing",
    ]
    # Every parent is a known category one level up.
    for name in names:
        category = TAXONOMY.lookup(name)
        assert category is not None
        if category.parent is None:
            assert category.level == 1
        else:
            assert TAXONOMY.level(category.parent) == category.level - 1


@pytest.mark.parametrize(
    ("typo", "first"),
    [
        ("Violance", "Violence"),
        ("Gamblng", "Gambling"),
        ("hate symbol", "Hate Symbols"),
        ("Sugestive", "Suggestive"),  # a legacy name is a fine suggestion too
        ("Explicit Nuditiy", "Explicit Nudity"),
    ],
    ids=lambda v: v,
)
def test_suggest_best_first(typo, first):
    suggestions = TAXONOMY.suggest(typo)
    assert suggestions[0] == first
    assert len(suggestions) <= 3


def test_suggest_violance_in_taxonomy_spelling():
    assert TAXONOMY.suggest("Violance") == ["Violence", "Weapon Violence"]
    assert TAXONOMY.suggest("Violance", n=1) == ["Violence"]


def test_suggest_nothing_close():
    assert TAXONOMY.suggest("zzzz qqqq") == []


SUGGESTIVE_7_0 = ("Non-Explicit Nudity of Intimate parts and Kissing", "Swimwear or Underwear")


@pytest.mark.parametrize(
    ("name", "targets"),
    [
        ("Suggestive", SUGGESTIVE_7_0),
        ("suggestive", SUGGESTIVE_7_0),
        ("Drugs", ("Drugs & Tobacco",)),
        ("TOBACCO", ("Drugs & Tobacco",)),
    ],
    ids=["Suggestive", "suggestive", "Drugs", "TOBACCO"],
)
def test_legacy_6_1_names(name, targets):
    legacy = TAXONOMY.legacy(name)
    assert legacy is not None
    assert legacy.targets == targets
    assert "6.1" in legacy.note
    assert name not in TAXONOMY  # not a 7.0 name


@pytest.mark.parametrize(
    "name",
    ["Drugs and Tobacco", "Drugs & Tobacco", "Explicit Nudity", "Violence", "Nope"],
    ids=["drugs-and-tobacco", "drugs-amp-tobacco", "explicit-nudity", "violence", "unknown"],
)
def test_names_that_are_not_legacy(name):
    # "Drugs and Tobacco" (6.1) normalises to the 7.0 name; "Explicit Nudity" survives at level 2.
    assert TAXONOMY.legacy(name) is None


def test_drugs_and_tobacco_is_the_7_0_category():
    assert normalize("Drugs and Tobacco") == normalize("Drugs & Tobacco") == "drugs and tobacco"
    assert TAXONOMY.canonical("Drugs and Tobacco") == "Drugs & Tobacco"


@pytest.mark.parametrize(
    ("parent", "mapped"),
    [
        ("Suggestive", "Non-Explicit Nudity of Intimate parts and Kissing"),
        ("Drugs", "Drugs & Tobacco"),
        ("tobacco", "Drugs & Tobacco"),
        ("Violence", None),
        ("Explicit Nudity", None),
    ],
    ids=["suggestive", "drugs", "tobacco", "violence", "explicit-nudity"],
)
def test_legacy_parent(parent, mapped):
    assert TAXONOMY.legacy_parent(parent) == mapped


@pytest.mark.parametrize(
    ("name", "lost"),
    [
        ("Explicit Nudity", ("Explicit Sexual Activity", "Sex Toys")),
        ("explicit  nudity", ("Explicit Sexual Activity", "Sex Toys")),
        ("Explicit", ()),
        ("Violence", ()),
    ],
    ids=["explicit-nudity", "spacing", "explicit", "violence"],
)
def test_narrowed_by_7_0(name, lost):
    assert TAXONOMY.narrowed_by_7_0(name) == lost
