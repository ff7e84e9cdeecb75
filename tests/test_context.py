"""The package context keeps only what rules read after indexing (memory on large packages)."""

from __future__ import annotations

import ast

from conftest import sdist
from pkgvet.analysis.builder import build_context
from pkgvet.analysis.context import NODE_CALL_NAMES, keeps_node
from pkgvet.archive import read_archive
from pkgvet.config import Limits

_MODULE = """
import subprocess
helper(1, 2)
log.info("x")
open("out.txt", "w")
subprocess.run(["true"])
getattr(obj, "name")
"""


def _nodes(rel: str) -> dict[str, bool]:
    data = sdist("zzctx", "1.0", {"zzctx/mod.py": _MODULE, "setup.py": _MODULE})
    pkg = build_context(read_archive(data, "zzctx-1.0.tar.gz", Limits()), Limits(), float("inf"))
    f = next(f for f in pkg.files if f.rel == rel)
    return {c.qualname: c.node is not None for c in f.calls}


def test_modules_keep_the_call_nodes_rules_read_and_drop_the_rest() -> None:
    kept = _nodes("zzctx/mod.py")
    assert kept == {
        "helper": False,
        "log.info": False,
        "open": True,
        "subprocess.run": True,
        "getattr": True,
    }


def test_setup_py_keeps_its_whole_tree() -> None:
    assert all(_nodes("setup.py").values())


_DATA_MODULE = """
import base64
DATA = {'1403262': {'en': 'Calgary'}, '1403263': {'en': 'Calgary'}}
ROWS = [{'a': 1}, {'b': 2}]
CODE = base64.b64decode('cHJpbnQoMSk=')
PARTS = ['cHJp', 'bnQoMSk=']
exec(base64.b64decode(''.join(PARTS)))
"""


def test_modules_drop_values_of_names_that_cannot_fold() -> None:
    data = sdist("zzctx", "1.0", {"zzctx/data.py": _DATA_MODULE, "setup.py": _DATA_MODULE})
    pkg = build_context(read_archive(data, "zzctx-1.0.tar.gz", Limits()), Limits(), float("inf"))
    mod = next(f for f in pkg.files if f.rel == "zzctx/data.py")
    kinds = {name: type(v).__name__ for name, v in mod.constants.items()}
    # dict literals and lists of them never fold: their nodes are let go
    assert kinds == {"DATA": "Constant", "ROWS": "Constant", "CODE": "Call", "PARTS": "List"}
    # what folds still folds after the trim, what did not still does not
    assert mod.folder.fold(ast.parse("''.join(PARTS)", mode="eval").body) == "cHJpbnQoMSk="
    assert mod.folder.fold(ast.Name("DATA")) is None
    assert [s.payload for s in mod.exec_sites] == ["print(1)"]
    setup = next(f for f in pkg.files if f.rel == "setup.py")
    assert type(setup.constants["DATA"]).__name__ == "Dict"  # setup.py keeps its whole tree


def test_keeps_node_by_capability_exec_sink_or_name() -> None:
    assert keeps_node("os.system")  # a capability
    assert keeps_node("exec")  # an exec sink
    assert keeps_node("sock.connect") and keeps_node("json.dumps")  # by the last part
    assert not keeps_node("self.render") and not keeps_node("print")
    assert all(keeps_node(f"x.{name}") for name in NODE_CALL_NAMES)


def test_decoded_sources_give_back_their_bytes_but_keep_their_size() -> None:
    elf = b"\x7fELF" + b"\x00" * 60  # an executable behind a .py name: the rules read its bytes
    archive = read_archive(
        sdist(
            "zzctx",
            "1.0",
            {
                "zzctx/mod.py": _MODULE,
                "zzctx/hook.pth": "import os\n",
                "zzctx/native.py": elf,
                "zzctx/data.txt": "text\n",
            },
        ),
        "zzctx-1.0.tar.gz",
        Limits(),
    )
    total = archive.total_bytes
    pkg = build_context(archive, Limits(), float("inf"))
    members = {m.rel: m for m in archive.members}
    assert members["zzctx/mod.py"].data == b""
    assert members["zzctx/mod.py"].size == len(_MODULE.encode())
    assert any(f.rel == "zzctx/mod.py" and "subprocess" in f.text for f in pkg.files)
    assert members["zzctx/hook.pth"].data == b"import os\n"  # `pkgvet diff` reads its lines
    assert members["zzctx/native.py"].data == elf
    assert members["zzctx/data.txt"].data == b"text\n"
    assert archive.total_bytes == total


_OPERATORS = """
x = "a" + f("b") * 2 if y == "c" else -g("d")
total += h("e") << 3
ok = not k("f") or m(b"g") in ("h", n())
z = p(1 << 2 | 3) - q("i") ** 2
"""


def test_operands_of_operators_are_indexed_like_a_full_walk() -> None:
    """The index skips operator nodes and walks binary operations by their two operands:
    every string and call of an expression is still found, in line order."""
    import ast

    from pkgvet.analysis.context import FileContext
    from pkgvet.models import Trigger

    f = FileContext("m.py", "m.py", _OPERATORS, Trigger.IMPORT, Limits())
    tree = ast.parse(_OPERATORS)
    calls = sorted(
        (n.lineno, n.col_offset, ast.unparse(n.func))
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
    )
    assert [(c.line, c.qualname) for c in f.calls] == [(line, name) for line, _col, name in calls]
    strings = [
        (n.value.decode("latin-1") if isinstance(n.value, bytes) else n.value, n.lineno)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str | bytes)
    ]
    assert sorted(f.strings) == sorted(strings)
    assert [line for _s, line in f.strings] == sorted(line for _s, line in strings)


def test_files_with_decoded_payloads_are_freed_without_the_cyclic_collector() -> None:
    """A payload refers to its parent weakly: a released package is freed by reference
    counting alone (the pipeline pauses the collector while it analyses a package)."""
    import base64
    import gc
    import weakref

    payload = base64.b64encode(b"import os\nprint(1)\n").decode()
    src = f"import base64\nexec(base64.b64decode('{payload}'))\n"
    data = sdist("zzpay", "1.0", {"setup.py": src})
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        archive = read_archive(data, "zzpay-1.0.tar.gz", Limits())
        pkg = build_context(archive, Limits(), float("inf"))
        setup = next(f for f in pkg.files if f.rel == "setup.py")
        (child,) = setup.children
        assert child.parent is setup and child.depth == 1
        refs = [weakref.ref(setup), weakref.ref(child)]
        pkg.release()
        del pkg, setup, child
        assert [r() for r in refs] == [None, None]
    finally:
        if was_enabled:
            gc.enable()


def test_a_names_values_are_read_once_per_scope(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Hostile shape: thousands of assignments to one name and thousands of calls with it
    (``u = u + 'x'`` ... ``requests.get(u)`` ...). What the name is made of is computed once per
    scope and name, not once per call: quadratic before (248 s for 5,000 of each; the timing
    is in benchmarks/bench_dataflow.py)."""
    from pkgvet.analysis import context
    from pkgvet.models import Trigger

    seen: list[int] = []
    real = context._call_words

    def counting(parts):  # type: ignore[no-untyped-def]
        parts = tuple(parts)
        seen.append(len(parts))
        return real(parts)

    monkeypatch.setattr(context, "_call_words", counting)
    n = 300
    src = "import requests\nu = 'a'\n" + "u = u + 'x'\n" * n + "requests.get(u)\n" * n
    fc = context.FileContext("x.py", "x.py", src, Trigger.RUNTIME, Limits())
    assert len(fc.calls) == n
    assert seen == [n + 1]  # one flow: the name's n + 1 values, read once
