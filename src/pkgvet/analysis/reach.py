"""Which code runs as soon as a module runs, and which modules a module runs.

Two reachability questions that decide whether a finding is eager (runs on install or
import) or waits for the user to call something:

* **Inside a file** (:func:`dead_ranges`): module-level statements run on load; a function
  body runs on load only when something that runs on load calls it. Calls followed are
  ``f()`` (a function of the module, or a nested one in scope), ``C()`` (``__init__``,
  ``__new__`` and ``__post_init__`` of a module-level class), ``self.m()``/``cls.m()`` inside
  a method of such a class, and functions handed to a call as arguments
  (``threading.Thread(target=f)``, ``atexit.register(f)``), which nearly always run them.
  An ``if __name__ == "__main__":`` block does not run on import. Everything else, lambdas
  included, waits for a caller: the result is the line ranges that do not run on load.
* **Across files** (:func:`module_name`, :func:`imported_modules`): a module imported at
  load time by an install- or import-time module runs at that time too; relative imports are
  resolved against the importing module's package.

Both are static approximations: calls through attributes of other objects, decorators and
dynamic dispatch are not followed, so an eager body can still look lazy (never the reverse
for the cases above).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Sequence

_CONSTRUCTORS = ("__init__", "__new__", "__post_init__")
Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    parts = [stmt.test.left, *stmt.test.comparators]
    return any(isinstance(p, ast.Name) and p.id == "__name__" for p in parts) and any(
        isinstance(p, ast.Constant) and p.value == "__main__" for p in parts
    )


def dead_ranges(
    tree: ast.Module, defs: Sequence[Def], calls: Sequence[ast.Call], main_runs: bool
) -> list[tuple[int, int]]:
    """Line ranges (inclusive, sorted, disjoint) of code that does not run when the module
    runs.

    ``defs`` are every function and lambda of the tree, ``calls`` every call; ``main_runs`` is
    True for a script run as ``__main__`` (setup.py), whose main block does run."""
    main = [] if main_runs else [(s.lineno, _end(s)) for s in tree.body if _is_main_guard(s)]
    if not defs:  # no function that could wait for a caller: only a main block can
        return main
    order = sorted(range(len(defs)), key=lambda i: (defs[i].lineno, -_end(defs[i])))
    last = max((_end(d) for d in defs), default=0)
    for c in calls:
        last = max(last, c.lineno)
    owner = [-1] * (last + 2)  # line -> innermost function span holding it
    parent = [-1] * len(defs)
    for i in order:
        d = defs[i]
        parent[i] = owner[d.lineno]
        owner[d.lineno : _end(d) + 1] = [i] * (_end(d) + 1 - d.lineno)

    index = {id(d): i for i, d in enumerate(defs)}
    by_name: dict[tuple[int, str], list[int]] = {}
    methods: dict[str, dict[str, list[int]]] = {}
    method_class: dict[int, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            table = methods.setdefault(stmt.name, {})
            for item in stmt.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and id(item) in index:
                    k = index[id(item)]
                    table.setdefault(item.name, []).append(k)
                    method_class[k] = stmt.name
    for i, d in enumerate(defs):
        if not isinstance(d, ast.Lambda) and i not in method_class:
            by_name.setdefault((parent[i], d.name), []).append(i)

    def scope_lookup(span: int, name: str) -> list[int]:
        while True:
            found = by_name.get((span, name))
            if found is not None or span == -1:
                return found or []
            span = parent[span]

    def enclosing_class(span: int) -> str | None:
        while span != -1:
            if span in method_class:
                return method_class[span]
            span = parent[span]
        return None

    def targets(node: ast.expr, span: int, called: bool) -> list[int]:
        if isinstance(node, ast.Name):
            found = scope_lookup(span, node.id)
            if called and node.id in methods:
                found = found + [k for m in _CONSTRUCTORS for k in methods[node.id].get(m, [])]
            return found
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            cls = enclosing_class(span)
            if cls is not None:
                return methods[cls].get(node.attr, [])
        return []

    edges: dict[int, list[int]] = {}
    resolved: set[tuple[int, str, bool]] = set()
    named = (ast.Name, ast.Attribute)  # targets() finds nothing for any other expression

    def follow(node: ast.expr, span: int, called: bool) -> None:
        # a name resolves the same way everywhere in one span: resolving it once per span
        # keeps n calls of a name bound n times (hostile input) from making n * n edges
        if isinstance(node, ast.Name):
            key = (span, node.id, called)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            key = (span, f"{node.value.id}.{node.attr}", called)
        else:
            return  # targets() finds nothing for it
        if key not in resolved:
            resolved.add(key)
            edges.setdefault(span, []).extend(targets(node, span, called))

    for c in calls:
        if main and any(a <= c.lineno <= b for a, b in main):
            continue
        span = owner[c.lineno]
        follow(c.func, span, True)
        for a in c.args:
            if a.__class__ in named:
                follow(a, span, False)
        for kw in c.keywords:
            if kw.value.__class__ in named:
                follow(kw.value, span, False)

    live: set[int] = set()
    frontier = list(edges.get(-1, ()))
    while frontier:
        k = frontier.pop()
        if k not in live:
            live.add(k)
            frontier.extend(edges.get(k, ()))
    dead = [(d.lineno, _end(d)) for i, d in enumerate(defs) if i not in live]
    return merge_ranges(dead + main)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The same lines as ``ranges`` (inclusive), as sorted disjoint ranges: a line lookup is
    then one bisection."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _end(node: ast.stmt | ast.expr) -> int:
    return node.end_lineno or node.lineno


def module_name(rel: str) -> str | None:
    """The dotted module name of a source at ``rel`` (``src/`` and ``lib/`` layouts
    understood), or None when the path cannot be a module."""
    if not rel.endswith(".py") or "!" in rel:
        return None
    parts = rel[:-3].split("/")
    if len(parts) > 1 and parts[0] in ("src", "lib"):
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


ImportSite = tuple[int, int, str, tuple[str, ...]]  # line, level, module, imported names


def imported_modules(name: str, is_package: bool, site: ImportSite) -> Iterator[str]:
    """Modules an import statement in module ``name`` runs: the module, every package above
    it, and imported names that are submodules (the caller keeps those that exist)."""
    _line, level, module, names = site
    if level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        if level - 1 > len(base):
            return
        base = base[: len(base) - (level - 1)]
        full = ".".join([*base, module] if module else base)
    else:
        full = module
    if not full:
        parts: list[str] = []
    else:
        parts = full.split(".")
        for k in range(1, len(parts) + 1):
            yield ".".join(parts[:k])
    for n in names:
        if n != "*":
            yield ".".join([*parts, n])
