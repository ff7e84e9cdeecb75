"""The one scan pipeline: source → archive reader → package context → rules → verdict.

CLI, service and batch jobs are thin shells over :func:`scan_path` / :func:`scan_bytes`.
Nothing here executes package code; a package that cannot be read becomes a result with an
``error``, and the scan of other packages goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pkgvet.analysis.builder import build_context
from pkgvet.archive import (
    Archive,
    is_archive_name,
    kind_of,
    read_archive,
    read_directory,
    read_single_file,
)
from pkgvet.config import ScanConfig
from pkgvet.errors import ArchiveError, PkgvetError, ScanBudgetExceeded, SourceError
from pkgvet.models import Finding, ScanResult, Severity, Skip, Trigger
from pkgvet.rules.registry import select_rules
from pkgvet.scoring import apply_verdict

if TYPE_CHECKING:
    from pkgvet.analysis.context import PackageContext
    from pkgvet.ml.model import Model

ContextObserver = Callable[["PackageContext", ScanResult], None]
"""Called with the parsed package context and its finished result (``pkgvet study`` reads code
attributes off the context without a second parse)."""

_PACKAGE_MARKERS = ("setup.py", "pyproject.toml", "setup.cfg", "PKG-INFO")


def scan_bytes(
    data: bytes,
    filename: str,
    config: ScanConfig | None = None,
    target: str | None = None,
    *,
    observe: ContextObserver | None = None,
) -> ScanResult:
    """Scan one archive given as bytes."""
    config = config or ScanConfig()
    start = time.monotonic()
    result = ScanResult(
        target=target or filename,
        kind=kind_of(filename),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    try:
        archive = read_archive(data, filename, config.limits, config.password)
    except ArchiveError as exc:
        result.error = exc.diagnostics()
        apply_verdict(result)
        result.duration_s = time.monotonic() - start
        return result
    return _analyse(archive, result, config, start, observe)


def _analyse(
    archive: Archive,
    result: ScanResult,
    config: ScanConfig,
    start: float,
    observe: ContextObserver | None = None,
) -> ScanResult:
    result.kind = archive.kind
    with _gc_paused():
        return _analyse_unpaused(archive, result, config, start, observe)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while one package is analysed.

    Parsing allocates millions of AST nodes that all stay alive until the package is done, so
    CPython's generational collector would traverse the growing heap again and again (profiled:
    more than half of the time spent in ``ast.parse`` on the shared set was collection, not
    parsing). Nothing is lost by waiting: reference counting still frees what it can, and the
    package's cyclic garbage (file contexts and their folders) is collected in one pass soon
    after the collector is re-enabled. Only re-enabled if it was enabled before (nested or
    concurrent scans leave it as they found it; a thread racing another only loses speed)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _analyse_unpaused(
    archive: Archive,
    result: ScanResult,
    config: ScanConfig,
    start: float,
    observe: ContextObserver | None = None,
) -> ScanResult:
    deadline = start + config.limits.time_budget_s
    try:
        pkg = build_context(archive, config.limits, deadline)
    except ScanBudgetExceeded:
        result.error = (
            f"time budget of {config.limits.time_budget_s:g}s exceeded while parsing; not analysed"
        )
        result.skips = list(archive.skips)
        apply_verdict(result)
        result.duration_s = time.monotonic() - start
        return result
    result.package = pkg.info
    result.skips = pkg.skips
    findings: list[Finding] = []
    for r in select_rules(config.select, config.ignore):
        if time.monotonic() > deadline:
            result.skips.append(Skip("*", f"time budget exceeded before rule {r.meta.id}"))
            break
        try:
            findings.extend(r.run(pkg))
        except (
            RecursionError,
            MemoryError,
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
            IndexError,
        ) as exc:  # a rule bug must not lose the package
            result.skips.append(Skip("*", f"rule {r.meta.id} failed: {type(exc).__name__}"))
    findings = [_cap_never_run(f) for f in findings]
    result.findings = sorted(
        (f for f in findings if f.severity >= config.min_severity),
        key=lambda f: (-f.severity.rank, f.path, f.line, f.rule_id),
    )
    result.stats = {
        "files": len(archive.members),
        "python_files": len(pkg.files),
        "bytes": archive.total_bytes,
        "decoded_payloads": sum(1 for f in pkg.all_files() if f.depth),
    }
    model = _model(config) if config.use_model else None
    model_out = None
    if model is not None or config.keep_features:
        from pkgvet.ml.features import extract

        feats = extract(pkg, findings)  # all findings: the model sees what --min-severity hides
        if config.keep_features:
            from pkgvet.ml.campaigns import line_shingles, minhash

            result.features = feats
            shingles = line_shingles(f.text for f in pkg.files)
            # bottom-k by hash: a consistent sample, so near-duplicates keep similar subsets
            result.fingerprint = minhash(set(sorted(shingles)[:_MAX_SHINGLES]))
        if model is not None:
            model_out = model.predict(feats)
    apply_verdict(result, model_out)
    result.duration_s = time.monotonic() - start
    if observe is not None:
        observe(pkg, result)
    pkg.release()  # frees its trees by reference counting (the collector is paused)
    return result


_MAX_SHINGLES = 4000


def prepare(config: ScanConfig) -> None:
    """Load now what the first scan with ``config`` would otherwise load: the rules, the
    popular-name index of the typosquat checks and the model. Long-lived workers (batch, the
    service, benchmarks) call it once before their first package, so no package pays for it.
    A model that cannot be loaded raises :class:`~pkgvet.ml.model.ModelError`, as the first
    scan would."""
    from pkgvet import typosquat

    select_rules(config.select, config.ignore)
    typosquat.warm()
    if config.use_model:
        _model(config)


def _model(config: ScanConfig) -> Model | None:
    """The configured model; None when no model is installed and none was given (rules-only
    verdict). A tampered or unreadable model raises :class:`~pkgvet.ml.model.ModelError`."""
    from pkgvet.ml.model import load_model, shipped_model_available

    if config.model_path is None and not shipped_model_available():
        return None
    return load_model(config.model_path, config.model_sha256)


_TEST_PATH = re.compile(
    r"(?:^|/)(?:tests?|testing|examples?|docs?)/|(?:^|/)test_[^/]*\.py$|_test\.py$"
)


# A virtualenv shipped inside the package by mistake (``venv/Lib/site-packages/``,
# ``.venv/lib/python3.11/site-packages/``, ``.tox/py311/...``): other projects' code, which
# installing or importing the package never runs. A built distribution's own install tree
# (``Program Files/Python311/Lib/site-packages/`` in a bdist_dumb) is not one.
_BUNDLED_ENV_PATH = re.compile(
    r"(?:^|/)(?:[^/]*env[^/]*|\.tox/[^/]+|\.nox/[^/]+)/(?:Lib|lib/python[0-9.]*)/site-packages/"
)


def _cap_never_run(f: Finding) -> Finding:
    """Run-time code in test suites, examples, docs and bundled virtualenvs is never executed
    by installing or importing a package: its findings are capped at medium (install-,
    import-time and decoded ones are not)."""
    if f.severity <= Severity.MEDIUM or f.trigger is not Trigger.RUNTIME or f.decoded_depth:
        return f
    path = f.path.rsplit("!", 1)[-1]
    where = "tests" if _TEST_PATH.search(path) else None
    if where is None and _BUNDLED_ENV_PATH.search(path):
        where = "a bundled virtualenv"
    if where is None:
        return f
    return dataclasses.replace(
        f, severity=Severity.MEDIUM, message=f"{f.message} (in {where}: capped at medium)"
    )


def scan_target(
    path: Path, config: ScanConfig | None = None, *, observe: ContextObserver | None = None
) -> ScanResult:
    """Scan one target: an archive file, a lone source file or an unpacked directory."""
    config = config or ScanConfig()
    start = time.monotonic()
    target = str(path)
    try:
        if path.is_dir():
            archive = read_directory(path, config.limits)
            result = ScanResult(target=target, kind="directory")
            return _analyse(archive, result, config, start, observe)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{path}: not a regular file (device, FIFO or socket): not read")
        size = st.st_size
        if size > config.limits.max_archive_bytes:
            raise ArchiveError(
                f"{size} bytes, over the {config.limits.max_archive_bytes}-byte archive limit"
            )
        if is_archive_name(path.name) or _sniff_archive(path):
            return scan_bytes(path.read_bytes(), path.name, config, target=target, observe=observe)
        archive = read_single_file(path, config.limits)
        return _analyse(archive, ScanResult(target=target, kind="file"), config, start, observe)
    except (PkgvetError, OSError) as exc:
        msg = exc.diagnostics() if isinstance(exc, PkgvetError) else f"cannot read: {exc}"
        return error_result(target, kind_of(path.name), msg, start)
    except Exception as exc:  # a bug in pkgvet must cost one package, never the batch
        msg = f"internal error, please report: {type(exc).__name__}: {exc}"
        return error_result(target, kind_of(path.name), msg, start)


def scan_archive(
    archive: Archive, target: str, config: ScanConfig | None = None, kind: str | None = None
) -> ScanResult:
    """Scan files already read into an :class:`Archive` (an installed distribution); the
    result's ``kind`` is ``kind`` when given, else the archive's."""
    config = config or ScanConfig()
    start = time.monotonic()
    shown = kind or archive.kind
    try:
        result = _analyse(
            archive, ScanResult(target=target, kind=shown, size=archive.total_bytes), config, start
        )
    except PkgvetError as exc:
        return error_result(target, shown, exc.diagnostics(), start)
    except Exception as exc:  # a bug in pkgvet must cost one package, never the batch
        msg = f"internal error, please report: {type(exc).__name__}: {exc}"
        return error_result(target, shown, msg, start)
    result.kind = shown
    return result


def error_result(target: str, kind: str, error: str, start: float | None = None) -> ScanResult:
    """The result of a package that could not be scanned (verdict ``error``)."""
    result = ScanResult(target=target, kind=kind, error=error)
    apply_verdict(result)
    if start is not None:
        result.duration_s = time.monotonic() - start
    return result


def _sniff_archive(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(4)
    return head.startswith((b"PK\x03\x04", b"\x1f\x8b", b"BZh"))


def iter_targets(root: Path) -> Iterator[Path]:
    """Packages below ``root``: the archive files, and directories that are unpacked packages
    (those holding setup.py/pyproject.toml/setup.cfg/PKG-INFO, or only loose sources).

    This covers the ``name/version/file`` layout of the malregistry dataset, where a version
    directory holds an archive, an unpacked sdist, or a lone setup.py."""
    if not root.exists():
        raise SourceError(f"{root}: no such file or directory")
    if not root.is_dir() or _is_package_dir(root):
        yield root
        return
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        names = {e.name for e in entries}
        if d != root and names & set(_PACKAGE_MARKERS):
            yield d
            continue
        files = [e for e in entries if e.is_file(follow_symlinks=False)]
        dirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
        archives = [e for e in files if is_archive_name(e.name)]
        if d != root and not archives and not dirs and any(e.name.endswith(".py") for e in files):
            yield d
            continue
        for e in archives:
            yield Path(e.path)
        stack.extend(Path(e.path) for e in dirs)


def _is_package_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in _PACKAGE_MARKERS)


def scan_path(root: Path | str, config: ScanConfig | None = None) -> Iterator[ScanResult]:
    """Scan a file, a package directory, or a tree of many packages, one result each."""
    for target in iter_targets(Path(root)):
        yield scan_target(target, config)
