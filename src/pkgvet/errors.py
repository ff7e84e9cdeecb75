"""Typed errors. Each carries the text shown to a user; foreign errors are translated at the
boundary with ``raise ... from``."""

from __future__ import annotations


class PkgvetError(Exception):
    """Base of every error pkgvet raises on purpose."""

    def diagnostics(self) -> str:
        """The message shown to a user."""
        return str(self)


class SourceError(PkgvetError):
    """A scan target cannot be found or is of an unknown kind."""


class ArchiveError(PkgvetError):
    """An archive cannot be read: corrupt, truncated, encrypted with an unknown password."""


class UnsafeArchiveError(ArchiveError):
    """An archive breaks a safety limit (size, member count, ratio, nesting)."""


class ScanBudgetExceeded(PkgvetError):
    """The per-package time budget ran out."""
