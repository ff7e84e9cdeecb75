"""Suppressions and the allowlist, applied to scan results after the pipeline (the CLI and any
other shell share them; the pipeline itself never sees them).

A :class:`Suppression` names a package (normalised name), optionally a version, a rule id or
prefix and a path glob, and always a reason:

- with a ``rule`` or a ``path``: the matching findings leave ``result.findings`` for
  ``result.suppressed`` with the entry's reason. They no longer count for ``--fail-on``.
  A rules-only verdict (``--no-model``) is recomputed from the findings left, since it is a
  function of the findings alone; the trained model's probability, score and verdict are *not*
  (the model weighed every finding as a feature, and pkgvet does not pretend to know what it
  would have said without them). To accept a package the model flags, allowlist it.
- with neither: the package (that version, when one is given) is allowlisted: its verdict
  becomes ``clean`` with the reason ``allowlisted: <reason>``, every finding is moved to
  ``suppressed``, and it never fails the run. The score and model probability are kept, for
  the record.

A package that could not be scanned (verdict ``error``) is left alone: pkgvet cannot tell what
it would be vouching for.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from pkgvet.models import ScanResult, Suppressed, Verdict
from pkgvet.scoring import apply_verdict


@dataclass(frozen=True, slots=True)
class Suppression:
    """One ``[[suppress]]`` entry."""

    package: str  # normalised (PEP 503)
    reason: str
    version: str | None = None
    rule: str | None = None  # a rule id or prefix, upper case
    path: str | None = None  # an fnmatch glob over paths inside the package
    source: str = ""  # where it was written, for messages: "pyproject.toml, suppress entry 2"

    @property
    def allowlists(self) -> bool:
        """An entry without rule and path vouches for the whole package."""
        return self.rule is None and self.path is None


def identify(result: ScanResult) -> tuple[str | None, str | None]:
    """The normalised name and the version of the package a result is about: from its metadata,
    else from the target (an sdist or wheel file name, ``name==version``, ``name-version``)."""
    name, version = result.package.name, result.package.version
    if not name:
        name, guessed = _from_target(result.target)
        version = version or guessed
    return (canonicalize_name(name) if name else None), version


def _from_target(target: str) -> tuple[str | None, str | None]:
    text = target.split(" (", 1)[0].strip()  # "name==1.0 (file.tar.gz)", "name-1.0 (installed)"
    if "==" in text:
        name, _, version = text.partition("==")
        return name.strip() or None, version.strip() or None
    base = PurePosixPath(text.replace("\\", "/")).name
    try:
        if base.endswith(".whl"):
            wname, wversion, _, _ = parse_wheel_filename(base)
            return wname, str(wversion)
        for ext in (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"):
            if base.endswith(ext):
                sname, sversion = parse_sdist_filename(base[: -len(ext)] + ".tar.gz")
                return sname, str(sversion)
    except (InvalidSdistFilename, InvalidWheelFilename):
        return None, None
    return None, None


def same_version(wanted: str, actual: str | None) -> bool:
    if actual is None:
        return False
    try:
        return Version(wanted) == Version(actual)
    except InvalidVersion:
        return wanted.strip() == actual.strip()


def path_matches(pattern: str, path: str) -> bool:
    """``pattern`` (fnmatch, where ``*`` also crosses ``/``) against the finding's path as
    reported (``pkg-1.0/pkg/x.py``, ``outer.zip!pkg/x.py``) and against it without the
    archive wrapper and the top folder (``pkg/x.py``)."""
    inner = path.rsplit("!", 1)[-1]
    candidates = {path, inner}
    if "/" in inner:
        candidates.add(inner.split("/", 1)[1])
    return any(fnmatch.fnmatchcase(c, pattern) for c in candidates)


def applies_to(entry: Suppression, name: str | None, version: str | None) -> bool:
    if name is None or entry.package != name:
        return False
    return entry.version is None or same_version(entry.version, version)


def apply_suppressions(result: ScanResult, entries: Iterable[Suppression]) -> ScanResult:
    """Apply the entries that name this result's package, in place; returns the result."""
    if result.verdict is Verdict.ERROR:
        return result
    name, version = identify(result)
    mine = [e for e in entries if applies_to(e, name, version)]
    if not mine:
        return result
    dropped = 0
    kept = []
    for f in result.findings:
        hit = next(
            (
                e
                for e in mine
                if not e.allowlists
                and (e.rule is None or f.rule_id.upper().startswith(e.rule))
                and (e.path is None or path_matches(e.path, f.path))
            ),
            None,
        )
        if hit is None:
            kept.append(f)
        else:
            result.suppressed.append(Suppressed(f, hit.reason))
            dropped += 1
    result.findings = kept
    if dropped and result.model_probability is None:
        apply_verdict(result)  # a rules-only verdict is a function of the findings alone
    if dropped:
        result.reasons.append(f"{dropped} finding{'s' * (dropped != 1)} suppressed")
    allow = next((e for e in mine if e.allowlists), None)
    if allow is not None:
        was = result.verdict
        result.allowlisted = allow.reason
        result.suppressed.extend(Suppressed(f, f"allowlisted: {allow.reason}") for f in kept)
        result.findings = []
        result.verdict = Verdict.CLEAN
        note = f"allowlisted: {allow.reason}"
        if was is not Verdict.CLEAN:
            note += f" (verdict was {was.value})"
        result.reasons.insert(0, note)
    result.suppressed.sort(
        key=lambda s: (-s.finding.severity.rank, s.finding.path, s.finding.line, s.finding.rule_id)
    )
    return result
