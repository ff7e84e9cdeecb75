"""Scan configuration: safety limits and rule selection. Frozen so workers can share it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pkgvet.models import Severity

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a hostile archive can make the scanner do."""

    max_archive_bytes: int = 200 * MiB  # compressed size of the file handed to us
    max_total_bytes: int = 512 * MiB  # sum of uncompressed members read
    max_member_bytes: int = 64 * MiB  # one uncompressed member
    max_members: int = 20_000
    max_ratio: float = 200.0  # uncompressed / compressed for a member (zip) or the whole tar
    max_nesting: int = 2  # archives inside archives
    max_source_bytes: int = 16 * MiB  # larger .py files are skipped for AST analysis
    max_decode_depth: int = 8  # layers of static deobfuscation
    max_decoded_bytes: int = 2 * MiB  # output of one decoding step
    time_budget_s: float = 120.0  # per package


@dataclass(frozen=True, slots=True)
class ScanConfig:
    limits: Limits = field(default_factory=Limits)
    select: frozenset[str] = frozenset()  # rule ids or prefixes; empty = all
    ignore: frozenset[str] = frozenset()
    password: bytes = b"infected"
    min_severity: Severity = Severity.INFO
    use_model: bool = True  # the shipped (or given) trained detector sets verdict and score
    model_path: str | None = None  # another model file; needs model_sha256
    model_sha256: str | None = None
    keep_features: bool = False  # keep features and a code fingerprint on results (training)
