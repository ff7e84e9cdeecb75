"""Turn an :class:`~pkgvet.archive.Archive` into a :class:`PackageContext`: decide each file's
trigger point, parse each source once, and read the metadata."""

from __future__ import annotations

import ast
import posixpath
import time

from pkgvet.analysis import metadata
from pkgvet.analysis.context import (
    PY_SUFFIXES,
    SCRIPT_SUFFIXES,
    FileContext,
    PackageContext,
    _decode_source,
)
from pkgvet.analysis.reach import imported_modules, maintainer_command_methods, module_name
from pkgvet.archive import Archive, Member
from pkgvet.config import Limits
from pkgvet.errors import ScanBudgetExceeded
from pkgvet.models import PackageInfo, Skip, Trigger

_NOT_PACKAGES = (
    "tests/",
    "test/",
    "testing/",
    "docs/",
    "doc/",
    "examples/",
    "benchmarks/",
    "scripts/",
)


def _trigger(rel: str) -> Trigger:
    base = posixpath.basename(rel)
    depth = rel.count("/")
    if base == "setup.py" and depth == 0:
        return Trigger.INSTALL
    if base.endswith(".pth"):
        return Trigger.INSTALL
    if (
        base == "__init__.py"
        and "!" not in rel
        and (depth == 1 or (depth == 2 and rel.startswith(("src/", "lib/"))))
        and not rel.startswith(_NOT_PACKAGES)
    ):
        return Trigger.IMPORT  # a top-level package: imported by any use of the project
    return Trigger.RUNTIME


def _pth_code(text: str) -> str:
    """The lines of a .pth file that Python's site module executes (those starting 'import')."""
    return "\n".join(
        line if line.startswith(("import ", "import\t")) else "" for line in text.splitlines()
    )


def build_context(archive: Archive, limits: Limits, deadline: float) -> PackageContext:
    """Parse every source once into a package context. Time budget overruns raise."""
    ctx = PackageContext(archive=archive, info=PackageInfo(), skips=list(archive.skips))
    setup: FileContext | None = None
    for m in archive.members:
        low = m.rel.lower()
        if low.endswith(PY_SUFFIXES) or low.endswith(".pth"):
            fc = _file_context(ctx, m, limits, deadline)
            if fc is None:
                continue
            ctx.files.append(fc)
            if fc.rel == "setup.py":
                setup = fc
        elif low.endswith(SCRIPT_SUFFIXES) and m.size <= limits.max_source_bytes:
            ctx.scripts.append((m, _decode_source(m.data)))
        if time.monotonic() > deadline:
            raise ScanBudgetExceeded("time budget exceeded")
    if setup is not None:
        _mark_install_time_modules(ctx, setup)
        _read_setup(ctx, setup)
    ctx.info = _read_metadata(ctx)
    _mark_reached(ctx)
    return ctx


def _file_context(
    ctx: PackageContext, m: Member, limits: Limits, deadline: float
) -> FileContext | None:
    if m.size > limits.max_source_bytes:
        ctx.skips.append(Skip(m.path, f"source of {m.size} bytes over the limit: not parsed"))
        return None
    text = _decode_source(m.data)
    trigger = _trigger(m.rel)
    if m.rel.lower().endswith(".pth"):  # its bytes stay: `pkgvet diff` reads its lines
        text = _pth_code(text)
        if not text.strip():
            return None
    else:
        m.release_source()  # from here on the analysis reads the text
    fc = FileContext(m.path, m.rel, text, trigger, limits, deadline=deadline)
    if fc.parse_error:
        ctx.skips.append(
            Skip(m.path, f"not valid Python 3 ({fc.parse_error}); analysed with the tokenizer")
        )
    return fc


def _mark_install_time_modules(ctx: PackageContext, setup: FileContext) -> None:
    """Local modules that setup.py imports run at install time too."""
    local = {imp.split(".")[0] for imp in setup.imports}
    for fc in ctx.files:
        top = fc.rel.split("/", 1)[0].removesuffix(".py")
        if (
            fc is not setup
            and top in local
            and (fc.rel.count("/") == 0 or fc.rel == f"{top}/__init__.py")
        ):
            fc.trigger = Trigger.INSTALL


def _import_roots(ctx: PackageContext) -> list[FileContext]:
    """Modules that run when the project is imported: top-level packages, and top-level
    single-file modules (``py_modules``, the project's own name, or any in a wheel), at the
    root or in a ``src/`` or ``lib/`` layout."""
    name = (ctx.info.name or "").lower().replace("-", "_").replace(".", "_")
    py_modules = ctx.setup_kwargs.get("py_modules")
    listed = (
        {e.value for e in py_modules.elts if isinstance(e, ast.Constant)}
        if isinstance(py_modules, ast.List | ast.Tuple)
        else set()
    )
    wheel = ctx.archive.kind == "wheel"
    roots = []
    for fc in ctx.files:
        if fc.trigger is Trigger.IMPORT:
            roots.append(fc)
        elif fc.trigger is Trigger.RUNTIME and fc.rel.endswith(".py") and _top_level(fc.rel, wheel):
            stem = fc.rel.rsplit("/", 1)[-1][:-3]
            if wheel or stem in listed or stem.lower() == name:
                fc.reached = fc.reached or Trigger.IMPORT
                roots.append(fc)
    return roots


def _top_level(rel: str, wheel: bool) -> bool:
    """A module at the root, or (an sdist's layout) directly in ``src/`` or ``lib/``."""
    if "/" not in rel:
        return True
    return not wheel and rel.count("/") == 1 and rel.startswith(("src/", "lib/"))


def _mark_reached(ctx: PackageContext) -> None:
    """Modules imported at load time by install-time code run at install time; those imported
    by import-time code run on import (transitively; see :mod:`pkgvet.analysis.reach`)."""
    modules: dict[str, FileContext] = {}
    for fc in ctx.files:
        mod = module_name(fc.rel)
        if mod is not None and not fc.rel.startswith(_NOT_PACKAGES):
            modules.setdefault(mod, fc)
    installs = [fc for fc in ctx.files if fc.trigger is Trigger.INSTALL]
    for start, trigger in ((installs, Trigger.INSTALL), (_import_roots(ctx), Trigger.IMPORT)):
        seen = {id(fc) for fc in start}
        todo = list(start)
        while todo:
            fc = todo.pop()
            mod = module_name(fc.rel) or ""
            package = fc.rel.endswith("__init__.py")
            whole = fc.trigger is Trigger.INSTALL and fc.reached is None
            for site in fc.import_sites:
                if not (whole or fc.runs_on_load(site[0])):
                    continue
                for target in imported_modules(mod, package, site):
                    dep = modules.get(target)
                    if dep is None or id(dep) in seen:
                        continue
                    seen.add(id(dep))
                    todo.append(dep)
                    if dep.trigger is Trigger.RUNTIME and dep.reached is None:
                        dep.reached = trigger


def _read_setup(ctx: PackageContext, setup: FileContext) -> None:
    if setup.tree is None:
        return
    call = metadata.setup_call(setup.tree)
    if call is None:
        return
    for kw in call.keywords:
        if kw.arg:
            ctx.setup_kwargs[kw.arg] = kw.value
    cmd = ctx.setup_kwargs.get("cmdclass")
    if isinstance(cmd, ast.Name) and cmd.id in setup.constants:
        cmd = setup.constants[cmd.id]
    if isinstance(cmd, ast.Dict):
        for k, v in zip(cmd.keys, cmd.values, strict=False):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                ctx.cmdclass[k.value] = setup.qualname(v) if isinstance(v, ast.expr) else ""
    elif isinstance(cmd, ast.Call):  # dict(install=X)
        for kw in cmd.keywords:
            if kw.arg:
                ctx.cmdclass[kw.arg] = setup.qualname(kw.value)
    setup.add_dormant(maintainer_command_methods(setup.tree, ctx.cmdclass))


def _read_metadata(ctx: PackageContext) -> PackageInfo:
    members = ctx.archive.members
    candidates: list[PackageInfo | None] = []
    core = metadata.core_metadata_member(members)
    if core is not None:
        candidates.append(metadata.from_core_metadata(core.data, core.path))
    for m in members:
        if m.rel == "pyproject.toml":
            candidates.append(metadata.from_pyproject(m.data, m.path))
        elif m.rel == "setup.cfg":
            candidates.append(metadata.from_setup_cfg(m.data, m.path))
    if ctx.setup_kwargs:
        setup = next((f for f in ctx.files if f.rel == "setup.py"), None)
        if setup is not None:
            kwargs = {
                k: setup.folder.fold(v)
                for k, v in ctx.setup_kwargs.items()
                if k
                in (
                    "name",
                    "version",
                    "description",
                    "author",
                    "author_email",
                    "url",
                    "license",
                    "install_requires",
                )
            }
            candidates.append(metadata.from_setup_kwargs(kwargs))
    return metadata.merge(candidates)
