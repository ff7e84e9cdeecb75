"""The domain model: frozen dataclasses shared by the pipeline, the rules and every format."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is if it is true."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    # StrEnum compares as text ("high" < "low"); severities compare by rank.
    def __lt__(self, other: object) -> bool:
        return self.rank < _rank(other)

    def __le__(self, other: object) -> bool:
        return self.rank <= _rank(other)

    def __gt__(self, other: object) -> bool:
        return self.rank > _rank(other)

    def __ge__(self, other: object) -> bool:
        return self.rank >= _rank(other)


def _rank(other: object) -> int:
    if not isinstance(other, Severity):
        raise TypeError(f"cannot compare Severity with {type(other).__name__}")
    return other.rank


_SEVERITY_ORDER = list(Severity)


class Confidence(StrEnum):
    """How sure the rule is that the pattern is what it looks like."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Category(StrEnum):
    """Behaviour taxonomy of Guo et al. (ASE 2023), plus anti-detection and metadata."""

    COMMAND_EXECUTION = "command_execution"
    INFORMATION_STEALING = "information_stealing"
    FILE_OPERATION = "file_operation"
    CODE_EXECUTION = "code_execution"
    REMOTE_CONTROL = "remote_control"
    OBFUSCATION = "obfuscation"
    METADATA = "metadata"


class Trigger(StrEnum):
    """When the code runs on a victim's machine."""

    INSTALL = "install"  # setup.py, cmdclass hooks, .pth files
    IMPORT = "import"  # a package's __init__.py
    RUNTIME = "runtime"  # anything else
    NONE = "none"  # not code (metadata, binary files)


class Verdict(StrEnum):
    MALICIOUS = "malicious"
    SUSPICIOUS = "suspicious"
    CLEAN = "clean"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule match, located in the original file even when found in decoded code."""

    rule_id: str
    title: str
    severity: Severity
    confidence: Confidence
    category: Category
    trigger: Trigger
    path: str
    line: int
    message: str
    snippet: str = ""
    evidence: str = ""  # e.g. the decoded payload or the matched indicator
    decoded_depth: int = 0  # 0: in the file itself; n: found after n decoding layers


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A finding a suppression entry accepted (or of an allowlisted package), with its reason."""

    finding: Finding
    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    """Part of a package that was not analysed, with the reason (skips are data, not errors)."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class PackageInfo:
    """What the archive says about itself."""

    name: str | None = None
    version: str | None = None
    summary: str | None = None
    author: str | None = None
    author_email: str | None = None
    home_page: str | None = None
    license: str | None = None
    requires: tuple[str, ...] = ()
    metadata_source: str | None = None  # PKG-INFO, METADATA, setup.py, setup.cfg, pyproject


@dataclass(slots=True)
class ScanResult:
    """Everything known about one scanned artifact."""

    target: str
    kind: str  # sdist, wheel, egg, zip, directory, file
    sha256: str | None = None
    size: int = 0
    package: PackageInfo = field(default_factory=PackageInfo)
    findings: list[Finding] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    error: str | None = None
    verdict: Verdict = Verdict.CLEAN
    score: float = 0.0
    reasons: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    model_probability: float | None = None  # the trained detector's calibrated probability
    model_version: str | None = None  # sha256 prefix of the model file that scored it
    suppressed: list[Suppressed] = field(default_factory=list)  # by pkgvet.suppress
    allowlisted: str | None = None  # the reason, when a suppression entry allowlists the package
    # Training only (``ScanConfig.keep_features``), never serialised:
    features: Any = None  # pkgvet.ml.features.Features
    fingerprint: tuple[int, ...] | None = None  # MinHash of the code lines (campaign grouping)

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def categories(self) -> list[str]:
        return sorted({f.category.value for f in self.findings})

    @property
    def triggers(self) -> list[str]:
        return sorted({f.trigger.value for f in self.findings if f.trigger is not Trigger.NONE})
