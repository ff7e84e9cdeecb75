"""Persistence and defence evasion: autostart locations, scheduled tasks, shell rc files,
antivirus tampering."""

from __future__ import annotations

from collections.abc import Iterator

from pkgvet.analysis.apis import Cap
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
    files (high only in install- or import-time code: environment tools edit rc files on
    request). High when the code can write files, set registry values or run programs."""
    for f in pkg.all_files():
        hit = first_string_match(f, PERSISTENCE)
        acts = any(c in f.caps for c in (Cap.FILE_WRITE, Cap.REGISTRY, Cap.PROCESS))
        if hit is None:
            rc = first_string_match(f, RC_FILES)
            if rc is None or not _writes_text(f):
                continue
            # shell set-up tools append to rc files on request; only unasked is persistence
            hit, acts = rc, eager(f, rc[0])
        acts = acts or eager(f, hit[0])
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
