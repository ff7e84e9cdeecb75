"""Rule metadata, the rule registry and the helpers rules use to build findings.

A rule is a function ``check(pkg) -> Iterator[Finding]`` registered with :func:`rule`, which
records a typed :class:`RuleMeta` (stable id, title, severity, confidence, behaviour category,
CWE) and takes the function's docstring as the rule's documentation. Rules read the
:class:`~pkgvet.analysis.context.PackageContext`; they never parse anything themselves.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pkgvet.analysis.apis import Cap
from pkgvet.analysis.context import WRITTEN_SCRIPT_SUFFIXES, FileContext, PackageContext
from pkgvet.models import Category, Confidence, Finding, Severity, Trigger

_SNIPPET_MAX = 240
_EVIDENCE_MAX = 400


@dataclass(frozen=True, slots=True)
class RuleMeta:
    id: str
    name: str  # kebab-case, reads as "allow <name>"
    title: str
    severity: Severity  # the highest severity the rule reports
    confidence: Confidence
    category: Category
    description: str
    cwe: str | None = None

    def at(
        self,
        file: FileContext,
        line: int,
        message: str,
        *,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        evidence: str = "",
        category: Category | None = None,
    ) -> Finding:
        """A finding at ``line`` of ``file``; for a decoded payload, at the original line."""
        root = file
        while root.parent is not None:
            root = root.parent
        real_line = file.report_line(line)
        if file.depth and not evidence:
            evidence = file.line_text(line)
        return Finding(
            rule_id=self.id,
            title=self.title,
            severity=severity or self.severity,
            confidence=confidence or self.confidence,
            category=category or self.category,
            trigger=trigger_at(file, line),
            path=file.path,
            line=real_line,
            message=message,
            snippet=_clip(root.line_text(real_line), _SNIPPET_MAX),
            evidence=_clip(evidence, _EVIDENCE_MAX),
            decoded_depth=file.depth,
        )

    def on_package(
        self,
        path: str,
        message: str,
        *,
        severity: Severity | None = None,
        evidence: str = "",
        line: int = 0,
        trigger: Trigger = Trigger.NONE,
    ) -> Finding:
        """A finding about the package or a non-source file."""
        return Finding(
            rule_id=self.id,
            title=self.title,
            severity=severity or self.severity,
            confidence=self.confidence,
            category=self.category,
            trigger=trigger,
            path=path,
            line=line,
            message=message,
            evidence=_clip(evidence, _EVIDENCE_MAX),
        )


def _clip(text: str, limit: int) -> str:
    text = text.replace("\r", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


Check = Callable[[PackageContext, RuleMeta], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    meta: RuleMeta
    check: Check

    def run(self, pkg: PackageContext) -> Iterator[Finding]:
        yield from self.check(pkg, self.meta)


REGISTRY: dict[str, Rule] = {}


def rule(
    id: str,
    name: str,
    title: str,
    severity: Severity,
    confidence: Confidence,
    category: Category,
    cwe: str | None = None,
) -> Callable[[Check], Check]:
    """Register a rule; its docstring is its documentation."""

    def deco(fn: Check) -> Check:
        if id in REGISTRY:
            raise ValueError(f"duplicate rule id {id}")
        doc = inspect.cleandoc(fn.__doc__ or "")
        meta = RuleMeta(id, name, title, severity, confidence, category, doc, cwe)
        REGISTRY[id] = Rule(meta, fn)
        return fn

    return deco


def eager(file: FileContext, line: int) -> bool:
    """Code at ``line`` runs by merely installing or importing the package: anything in
    setup.py, a .pth file or a module setup.py imports; code of a package ``__init__`` or of a
    module either imports at load time (see :mod:`pkgvet.analysis.reach`) that runs on load
    (module level, or a function that load-time code calls); and decoded payloads. Code found
    as plain text in a string argument (a script written to disk, ``python -c``) is as eager
    as the call that holds it. Code only a maintainer command runs (``if sys.argv[-1] ==
    "publish":``, an ``upload`` command class) is not eager, in setup.py either."""
    if file.depth > 0 and not file.encoded and file.parent is not None:
        return eager(file.parent, file.origin_line)
    return (
        (file.trigger is Trigger.INSTALL and not file.dormant(line))
        or file.depth > 0
        or (
            (file.trigger is Trigger.IMPORT or file.reached is not None) and file.runs_on_load(line)
        )
    )


def trigger_at(file: FileContext, line: int) -> Trigger:
    """When code at ``line`` runs: the file's trigger, or, for a module reached from install-
    or import-time code, that trigger where the line runs on load; run time for code only a
    maintainer command runs."""
    if file.dormant(line):
        return Trigger.RUNTIME
    root = file
    while root.parent is not None:
        root = root.parent
    if root.reached is not None and file.trigger is Trigger.RUNTIME and eager(file, line):
        return root.reached
    return file.trigger


def _ends_like_script(node: ast.expr | None, f: FileContext) -> bool:
    """A path expression that ends in a script or program suffix: a constant, or the last
    piece of an f-string or of a ``+`` chain (``tmp + "/run.py"``)."""
    while isinstance(node, ast.BinOp):
        node = node.right
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[-1]
    value = f.folder.fold(node) if node is not None else None
    return isinstance(value, str) and value.lower().endswith(WRITTEN_SCRIPT_SUFFIXES)


def writes_file(f: FileContext) -> bool:
    """The code writes a binary file, or a text file named like a script (``run.py``,
    ``x.bat``: a downloaded script is text): ``open`` with a write mode, ``write_bytes``, or a
    named temporary file (``w+b`` unless told otherwise)."""
    for c in f.calls_matching("open", "io.open", "builtins.open"):
        args = f.const_args(c)
        path = c.node.args[0] if c.node is not None and c.node.args else None
        for a in args[1:]:
            if isinstance(a, str) and "w" in a and ("b" in a or _ends_like_script(path, f)):
                return True
    for c in f.calls_matching("tempfile.NamedTemporaryFile"):
        if c.node is None:
            continue
        given = [k.value for k in c.node.keywords if k.arg == "mode"] or c.node.args[:1]
        mode = f.folder.fold(given[0]) if given else "w+b"
        if not isinstance(mode, str) or "w" in mode or "+" in mode:
            return True
    return any(c.qualname.endswith(".write_bytes") for c in f.calls)


_TEST_DIR = re.compile(r"(?:^|/)(?:tests?|testing|testdata|test_data)/")


def started_by_code(pkg: PackageContext, base: str, member: str) -> bool:
    """The shipped file ``base`` (the archive member ``member``) is started: its name appears
    on the line of a process/chmod call, or, for a file outside test folders, in a setup.py or
    package ``__init__`` that runs programs, at code that runs on install or import
    (:func:`eager`: not under a maintainer command, not in a function nothing calls on load).
    A name in a registry of assets (a JavaScript bundle listed by a web framework) starts
    nothing; neither does a library path handed to ``ctypes`` by a module the package imports."""
    if len(base) <= 3:
        return False
    in_tests = _TEST_DIR.search(member) is not None
    for f in pkg.all_files():
        if Cap.PROCESS not in f.caps and Cap.CHMOD not in f.caps:
            continue
        for s, line in f.strings:
            if base in s and (
                line in f.run_lines
                or (not in_tests and f.trigger is not Trigger.RUNTIME and eager(f, line))
            ):
                return True
    return False
