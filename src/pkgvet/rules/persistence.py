"""Persistence and defence evasion: autostart locations, scheduled tasks, shell rc files,
antivirus tampering."""

from __future__ import annotations

from collections.abc import Iterator

from pkgvet.analysis.context import FileContext, PackageContext
from pkgvet.models import Category, Confidence, Finding, Severity
from pkgvet.rules.base import RuleMeta, eager, rule
from pkgvet.rules.indicators import AV_TAMPER, PERSISTENCE, RC_FILES, first_string_match


@rule(
    "PV501",
    "persistence",
    "Installs itself to start automatically",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.FILE_OPERATION,
    "CWE-506",
)
def persistence(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Registry ``Run`` keys, the Startup folder, ``schtasks /create``, cron, systemd units,
    LaunchAgents, ``rc.local``; shell rc files (``.bashrc``...) when the code also writes text
    files. High in install- or import-time code; medium in code that runs on demand, where
    service managers, schedulers and "start at login" settings use the same locations."""
    for f in pkg.all_files():
        hit = first_string_match(f, PERSISTENCE)
        if hit is None:
            hit = first_string_match(f, RC_FILES)
            if hit is None or not _writes_text(f):
                continue
        acts = eager(f, hit[0])
        yield meta.at(
            f,
            hit[0],
            "autostart location",
            evidence=hit[1],
            severity=Severity.HIGH if acts else Severity.MEDIUM,
        )


def _writes_text(f: FileContext) -> bool:
    for c in f.calls_matching("open", "io.open"):
        if any(
            isinstance(a, str) and ("a" in a or "w" in a) and len(a) <= 3
            for a in f.const_args(c)[1:]
        ):
            return True
    return False


@rule(
    "PV502",
    "antivirus-tampering",
    "Disables or blinds antivirus and firewall",
    Severity.HIGH,
    Confidence.HIGH,
    Category.COMMAND_EXECUTION,
    "CWE-693",
)
def antivirus_tampering(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``Add-MpPreference -ExclusionPath``, ``Set-MpPreference -Disable…``, turning the Windows
    firewall off: a dropper preparing the ground for its payload."""
    for f in pkg.all_files():
        hit = first_string_match(f, AV_TAMPER)
        if hit:
            yield meta.at(f, hit[0], "tampers with Defender or the firewall", evidence=hit[1])
