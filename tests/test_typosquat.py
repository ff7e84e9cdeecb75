"""closest_popular: which one-edit confusions count, per tier of the popular list."""

from __future__ import annotations

import pytest

from pkgvet.typosquat import TOP_N, WIDE_N, closest_popular, fold_glyphs, popular_ranks


def test_tiers_hold_the_names_the_cases_rely_on() -> None:
    ranks = popular_ranks()
    assert ranks["requests"] <= TOP_N and ranks["tqdm"] <= TOP_N and ranks["urllib3"] <= TOP_N
    assert TOP_N < ranks["py-cord"] <= WIDE_N


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("requsets", "requests"),  # transposition
        ("reqursts", "requests"),  # one substitution, long name
        ("reque5t5", "requests"),  # look-alike characters, folded
        ("requ\u0435sts", "requests"),  # Cyrillic e
        ("numpyy", "numpy"),  # doubled letter on a short name
        ("tqdn", "tqdm"),  # neighbouring key on a short name
        ("python-requests", "requests"),  # affix
        ("py-crod", "py-cord"),  # transposition against the wide tier
        ("py-corf", "py-cord"),  # neighbouring key against the wide tier
        ("py-c0rd", "py-cord"),  # look-alike against the wide tier
    ],
)
def test_flags_confusions(name: str, target: str) -> None:
    assert closest_popular(name) == target


@pytest.mark.parametrize(
    "name",
    [
        "requests",  # a popular name itself
        "tqdz",  # arbitrary letter in a short name
        "urllib4",  # a digit changed: numbered siblings are common
        "py-cozd",  # arbitrary substitution against the wide tier
        "abc",  # too short
        "completely-unrelated-name",
    ],
)
def test_leaves_alone(name: str) -> None:
    assert closest_popular(name) is None


def test_fold_glyphs() -> None:
    assert fold_glyphs("Rn-0ld_1ib") == fold_glyphs("m-old-lib") == "moldllb"
