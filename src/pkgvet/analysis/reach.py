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
* **Maintainer commands** (:func:`argv_guarded`, :func:`maintainer_command_methods`): a body
  under ``if sys.argv[-1] == "publish":`` and the methods of a ``cmdclass`` command registered
  only as ``upload``/``release``/``test``... run when a maintainer types that command, never on
  ``pip install`` (which runs ``egg_info``, ``bdist_wheel``, ``install``, ``develop`` and the
  commands those run). Only commands named in :data:`MAINTAINER_COMMANDS` count: a guard
  compared to anything else, or negated, is taken to run.

Both are static approximations: calls through attributes of other objects, decorators and
dynamic dispatch are not followed, so an eager body can still look lazy (never the reverse
for the cases above).
"""

from __future__ import annotations

import ast
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

_CONSTRUCTORS = ("__init__", "__new__", "__post_init__")
Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda

# setup.py commands typed by a maintainer, that no installer runs (pip runs egg_info,
# bdist_wheel, install, develop, clean, dist_info, editable_wheel and their sub-commands)
MAINTAINER_COMMANDS = frozenset(
    {
        "publish",
        "upload",
        "release",
        "tag",
        "register",
        "deploy",
        "pypi",
        "testpypi",
        "test",
        "tests",
        "coverage",
        "lint",
        "doc",
        "docs",
        "bump",
        "push",
    }
)


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
    return load_ranges(tree, defs, calls, main_runs, [])[0]


def load_ranges(
    tree: ast.Module,
    defs: Sequence[Def],
    calls: Sequence[ast.Call],
    main_runs: bool,
    guarded: list[tuple[int, int]],
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """:func:`dead_ranges`, and the functions that run only through calls made inside
    ``guarded`` (sorted disjoint ranges of maintainer-command code, :func:`argv_guarded`):
    ``publish()`` called under ``if sys.argv[-1] == "publish":`` only."""
    main = [] if main_runs else [(s.lineno, _end(s)) for s in tree.body if _is_main_guard(s)]
    if not defs:  # no function that could wait for a caller: only a main block can
        return main, guarded
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
    guarded_edges: dict[int, list[int]] = {}  # from calls in maintainer-command code
    resolved: set[tuple[int, str, bool, bool]] = set()
    named = (ast.Name, ast.Attribute)  # targets() finds nothing for any other expression
    guard_starts = [a for a, _b in guarded]

    def follow(node: ast.expr, span: int, called: bool, dormant: bool) -> None:
        # a name resolves the same way everywhere in one span: resolving it once per span
        # keeps n calls of a name bound n times (hostile input) from making n * n edges
        if isinstance(node, ast.Name):
            key = (span, node.id, called, dormant)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            key = (span, f"{node.value.id}.{node.attr}", called, dormant)
        else:
            return  # targets() finds nothing for it
        if key not in resolved:
            resolved.add(key)
            table = guarded_edges if dormant else edges
            table.setdefault(span, []).extend(targets(node, span, called))

    for c in calls:
        if main and any(a <= c.lineno <= b for a, b in main):
            continue
        span = owner[c.lineno]
        dormant = False
        if guarded:
            g = bisect_right(guard_starts, c.lineno) - 1
            dormant = g >= 0 and c.lineno <= guarded[g][1]
        follow(c.func, span, True, dormant)
        for a in c.args:
            if a.__class__ in named:
                follow(a, span, False, dormant)
        for kw in c.keywords:
            if kw.value.__class__ in named:
                follow(kw.value, span, False, dormant)

    strict = _reached(edges, {})
    live = _reached(edges, guarded_edges) if guarded_edges else strict
    dead = [(d.lineno, _end(d)) for i, d in enumerate(defs) if i not in live]
    only_guarded = live - strict
    dormant_defs = [(defs[i].lineno, _end(defs[i])) for i in only_guarded]
    return merge_ranges(dead + main), merge_ranges([*guarded, *dormant_defs])


def _reached(*graphs: dict[int, list[int]]) -> set[int]:
    """The functions reached from module level (-1) over the edges of all ``graphs``."""
    live: set[int] = set()
    frontier = [k for g in graphs for k in g.get(-1, ())]
    while frontier:
        k = frontier.pop()
        if k not in live:
            live.add(k)
            frontier.extend(k2 for g in graphs for k2 in g.get(k, ()))
    return live


def argv_guarded(tree: ast.Module, qualname: Callable[[ast.expr], str]) -> list[tuple[int, int]]:
    """Line ranges (sorted, disjoint) of ``if`` bodies outside functions and classes that run
    only when setup.py is given a maintainer command: ``if sys.argv[-1] == "publish":``,
    ``if "upload" in sys.argv:``, ``if cmd in ("tag", "release"):`` with ``cmd = sys.argv[1]``
    at module level. An ``and`` needs one such test, an ``or`` needs all; the ``else`` branch
    runs."""
    names = {
        t.id
        for stmt in tree.body
        if isinstance(stmt, ast.Assign) and _is_argv(stmt.value, qualname, set())
        for t in stmt.targets
        if isinstance(t, ast.Name)
    }
    out = [
        (node.body[0].lineno, _end(node.body[-1]))
        for node in _statements(tree.body)
        if isinstance(node, ast.If) and node.body and _guard(node.test, qualname, names)
    ]
    return merge_ranges(out)


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a block and of the blocks nested in it (``if``, ``try``, ``with``,
    loops), not those of functions or classes: a maintainer guard sits at the top of setup.py,
    and visiting statements only (not every expression node) keeps this cheap."""
    stack = list(reversed(body))
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for name in ("body", "orelse", "finalbody"):
            stack.extend(reversed(getattr(stmt, name, None) or []))
        for handler in getattr(stmt, "handlers", None) or []:
            stack.extend(reversed(handler.body))


def _guard(test: ast.expr, qualname: Callable[[ast.expr], str], names: set[str]) -> bool:
    """``test`` holds only when a maintainer command is in ``sys.argv`` (module-level
    functions, not closures: a recursive closure would keep the file's context in a cycle)."""
    if isinstance(test, ast.BoolOp):
        tests = [_guard(v, qualname, names) for v in test.values]
        return any(tests) if isinstance(test.op, ast.And) else all(tests)
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if isinstance(op, ast.Eq):
        return any(
            _is_argv(a, qualname, names) and _commands(b) for a, b in ((left, right), (right, left))
        )
    if isinstance(op, ast.In):
        return (_is_argv(right, qualname, names) and _commands(left)) or (
            _is_argv(left, qualname, names) and _commands(right)
        )
    return False


def _is_argv(node: ast.expr, qualname: Callable[[ast.expr], str], names: set[str]) -> bool:
    """``sys.argv``, one item or slice of it, or a module-level name assigned one."""
    if isinstance(node, ast.Name) and node.id in names:
        return True
    if isinstance(node, ast.Subscript):
        node = node.value
    return isinstance(node, ast.Attribute | ast.Name) and qualname(node) == "sys.argv"


def _commands(node: ast.expr) -> bool:
    """A maintainer command name, or a literal tuple/list/set made only of them."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return bool(items) and all(
        isinstance(i, ast.Constant) and i.value in MAINTAINER_COMMANDS for i in items
    )


def maintainer_command_methods(tree: ast.Module, cmdclass: dict[str, str]) -> list[tuple[int, int]]:
    """Line ranges of the methods of setup.py's module-level classes that ``cmdclass``
    registers only under maintainer commands and that nothing else names (a second reference,
    ``cmds["install"] = Upload``, a subclass or a call, may make it run). Class bodies run on
    load and stay out."""
    registered: dict[str, set[str]] = {}
    for command, cls in cmdclass.items():
        registered.setdefault(cls, set()).add(command)
    candidates = {
        s.name: s
        for s in tree.body
        if isinstance(s, ast.ClassDef)
        and registered.get(s.name)
        and registered[s.name] <= MAINTAINER_COMMANDS
    }
    if not candidates:
        return []
    uses = Counter(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in candidates)
    out = [
        (d.lineno, _end(d))
        for name, c in candidates.items()
        if uses[name] == len(registered[name])  # the cmdclass entries themselves
        for d in c.body
        if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    return merge_ranges(out)


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
