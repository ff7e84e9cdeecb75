"""Every occurrence of many keywords in one pass over a text (Aho-Corasick).

Indicators (:mod:`pkgvet.rules.indicators`) run their regexes only near occurrences of
their keywords. A dozen indicators each searching a file's string literals for a dozen
keywords, one ``str.find`` per keyword, read the same text more than a hundred times; an
Aho-Corasick automaton of all registered keywords (``ahocorasick_rs``) reads it once.

Keywords are registered when an indicator is defined (at import time); the automaton is built
on first use and rebuilt if more are registered later.
"""

from __future__ import annotations

import ahocorasick_rs

# Longer texts are searched keyword by keyword: every overlapping occurrence is listed here, so
# a hostile text repeating a keyword would cost memory in proportion to its length.
MAX_HITS_TEXT = 256 * 1024

_KEYWORDS: list[str] = []
_INDEX: dict[str, int] = {}
_automaton: ahocorasick_rs.AhoCorasick | None = None


def register(keywords: list[str]) -> None:
    """Make ``keywords`` (lower case, non-empty, not runs of one character, which would
    match at every position of a long run) findable through :class:`KeywordHits`."""
    global _automaton
    for k in keywords:
        if k and k not in _INDEX:
            _INDEX[k] = len(_KEYWORDS)
            _KEYWORDS.append(k)
            _automaton = None


def registered(keyword: str) -> bool:
    return keyword in _INDEX


def _get_automaton() -> ahocorasick_rs.AhoCorasick:
    global _automaton
    if _automaton is None:
        _automaton = ahocorasick_rs.AhoCorasick(_KEYWORDS)
    return _automaton


def find_all(text: str) -> KeywordHits | None:
    """The registered keywords' occurrences in ``text``; None where they cannot be listed:
    a text longer than :data:`MAX_HITS_TEXT`, or one holding lone surrogates (string literals
    such as ``"\\ud800"``), which the automaton, working on UTF-8, cannot read."""
    if len(text) > MAX_HITS_TEXT:
        return None
    try:
        return KeywordHits(text)
    except UnicodeEncodeError:
        return None


class KeywordHits:
    """Start positions of every registered keyword in ``text``, overlapping occurrences
    included, in increasing order: what repeated ``text.find(keyword, start)`` calls return.
    Raises UnicodeEncodeError for a text with lone surrogates (see :func:`find_all`)."""

    __slots__ = ("_at",)

    def __init__(self, text: str) -> None:
        self._at: dict[str, list[int]] = {}
        if not _KEYWORDS or not text:
            return
        at = self._at
        keywords = _KEYWORDS
        # Matches come in order of their end; for one keyword (one length) that is the order
        # of their starts.
        for i, start, _end in _get_automaton().find_matches_as_indexes(text, overlapping=True):
            k = keywords[i]
            found = at.get(k)
            if found is None:
                at[k] = [start]
            else:
                found.append(start)

    def positions(self, keyword: str) -> list[int]:
        """Where ``keyword`` starts in the text (it must be registered)."""
        return self._at.get(keyword, [])
