"""Every occurrence of many keywords in one pass over a text (Aho-Corasick).

Indicators (:mod:`pkgvet.rules.indicators`) run their regexes only near occurrences of
their keywords. A dozen indicators each searching a file's string literals for a dozen
keywords, one ``str.find`` per keyword, read the same text more than a hundred times; an
Aho-Corasick automaton of all registered keywords (``ahocorasick_rs``) reads it once.

Keywords are registered when an indicator is defined (at import time); the automaton is built
on first use and rebuilt if more are registered later. Indicators that search whole file
texts rather than string literals use an automaton of their own keywords
(:class:`KeywordIndex`).
"""

from __future__ import annotations

import ahocorasick_rs

# Longer texts are searched keyword by keyword: every overlapping occurrence is listed here, so
# a hostile text repeating a keyword would cost memory in proportion to its length.
MAX_HITS_TEXT = 256 * 1024


class KeywordIndex:
    """An Aho-Corasick automaton over a list of keywords, built on first use (and again after
    :meth:`add`). Keywords must be lower case, non-empty and not runs of one character, which
    would match at every position of a long run."""

    __slots__ = ("_automaton", "_position", "keywords")

    def __init__(self, keywords: list[str] | None = None) -> None:
        self.keywords: list[str] = []
        self._position: dict[str, int] = {}
        self._automaton: ahocorasick_rs.AhoCorasick | None = None
        self.add(keywords or [])

    def add(self, keywords: list[str]) -> None:
        for k in keywords:
            if k and k not in self._position:
                self._position[k] = len(self.keywords)
                self.keywords.append(k)
                self._automaton = None

    def __contains__(self, keyword: str) -> bool:
        return keyword in self._position

    def automaton(self) -> ahocorasick_rs.AhoCorasick:
        if self._automaton is None:
            self._automaton = ahocorasick_rs.AhoCorasick(self.keywords)
        return self._automaton

    def find_all(self, text: str) -> KeywordHits | None:
        """The keywords' occurrences in ``text``; None where they cannot be listed: a text
        longer than :data:`MAX_HITS_TEXT`, or one holding lone surrogates (string literals such
        as ``"\\ud800"``), which the automaton, working on UTF-8, cannot read."""
        if len(text) > MAX_HITS_TEXT:
            return None
        try:
            return KeywordHits(text, self)
        except UnicodeEncodeError:
            return None


_SHARED = KeywordIndex()


def shared_index() -> KeywordIndex:
    """The index of every registered keyword (:func:`register`)."""
    return _SHARED


def register(keywords: list[str]) -> None:
    """Make ``keywords`` (see :class:`KeywordIndex`) findable through :func:`find_all`."""
    _SHARED.add(keywords)


def registered(keyword: str) -> bool:
    return keyword in _SHARED


def find_all(text: str) -> KeywordHits | None:
    """Every registered keyword's occurrences in ``text`` (see :meth:`KeywordIndex.find_all`)."""
    return _SHARED.find_all(text)


class KeywordHits:
    """Start positions of every keyword of an index in ``text``, overlapping occurrences
    included, in increasing order: what repeated ``text.find(keyword, start)`` calls return.
    Raises UnicodeEncodeError for a text with lone surrogates (see
    :meth:`KeywordIndex.find_all`)."""

    __slots__ = ("found", "index")

    def __init__(self, text: str, index: KeywordIndex | None = None) -> None:
        index = index or _SHARED
        self.index = index  # whose keywords were searched
        # keyword -> its start positions; only keywords that occur
        self.found: dict[str, list[int]] = {}
        if not index.keywords or not text:
            return
        at = self.found
        keywords = index.keywords
        # Matches come in order of their end; for one keyword (one length) that is the order
        # of their starts.
        for i, start, _end in index.automaton().find_matches_as_indexes(text, overlapping=True):
            k = keywords[i]
            found = at.get(k)
            if found is None:
                at[k] = [start]
            else:
                found.append(start)
