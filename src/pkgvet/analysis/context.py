"""The package context: every fact rules and features read, computed in one pass per file.

Each Python file is parsed once (``ast.parse``; a tokenizer fallback for Python 2 sources and
anything else the parser rejects) and walked once. The walk records imports with their aliases,
calls with qualified names (``o.system`` after ``import os as o`` is ``os.system``;
``__import__("os").system`` and ``getattr(os, "sys" + "tem")`` too), string literals, simple
module-level constants and attribute references. Payloads passed to ``exec``/``eval``/``compile``
and long encoded literals are decoded statically (see :mod:`pkgvet.analysis.fold`); decoded
Python becomes a child context analysed the same way, reported at the original location.
"""

from __future__ import annotations

import ast
import io
import math
import re
import time
import tokenize
import warnings
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from pkgvet.analysis.apis import Cap, capability_of, program_name, reference_capability
from pkgvet.analysis.fold import DECODER_NAMES, Folder, Value
from pkgvet.analysis.keywords import KeywordHits, find_all
from pkgvet.analysis.reach import ImportSite, argv_guarded, load_ranges, merge_ranges
from pkgvet.archive import Archive, Member
from pkgvet.config import Limits
from pkgvet.errors import ScanBudgetExceeded
from pkgvet.models import PackageInfo, Skip, Trigger

PY_SUFFIXES = (".py", ".pyw", ".pyi")
SCRIPT_SUFFIXES = (".sh", ".bash", ".bat", ".cmd", ".ps1", ".vbs", ".js")
EXEC_SINKS = frozenset(
    {
        "exec",
        "eval",
        "compile",
        "execfile",
        "builtins.exec",
        "builtins.eval",
        "__builtin__.exec",
        "__builtin__.eval",
        "builtins.compile",
    }
)
_BLOB_RE = re.compile(r"^[A-Za-z0-9+/=_\-\s]{120,}$|^(?:[0-9a-fA-F]{2}){60,}$")
_ENCODED_RE = re.compile(r"[A-Za-z0-9+/=_\-\r\n]+")

_TRANSFER_TOOLS = frozenset({"curl", "curl.exe", "wget", "wget.exe"})
_NAME_DECODERS = DECODER_NAMES - {"marshal.loads"}
_SENDING_CAPS = frozenset({Cap.NETWORK, Cap.SOCKET, Cap.DNS, Cap.DOWNLOAD})
_ADDRESS = frozenset({"url", "host", "address", "hostname", "uri", "endpoint"})
_ADDRESS_TEXT = re.compile(r"^[a-z][\w+.-]*://|^[\w-]+(?:\.[\w-]+)+(?::\d+)?(?:/|$)", re.I)


def runs_transfer_tool(node: ast.Call | None) -> bool:
    """The process started is curl or wget (``["curl", "-F", ...]``, ``"curl -d @f ..."``,
    ``f"wget {url}"``): the code can send data out as surely as with an HTTP library."""
    if node is None or not node.args:
        return False
    first: ast.expr = node.args[0]
    if isinstance(first, ast.List | ast.Tuple) and first.elts:
        first = first.elts[0]
    elif isinstance(first, ast.JoinedStr) and first.values:
        first = first.values[0]
    elif isinstance(first, ast.BinOp):  # "curl " + url
        while isinstance(first, ast.BinOp):
            first = first.left
    return (
        isinstance(first, ast.Constant)
        and isinstance(first.value, str)
        and program_name(first.value) in _TRANSFER_TOOLS
    )


# Loops over these (``for k, v in os.environ.items()``) or over ``os.environ`` itself read
# every variable, as ``dict(os.environ)`` does.
_ENVIRON_VIEWS = frozenset({"os.environ.items", "os.environ.keys", "os.environ.values"})


def entropy(s: str) -> float:
    """Shannon entropy of ``s`` in bits per character; memoised for short strings, which
    repeat within a package and across a campaign's clones (long ones are not kept alive)."""
    return _short_entropy(s) if len(s) <= 256 else _entropy(s)


def _entropy(s: str) -> float:
    counts = Counter(s)
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_short_entropy = lru_cache(maxsize=1 << 14)(_entropy)
_MAX_BLOBS_PER_FILE = 16
_MAX_EMBEDDED = 256 * 1024
_BUILTINS_MODULES = frozenset({"__builtins__", "builtins", "__builtin__"})
_DECODER_TEXT = re.compile(
    r"b64decode|b32decode|b16decode|decompress|unhexlify|fromhex|"
    r"marshal\.loads|\.decode\(|decrypt|\[::-1\]|chr\("
)
_CODE_HINT = re.compile(r"(?:^|[;\n])\s*(?:import \w|from \w[\w.]* import )|\bexec\(|\beval\(")
_HIGH_ENTROPY_MIN = 200


# Fields that never hold child nodes (names, flags, contexts, operators) are not walked.
# Operators (``BinOp.op``, ``Compare.ops``...) are childless singletons: obfuscated sources
# hold millions of them (``1 << 3 ...`` chains), each of which would cost a visit.
_NO_CHILD_FIELDS = frozenset(
    {
        "ctx",
        "op",
        "ops",
        "type_comment",
        "kind",
        "kwd_attrs",
        "id",
        "attr",
        "arg",
        "module",
        "level",
        "is_async",
        "conversion",
        "simple",
        "name",
        "names",
        "rest",
        "tag",
    }
)
# None has no children: lists of child nodes may hold None (``Dict.keys`` for ``**x``,
# ``arguments.kw_defaults``), and the walk below pushes lists whole rather than filtering them.
_FIELDS: dict[type, tuple[str, ...]] = {type(None): ()}


def _child_fields(t: type[ast.AST]) -> tuple[str, ...]:
    """Fields of an AST node type that can hold child nodes (cached per type)."""
    fields = _FIELDS.get(t)
    if fields is None:
        fields = tuple(f for f in t._fields if f not in _NO_CHILD_FIELDS)
        _FIELDS[t] = fields
    return fields


# Calls besides those with an API capability (apis.capability_of) whose argument nodes
# rules read after indexing, by the last part of the qualified name: opening files, computed
# imports and attribute lookups, unmarshalling, socket connects and duplication, DNS lookups,
# and what serialises or encodes data to send. A rule that reads ``CallSite.node`` of any other
# call must add its name here (outside setup.py those nodes are dropped once indexed).
NODE_CALL_NAMES = frozenset(
    {
        "open",
        "getattr",
        "__import__",
        "import_module",
        "load",
        "loads",
        "dup2",
        "connect",
        "create_connection",
        "gethostbyname",
        "gethostbyname_ex",
        "getaddrinfo",
        "resolve",
        "query",
        "dumps",
        "str",
        "repr",
        "dict",
        "b64encode",
        "urlencode",
        "compress",
        "NamedTemporaryFile",
        "write_text",  # pathlib writes: PV206 reads the path written
        "write_bytes",
    }
)


def keeps_node(qualname: str) -> bool:
    """True when rules may read the argument nodes of a call to ``qualname`` (see
    :data:`NODE_CALL_NAMES`); exec sinks and calls with a capability always qualify."""
    return (
        qualname in EXEC_SINKS
        or capability_of(qualname) is not None
        or qualname.rpartition(".")[2] in NODE_CALL_NAMES
    )


# Kinds of module-level values the folder (:mod:`pkgvet.analysis.fold`) can fold; a name
# assigned anything else (a dict, a set, a lambda, a comparison) never folds to a value.
_FOLDABLE = frozenset(
    {
        ast.Constant,
        ast.Name,
        ast.JoinedStr,
        ast.List,
        ast.Tuple,
        ast.BinOp,
        ast.Subscript,
        ast.UnaryOp,
        ast.Call,
        ast.ListComp,
        ast.GeneratorExp,
    }
)
_UNFOLDABLE = ast.Constant(None)


def _drop_unfoldable(constants: dict[str, ast.expr]) -> None:
    """Replace, in place (a folder may hold the dict), values that cannot fold with a
    placeholder that folds to nothing either: so the rest of a trimmed tree can be freed.
    Generated data modules assign one huge dict literal (phonenumbers' geocoding data: 20 MB
    of them kept 930 MB of AST nodes alive). A list or tuple folds only when every element
    does: one holding a dict is dropped too."""
    for name, value in constants.items():
        kind = value.__class__
        if kind not in _FOLDABLE or (
            (kind is ast.List or kind is ast.Tuple)
            and any(e.__class__ not in _FOLDABLE for e in value.elts)  # type: ignore[attr-defined]
        ):
            constants[name] = _UNFOLDABLE


@dataclass(slots=True)
class CallSite:
    """One call, with its qualified name and its AST node: None where the file did not
    parse, and outside setup.py for calls :func:`keeps_node` does not name (dropped after
    indexing, so the rest of the tree can be freed)."""

    qualname: str
    line: int
    node: ast.Call | None = None


@dataclass(slots=True)
class ExecSite:
    """A call to exec/eval/compile and what static decoding made of its argument."""

    qualname: str
    line: int
    payload: str | None  # the decoded text, when the argument folds to a constant
    via_decoder: bool  # the argument passes through a decoding function
    arg_calls: frozenset[str]  # qualified names called inside the argument
    literal: bool  # the argument is a plain string literal
    # for an argument that is a bare name: what is called in the values assigned to that name
    # anywhere in the file (``code = requests.get(u).text`` ... ``exec(code)``)
    source_calls: frozenset[str] = frozenset()


def _decode_source(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        enc, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(enc, "replace")
    except (SyntaxError, LookupError, ValueError):  # ValueError: codecs without "replace"
        return data.decode("latin-1")


def _literal_string(token: str) -> str | None:
    """The value of a string token, tolerating Python 2 prefixes (``ur''``)."""
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        m = re.match(r"^[A-Za-z]*('''|\"\"\"|'|\")(.*)\1$", token, re.S)
        return m.group(2) if m else None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


class FileContext:
    """Facts about one Python source (a file, a .pth's code lines, or a decoded payload)."""

    def __init__(
        self,
        path: str,
        rel: str,
        text: str,
        trigger: Trigger,
        limits: Limits,
        depth: int = 0,
        origin_line: int = 0,
        parent: FileContext | None = None,
        deadline: float = float("inf"),
    ) -> None:
        self.path = path
        self.rel = rel
        self.text = text
        self.trigger = trigger
        self.limits = limits
        self.depth = depth
        self.origin_line = origin_line
        # Held weakly: the parent holds its children, and a strong reference back would make
        # every file with a decoded payload a reference cycle, kept (with its index and kept
        # nodes) until the cyclic collector runs instead of freed when the package is done.
        self._parent = None if parent is None else weakref.ref(parent)
        self.deadline = deadline
        self.tree: ast.Module | None = None
        self.parse_error: str | None = None
        self.aliases: dict[str, str] = {}
        self.imports: set[str] = set()
        self.calls: list[CallSite] = []
        self.strings: list[tuple[str, int]] = []
        self.refs: dict[str, int] = {}  # attribute reference -> first line
        # code that does not run on load: function bodies nothing on load calls, main blocks
        self.lazy_ranges: list[tuple[int, int]] = []  # sorted, disjoint
        self._lazy_starts: list[int] = []
        # code only a maintainer command reaches (``if sys.argv[-1] == "publish":``): lazy,
        # and not install-time even in setup.py (sorted, disjoint)
        self.dormant_ranges: list[tuple[int, int]] = []
        self._dormant_starts: list[int] = []
        self.import_sites: list[ImportSite] = []  # every import statement, for reachability
        self.reached: Trigger | None = None  # imported at install/import time by such a module
        self.embedded: list[tuple[str, int]] = []  # code held in string arguments
        self.constants: dict[str, ast.expr] = {}
        self.exec_sites: list[ExecSite] = []
        self.children: list[FileContext] = []
        self.encoded = False  # a payload recovered by decoding (not plain embedded code)
        self.function_defs: set[str] = set()
        self.caps: dict[Cap, int] = {}  # capability -> first line
        self.environ_loop: int | None = None  # first line of a loop over the whole os.environ
        # network calls whose address is decoded from a literal: (line, what it decodes to)
        self.hidden_endpoints: list[tuple[int, str]] = []
        # names assigned a path named like a script or program (``p = tmp + "/x.pyw"``)
        self.program_paths: set[str] = set()
        self.socket_command: int | None = None  # first command run from what a socket received
        self._index()

    @property
    def parent(self) -> FileContext | None:
        """The source this payload was decoded or extracted from (None for a file)."""
        return None if self._parent is None else self._parent()

    # -- building -------------------------------------------------------------------------
    def _index(self) -> None:
        try:
            with warnings.catch_warnings():  # the scanned code's SyntaxWarnings are not ours
                warnings.simplefilter("ignore")
                self.tree = ast.parse(self.text, filename=self.rel)
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
            self.parse_error = f"{type(exc).__name__}: {getattr(exc, 'msg', None) or exc}"
            self._index_tokens()
        else:
            try:
                self._index_ast(self.tree)
            except RecursionError:
                self.parse_error = "RecursionError while indexing (deeply nested code)"
        # Only setup.py's tree is read after indexing (its setup() call and cmdclass); rules
        # work off the index, and read argument nodes of the calls keeps_node() names only.
        # Dropping the other roots and call nodes lets the rest of the tree be freed: a package
        # with 2,000 modules peaked at 3.5 GB keeping every tree, 1.9 GB keeping every call.
        trim = self.rel != "setup.py"
        if trim:
            self.tree = None
            _drop_unfoldable(self.constants)
        for c in self.calls:
            cap = capability_of(c.qualname)
            if cap is not None:
                if cap not in self.caps or c.line < self.caps[cap]:
                    self.caps[cap] = c.line
                if (
                    cap is Cap.PROCESS
                    and runs_transfer_tool(c.node)
                    and (Cap.NETWORK not in self.caps or c.line < self.caps[Cap.NETWORK])
                ):
                    self.caps[Cap.NETWORK] = c.line
            elif trim and not keeps_node(c.qualname):
                c.node = None
        for r, line in self.refs.items():
            rcap = reference_capability(r)
            if rcap is not None and (rcap not in self.caps or line < self.caps[rcap]):
                self.caps[rcap] = line
        if self.depth < self.limits.max_decode_depth:
            self._decode_payloads()

    def _index_ast(self, tree: ast.Module) -> None:
        calls: list[ast.Call] = []
        assigns: list[ast.Assign] = []
        attrs: list[ast.Attribute] = []
        defs: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda] = []
        loops: list[ast.For | ast.AsyncFor | ast.comprehension] = []
        # The hottest loop of a scan (every node of every file): node types and bound methods
        # are locals, child lists are pushed whole (None entries cost one empty iteration at
        # pop instead of a generator per list), and the per-type field lookup is inlined.
        # The visiting order is exactly that of the plain walk, which the sorts below and the
        # alias ``setdefault``s rely on.
        stack: list[ast.AST | None] = [tree]
        pop, push, extend = stack.pop, stack.append, stack.extend
        add_string = self.strings.append
        fields_of = _FIELDS.get
        Constant, Name, Expr, Call, Attribute = (
            ast.Constant,
            ast.Name,
            ast.Expr,
            ast.Call,
            ast.Attribute,
        )
        Import, ImportFrom, Assign, AST = ast.Import, ast.ImportFrom, ast.Assign, ast.AST
        BinOp = ast.BinOp
        FunctionDef, AsyncFunctionDef, Lambda = ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda
        For, AsyncFor, comprehension = ast.For, ast.AsyncFor, ast.comprehension
        while stack:
            node = pop()
            t = node.__class__
            if t is Constant:
                v = node.value  # type: ignore[union-attr]
                vt = v.__class__  # never a subclass: the parser makes plain str and bytes
                if vt is str:
                    if v:
                        add_string((v, node.lineno))  # type: ignore[union-attr]
                elif vt is bytes and v:
                    add_string((v.decode("latin-1"), node.lineno))  # type: ignore[union-attr]
                continue
            if t is Name:
                continue
            if t is BinOp:  # a third of the nodes of obfuscated sources: skip the field loop
                push(node.left)  # type: ignore[union-attr]
                push(node.right)  # type: ignore[union-attr]
                continue
            if t is Call:
                calls.append(node)  # type: ignore[arg-type]
            elif t is Attribute:
                attrs.append(node)  # type: ignore[arg-type]
            elif t is Expr:
                if node.value.__class__ is Constant:  # type: ignore[union-attr]
                    continue  # a docstring or bare string: does nothing, holds prose
            elif t is Import:
                self._add_import(node)  # type: ignore[arg-type]
                continue
            elif t is ImportFrom:
                self._add_import_from(node)  # type: ignore[arg-type]
                continue
            elif t is Assign:
                assigns.append(node)  # type: ignore[arg-type]
            elif t is FunctionDef or t is AsyncFunctionDef or t is Lambda:
                defs.append(node)  # type: ignore[arg-type]
            elif t is For or t is comprehension or t is AsyncFor:
                loops.append(node)  # type: ignore[arg-type]
            fields = fields_of(t)
            if fields is None:
                fields = _child_fields(t)  # type: ignore[arg-type]  # NoneType is in _FIELDS
            for name in fields:
                v = getattr(node, name, None)
                if v.__class__ is list:
                    extend(v)
                elif isinstance(v, AST):
                    push(v)
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.function_defs.add(stmt.name)
                if stmt.name in ("exec", "eval", "compile", "open"):
                    self.aliases[stmt.name] = f"<local>.{stmt.name}"
            elif (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                name = stmt.targets[0].id
                if name in self.constants:
                    self.constants[name] = ast.Constant(None)  # assigned twice: not a constant
                else:
                    self.constants[name] = stmt.value
        self._eval_aliases(assigns)
        # a value can only hold a program's file name if some string of the file is one: most
        # files have none, and walking every assigned value is not free
        programs = any(program_file_name(text) is not None for text, _line in self.strings)
        # Aliases through assignment: `s = subprocess`, `x = __import__("os")`, `p = Popen(...)`
        for a in assigns:
            if len(a.targets) == 1 and isinstance(a.targets[0], ast.Name):
                v = a.value
                if programs and holds_program_file(v):
                    self.program_paths.add(a.targets[0].id)
                if isinstance(v, ast.Name | ast.Attribute):
                    q = self.qualname(v)
                    if q and q != a.targets[0].id:
                        self.aliases.setdefault(a.targets[0].id, q)
                elif isinstance(v, ast.Call):
                    q = self.qualname(v.func)
                    if q in ("__import__", "importlib.import_module"):
                        mod = self.folder.fold(v.args[0]) if v.args else None
                        if isinstance(mod, str):
                            self.aliases.setdefault(a.targets[0].id, mod)
                    elif q:
                        self.aliases.setdefault(a.targets[0].id, q + "()")
        calls.sort(key=lambda c: (c.lineno, c.col_offset))
        for call in calls:
            self.calls.append(CallSite(self.qualname(call.func), call.lineno, call))
        self.strings.sort(key=lambda sl: sl[1])
        for attr in attrs:
            root = attr.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.aliases:
                q = self.qualname(attr)
                if q not in self.refs or attr.lineno < self.refs[q]:
                    self.refs[q] = attr.lineno
        for loop in loops:
            it = loop.iter
            if isinstance(it, ast.Call) and not it.args and isinstance(it.func, ast.Attribute):
                whole = self.qualname(it.func) in _ENVIRON_VIEWS
            else:
                whole = (
                    isinstance(it, ast.Attribute | ast.Name) and self.qualname(it) == "os.environ"
                )
            if whole and (self.environ_loop is None or it.lineno < self.environ_loop):
                self.environ_loop = it.lineno
        self.lazy_ranges, dormant = load_ranges(
            tree,
            defs,
            calls,
            self.trigger is Trigger.INSTALL,
            # no file names sys.argv without the word: most skip the walk for guards
            argv_guarded(tree, self.qualname) if "argv" in self.text else [],
        )
        self._lazy_starts = [a for a, _b in self.lazy_ranges]
        self.add_dormant(dormant)
        self._index_embedded_code(calls)
        scopes = _Scopes(tree, defs, self._called)
        self._index_exec_sites(assigns, scopes)
        self._index_hidden_endpoints(scopes)
        self._index_socket_commands(scopes)
        self._check_deadline()

    def _add_import(self, node: ast.Import) -> None:
        for a in node.names:
            self.import_sites.append((node.lineno, 0, a.name, ()))
            self.imports.add(a.name)
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                root = a.name.split(".", 1)[0]
                self.aliases.setdefault(root, root)

    def _add_import_from(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        self.import_sites.append((node.lineno, node.level, mod, tuple(a.name for a in node.names)))
        if mod:
            self.imports.add(mod)
        for a in node.names:
            if a.name != "*":
                full = f"{mod}.{a.name}" if mod else a.name
                self.aliases[a.asname or a.name] = full
                self.imports.add(full)

    def _index_embedded_code(self, calls: list[ast.Call]) -> None:
        """String arguments that are Python code (written to a file, passed to ``python -c``)
        are analysed as code of this file, as are module-level strings handed over by name
        (``CODE = "..."`` then ``fh.write(CODE)``): those count from the call's line."""
        Constant, List, Tuple, Name = ast.Constant, ast.List, ast.Tuple, ast.Name
        constants = self.constants
        for call in calls:
            for a in call.args:  # a constant, or a list or tuple of them (argv lists)
                t = a.__class__
                at: int | None = None
                if t is Constant:
                    nodes: list[ast.expr] = [a]
                elif t is List or t is Tuple:
                    nodes = a.elts  # type: ignore[attr-defined]
                elif t is Name and a.id in constants:  # type: ignore[attr-defined]
                    nodes = [constants[a.id]]  # type: ignore[attr-defined]
                    at = call.lineno
                else:
                    continue
                for node in nodes:
                    if node.__class__ is not Constant:
                        continue
                    v = node.value
                    text = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                    if (
                        isinstance(text, str)
                        and 24 <= len(text) <= _MAX_EMBEDDED
                        and ("import" in text or "exec(" in text or "eval(" in text)
                        and _CODE_HINT.search(text)
                    ):
                        self.embedded.append((text, node.lineno if at is None else at))

    def add_dormant(self, ranges: list[tuple[int, int]]) -> None:
        """Mark ``ranges`` as code only a maintainer command runs (lazy too)."""
        if not ranges:
            return
        self.dormant_ranges = merge_ranges([*self.dormant_ranges, *ranges])
        self._dormant_starts = [a for a, _b in self.dormant_ranges]
        self.lazy_ranges = merge_ranges([*self.lazy_ranges, *ranges])
        self._lazy_starts = [a for a, _b in self.lazy_ranges]

    def dormant(self, line: int) -> bool:
        """True when ``line`` runs only under a maintainer command (see :func:`argv_guarded`)."""
        return _covered(self.dormant_ranges, self._dormant_starts, line)

    def runs_on_load(self, line: int) -> bool:
        """True when ``line`` runs as soon as the module runs: module-level code and the bodies
        of functions that such code calls (see :mod:`pkgvet.analysis.reach`)."""
        if self.depth:
            return True
        return not _covered(self.lazy_ranges, self._lazy_starts, line)

    def _eval_aliases(self, assigns: list[ast.Assign]) -> None:
        """Names bound by evaluating a name, in source order so that chains resolve:
        ``e = eval("eval")``, ``c = e("\\x63ompile")``, ``m = eval("__import__('codecs')")``
        make ``e`` eval, ``c`` compile and ``m`` the module codecs."""
        for a in sorted(assigns, key=lambda a: (a.lineno, a.col_offset)):
            v = a.value
            if (
                len(a.targets) == 1
                and isinstance(a.targets[0], ast.Name)
                and isinstance(v, ast.Call)
                and v.args
                and self.qualname(v.func) in ("eval", "builtins.eval")
            ):
                arg = v.args[0]
                if (
                    isinstance(arg, ast.Call)
                    and arg.args
                    and self.qualname(arg.func) in ("compile", "builtins.compile")
                ):
                    arg = arg.args[0]  # eval(compile("exec", "<s>", "eval"))
                text = self.folder.fold(arg)
                target = evaluated_name(text) if isinstance(text, str) else None
                if target:
                    self.aliases.setdefault(a.targets[0].id, target)

    def _index_exec_sites(self, assigns: list[ast.Assign], scopes: _Scopes) -> None:
        folder = self.folder
        sources: dict[str, frozenset[str]] | None = None
        for c in self.calls:
            if c.qualname not in EXEC_SINKS or c.node is None or not c.node.args:
                continue
            arg = c.node.args[0]
            source_calls: frozenset[str] = frozenset()
            # what the argument is made of: itself, and what its name is given in its scope
            inner = self._called([arg])
            own = _Made(inner, _reverses(arg), *_call_words([arg]))
            flow = own
            if isinstance(arg, ast.Name):
                if sources is None:
                    sources = self._assigned_calls(assigns)
                source_calls = sources.get(arg.id, frozenset())
                flow = scopes.flow(c.node, arg.id)
            made_of = inner | flow.called
            words = own.words | flow.words
            value = folder.fold(arg)
            payload = _to_text(value)
            literal = isinstance(arg, ast.Constant)
            via = (
                folder.decoded
                or bool(inner & DECODER_NAMES)
                # through the name: not marshal.loads, which import hooks use on .pyc caches
                or bool((flow.called - inner) & _NAME_DECODERS)
                or own.reverses
                or flow.reverses
                or any(n.endswith((".decrypt", "Fernet")) for n in made_of)
                or _hand_decoder(words, own.comprehension or flow.comprehension)
            )
            self.exec_sites.append(
                ExecSite(c.qualname, c.line, payload, via, inner, literal, source_calls)
            )

    def _index_hidden_endpoints(self, scopes: _Scopes) -> None:
        """Network, socket and DNS calls whose address is decoded from a literal
        (``requests.post(b64decode("aHR0c...").decode(), ...)``, or through a name assigned
        so in the same scope): an endpoint hidden from readers and from indicator lists."""
        for c in self.calls:
            node = c.node
            if node is None or capability_of(c.qualname) not in _SENDING_CAPS:
                continue
            self._check_deadline()
            for arg in (*node.args[:1], *(k.value for k in node.keywords if k.arg in _ADDRESS)):
                flow = scopes.flow(node, arg.id) if isinstance(arg, ast.Name) else None
                decoders = self._called([arg]) & DECODER_NAMES
                if flow is not None:
                    decoders |= flow.called & DECODER_NAMES
                if not decoders and not (_reverses(arg) or (flow is not None and flow.reverses)):
                    continue
                shown = self._address([arg])
                if not shown and flow is not None:
                    if flow.address is None:  # folded once per scope and name
                        flow.address = self._address(flow.values)
                    shown = flow.address
                if shown or decoders:
                    self.hidden_endpoints.append((c.line, shown or ", ".join(sorted(decoders))))
                    break

    def _index_socket_commands(self, scopes: _Scopes) -> None:
        """The first process or exec call, or write to a process's stdin, given what a socket
        received: ``cmd = conn.recv(1024)`` ... ``subprocess.Popen(cmd.decode(), shell=True)``
        in one scope (see :meth:`_Scopes.tainted`). A remote shell's loop, where a socket server
        that runs a fixed program does not qualify."""
        if not any(c.qualname.endswith(_RECEIVES) for c in self.calls):
            return
        for c in self.calls:
            node = c.node
            if node is None or not (
                capability_of(c.qualname) in (Cap.PROCESS, Cap.EXEC)
                or c.qualname.endswith(".stdin.write")
            ):
                continue
            tainted = scopes.tainted(c.line, self._receives)
            for arg in (*node.args, *(k.value for k in node.keywords)):
                if any(
                    (isinstance(x, ast.Name) and x.id in tainted) or self._receives(x)
                    for x in ast.walk(arg)
                ):
                    self.socket_command = c.line
                    return

    def _receives(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and self.qualname(node.func).endswith(_RECEIVES)

    def _address(self, nodes: Iterable[ast.expr]) -> str:
        """The first of ``nodes`` that folds to a URL or host name, or ""."""
        for p in nodes:
            value = _to_text(self.folder.fold(p))
            if value and _ADDRESS_TEXT.search(value):
                return value
        return ""

    def _called(self, nodes: Iterable[ast.expr]) -> frozenset[str]:
        """The qualified names called anywhere inside ``nodes``."""
        return frozenset(
            self.qualname(n.func) for p in nodes for n in ast.walk(p) if isinstance(n, ast.Call)
        )

    def _assigned_calls(self, assigns: list[ast.Assign]) -> dict[str, frozenset[str]]:
        """For each name assigned in the file (any scope): what its values call."""
        out: dict[str, set[str]] = {}
        for a in assigns:
            if len(a.targets) == 1 and isinstance(a.targets[0], ast.Name):
                out.setdefault(a.targets[0].id, set()).update(self._called([a.value]))
        return {k: frozenset(v) for k, v in out.items()}

    def _index_tokens(self) -> None:
        """Fallback for sources ``ast.parse`` rejects (Python 2, broken or hostile files)."""
        for m in re.finditer(
            r"^[ \t]*import[ \t]+([\w.]+)(?:[ \t]+as[ \t]+(\w+))?|^[ \t]*from[ \t]+([\w.]+)"
            r"[ \t]+import[ \t]+([\w, \t]+)",
            self.text,
            re.M,
        ):
            if m.group(1):
                self.imports.add(m.group(1))
                self.aliases[m.group(2) or m.group(1).split(".")[0]] = (
                    m.group(1) if m.group(2) else m.group(1).split(".")[0]
                )
            else:
                self.imports.add(m.group(3))
                for name in m.group(4).replace("\t", " ").split(","):
                    parts = name.split()
                    if parts:
                        self.aliases[parts[-1]] = f"{m.group(3)}.{parts[0]}"
        chain: list[str] = []
        chain_line = 0
        prev_dot = False
        try:
            for tok in tokenize.generate_tokens(io.StringIO(self.text).readline):
                if tok.type == tokenize.STRING:
                    s = _literal_string(tok.string)
                    if s:
                        self.strings.append((s, tok.start[0]))
                    chain = []
                elif tok.type == tokenize.NAME:
                    if prev_dot and chain:
                        chain.append(tok.string)
                    else:
                        chain = [tok.string]
                        chain_line = tok.start[0]
                    prev_dot = False
                elif tok.type == tokenize.OP and tok.string == "." and chain:
                    prev_dot = True
                elif tok.type == tokenize.OP and tok.string == "(" and chain:
                    head = self.aliases.get(chain[0], chain[0])
                    self.calls.append(CallSite(".".join([head, *chain[1:]]), chain_line))
                    chain = []
                    prev_dot = False
                else:
                    chain = []
                    prev_dot = False
        except (tokenize.TokenError, IndentationError, SyntaxError, ValueError):
            pass
        for c in self.calls:
            if c.qualname in EXEC_SINKS:
                text = self.line_text(c.line)
                via = bool(_DECODER_TEXT.search(text))
                self.exec_sites.append(ExecSite(c.qualname, c.line, None, via, frozenset(), False))

    def _check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise ScanBudgetExceeded("time budget exceeded")

    # -- resolving -----------------------------------------------------------------------
    @cached_property
    def folder(self) -> Folder:
        return Folder(
            self.qualname,
            self.constants,
            limit=self.limits.max_decoded_bytes,
            deadline=self.deadline,
        )

    def qualname(self, node: ast.expr) -> str:
        """The dotted name a callee resolves to, or "" when it cannot be known statically."""
        if node.__class__ is ast.Name:  # most callees: a plain name, maybe an alias
            return self.aliases.get(node.id, node.id)
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            head = self.aliases.get(node.id, node.id)
            if head in _BUILTINS_MODULES and parts:
                head = parts.pop()  # builtins.exec is exec
        elif isinstance(node, ast.Call):
            head = self._call_result_name(node)
        else:
            return ""
        if not head:
            return ""
        parts.append(head)
        return ".".join(reversed(parts))

    def _call_result_name(self, call: ast.Call) -> str:
        func = self.qualname(call.func)
        if func in ("__import__", "importlib.import_module") and call.args:
            mod = self.folder.fold(call.args[0])
            return mod if isinstance(mod, str) else ""
        if func == "getattr" and len(call.args) >= 2:
            obj = call.args[0]
            base = self.qualname(obj) if isinstance(obj, ast.expr) else ""
            name = self.folder.fold(call.args[1])
            if isinstance(name, str) and base in _BUILTINS_MODULES:
                return name
            if isinstance(name, str) and base:
                return f"{base}.{name}"
            if isinstance(name, str) and name in ("exec", "eval", "system", "popen"):
                return name
            return ""
        return f"{func}()" if func else ""

    # -- decoding ------------------------------------------------------------------------
    def _decode_payloads(self) -> None:
        seen: set[str] = set()
        for site in self.exec_sites:
            if site.payload and site.payload not in seen:
                seen.add(site.payload)
                self._add_child(site.payload, site.line, encoded=site.via_decoder)
        for code, line in self.embedded:
            if code not in seen:
                seen.add(code)
                self._add_child(code, line, encoded=False)
        blobs = 0
        for s, line in self.strings:
            if len(s) < 120 or s in seen or not _BLOB_RE.match(s[:4096]):
                continue
            blobs += 1
            if blobs > _MAX_BLOBS_PER_FILE:
                break
            decoded = decode_blob(s, self.limits.max_decoded_bytes)
            if decoded and decoded not in seen and _maybe_python(decoded):
                seen.add(decoded)
                self._add_child(decoded, line)

    def _add_child(self, text: str, line: int, encoded: bool = True) -> None:
        self._check_deadline()
        child = FileContext(
            self.path,
            self.rel,
            text,
            self.trigger,
            self.limits,
            self.depth + 1,
            origin_line=line,
            parent=self,
            deadline=self.deadline,
        )
        child.encoded = encoded
        if child.calls or child.imports:
            self.children.append(child)
        else:
            child.release()  # discarded: let reference counting free it now

    def release(self) -> None:
        """Forget the memoised :attr:`folder` (rebuilt on demand; it keeps no state between
        folds). The folder refers back to this context through its ``qualname`` resolver: a
        reference cycle that keeps the whole parsed tree alive until the cyclic garbage
        collector runs, which the pipeline pauses while it analyses a package. Without the
        cycle, reference counting frees the tree as soon as the context is dropped."""
        self.__dict__.pop("folder", None)

    # -- queries for rules ----------------------------------------------------------------
    def walk(self) -> Iterator[FileContext]:
        """This context and every decoded payload below it."""
        yield self
        for c in self.children:
            yield from c.walk()

    def report_line(self, line: int) -> int:
        """The line in the real file where something at ``line`` of this context came from."""
        ctx: FileContext = self
        while ctx.parent is not None:
            line = ctx.origin_line
            ctx = ctx.parent
        return line

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    @cached_property
    def run_lines(self) -> frozenset[int]:
        """Lines of calls that start a process or change a file's mode (read once parsed)."""
        run = (Cap.PROCESS, Cap.CHMOD)
        return frozenset(c.line for c in self.calls if capability_of(c.qualname) in run)

    def line_text(self, line: int) -> str:
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1].strip()
        return ""

    def calls_matching(self, *names: str) -> Iterator[CallSite]:
        """Calls whose qualified name equals one of ``names`` or starts with one ending in '.'."""
        exact = {n for n in names if not n.endswith(".")}
        prefixes = tuple(n for n in names if n.endswith("."))
        for c in self.calls:
            if c.qualname in exact or (prefixes and c.qualname.startswith(prefixes)):
                yield c

    def const_args(self, call: CallSite) -> list[Value]:
        """Folded values of a call's positional and keyword arguments (None where unknown)."""
        if call.node is None:
            return []
        nodes = [*call.node.args, *(k.value for k in call.node.keywords)]
        return [self.folder.fold(n) for n in nodes]

    @cached_property
    def string_blob(self) -> tuple[str, list[int], list[int]]:
        """String literals joined by newlines, with start offsets and lines, for regexes
        (long encoded blobs left out)."""
        offsets: list[int] = []
        lines: list[int] = []
        parts: list[str] = []
        pos = 0
        for s, line in self.strings:
            if len(s) > 512 and _ENCODED_RE.fullmatch(s):
                continue  # encoded blobs hold no readable indicators (decoded ones are children)
            offsets.append(pos)
            lines.append(line)
            parts.append(s)
            pos += len(s) + 1
        return "\n".join(parts), offsets, lines

    @cached_property
    def string_blob_lower(self) -> str:
        return self.string_blob[0].lower()

    @cached_property
    def string_blob_hits(self) -> KeywordHits | None:
        """Where every registered indicator keyword occurs in :attr:`string_blob_lower`,
        found in one pass for all of them; None where :func:`~pkgvet.analysis.keywords.find_all`
        cannot list them (indicators then search the blob keyword by keyword)."""
        return find_all(self.string_blob_lower)


def _to_text(value: Value) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


@dataclass(slots=True)
class _Made:
    """What expressions are made of: the names they call, whether they reverse a sequence,
    the short names of their calls and whether they hold a comprehension (for
    :func:`_hand_decoder`); for a name's values in one scope, also the first that folds to an
    address (None until asked)."""

    called: frozenset[str]
    reverses: bool
    words: frozenset[str]
    comprehension: bool
    values: tuple[ast.expr, ...] = ()
    address: str | None = None


class _Scopes:
    """What a name is assigned in the function (or module body) around a call, nested
    functions and classes left out: the data flow of ``x = decode(...)``, ``x += chr(...)``,
    then ``exec(x)``. Built lazily, and once per scope and name however many calls use it
    (a hostile file of thousands of assignments and calls of one name stays linear)."""

    def __init__(
        self,
        tree: ast.Module,
        defs: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda],
        called: Callable[[Iterable[ast.expr]], frozenset[str]],
    ) -> None:
        self.tree = tree
        self.defs = [d for d in defs if not isinstance(d, ast.Lambda)]
        self._called = called
        self._innermost: list[int] | None = None  # line -> 1 + index in defs (0: module)
        self._assigned: dict[int, dict[str, list[ast.expr]]] = {}
        self._flows: dict[tuple[int, str], _Made] = {}
        self._tainted: dict[tuple[int, Callable[[ast.AST], bool]], frozenset[str]] = {}

    def _scope_at(self, line: int) -> ast.AST:
        """The innermost function holding ``line`` (the module when none does)."""
        if self._innermost is None:
            last = max((d.end_lineno or d.lineno for d in self.defs), default=0)
            table = [0] * (last + 1)
            # outer functions first: inner ones start later and overwrite their lines (spans
            # add up to the file's lines times the nesting depth, which the parser bounds)
            for i, d in sorted(enumerate(self.defs), key=lambda t: t[1].lineno):
                for ln in range(d.lineno, (d.end_lineno or d.lineno) + 1):
                    table[ln] = i + 1
            self._innermost = table
        i = self._innermost[line] if line < len(self._innermost) else 0
        return self.tree if i == 0 else self.defs[i - 1]

    def _table(self, scope: ast.AST) -> dict[str, list[ast.expr]]:
        table = self._assigned.get(id(scope))
        if table is None:
            table = self._assigned[id(scope)] = _assignments(scope)
        return table

    def tainted(self, line: int, source: Callable[[ast.AST], bool]) -> frozenset[str]:
        """The names of the scope around ``line`` assigned a value holding a node ``source``
        accepts, directly or through up to three assignments (``data = s.recv(9)``,
        ``cmd = data.decode()``). Computed once per scope and source."""
        scope = self._scope_at(line)
        key = (id(scope), source)
        names = self._tainted.get(key)
        if names is None:
            hit: set[str] = set()
            uses: dict[str, set[str]] = {}  # name -> the names its values read (one walk each)
            for n, vals in self._table(scope).items():
                nodes = [x for v in vals for x in ast.walk(v)]
                if any(source(x) for x in nodes):
                    hit.add(n)
                else:
                    uses[n] = {x.id for x in nodes if isinstance(x, ast.Name)}
            for _ in range(3):
                more = {n for n, read in uses.items() if n not in hit and read & hit}
                if not more:
                    break
                hit |= more
            names = self._tainted[key] = frozenset(hit)
        return names

    def flow(self, call: ast.Call, name: str) -> _Made:
        scope = self._scope_at(call.lineno)
        key = (id(scope), name)
        made = self._flows.get(key)
        if made is None:
            table = self._table(scope)
            values = tuple(table.get(name, ()))
            made = _Made(
                self._called(values),
                any(_reverses(v) for v in values),
                *_call_words(values),
                values=values,
            )
            self._flows[key] = made
        return made


def _assignments(scope: ast.AST) -> dict[str, list[ast.expr]]:
    out: dict[str, list[ast.expr]] = {}
    stack: list[ast.AST] = list(getattr(scope, "body", []))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out.setdefault(t.id, []).append(node.value)
        elif (
            isinstance(node, ast.AugAssign | ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
        ):
            out.setdefault(node.target.id, []).append(node.value)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _covered(ranges: list[tuple[int, int]], starts: list[int], line: int) -> bool:
    """``line`` lies in one of ``ranges`` (sorted, disjoint; ``starts`` their first lines)."""
    i = bisect_right(starts, line) - 1
    return i >= 0 and line <= ranges[i][1]


_RECEIVES = (".recv", ".recvfrom")
_EXEC_FAMILY = frozenset({"exec", "eval", "compile", "__import__", "getattr", "execfile"})
_EVAL_IMPORT = re.compile(r"^__import__\(\s*['\"]([\w.]+)['\"]\s*\)$")


# names of written files that are then run: scripts (``writes_file``), and programs (PV206)
WRITTEN_SCRIPT_SUFFIXES = (".py", ".pyw", ".bat", ".cmd", ".ps1", ".vbs", ".sh", ".exe")
PROGRAM_SUFFIXES = (*WRITTEN_SCRIPT_SUFFIXES, ".scr", ".jar")


def program_file_name(value: object) -> str | None:
    """The lower-cased file name of a path string named like a script or program. Only the
    last 256 characters are read (a file name has at most 255): every string literal assigned
    to a name passes here while the file is indexed, encoded payloads of megabytes included."""
    if not isinstance(value, str) or not value:
        return None
    base = value[-256:].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()
    return base if base.endswith(PROGRAM_SUFFIXES) else None


def holds_program_file(node: ast.expr) -> bool:
    """An expression holding a string constant named like a script or program."""
    return any(
        isinstance(n, ast.Constant) and program_file_name(n.value) is not None
        for n in ast.walk(node)
    )


def evaluated_name(text: str) -> str | None:
    """What evaluating ``text`` looks up, when it names an exec-family builtin (``"eval"``,
    ``"builtins.exec"``) or imports a module (``"__import__('base64')"``); None otherwise."""
    text = text.strip()
    head, _, tail = text.rpartition(".")
    if tail in _EXEC_FAMILY and head in ("", *_BUILTINS_MODULES):
        return tail
    m = _EVAL_IMPORT.match(text)
    return m.group(1) if m else None


def _call_words(parts: Iterable[ast.expr]) -> tuple[frozenset[str], bool]:
    """The last part of every called name in ``parts``, and whether they hold a list
    comprehension or generator (what :func:`_hand_decoder` reads)."""
    names: set[str] = set()
    comprehension = False
    for p in parts:
        for n in ast.walk(p):
            if isinstance(n, ast.Call):
                f = n.func
                if isinstance(f, ast.Name):
                    names.add(f.id)
                elif isinstance(f, ast.Attribute):
                    names.add(f.attr)
            elif isinstance(n, ast.ListComp | ast.GeneratorExp):
                comprehension = True
    return frozenset(names), comprehension


def _hand_decoder(names: frozenset[str], comprehension: bool) -> bool:
    """A character decoder written out by hand: ``chr()`` of ``ord()``/``int()`` arithmetic
    (XOR and shift ciphers), a substitution through ``str.index`` in a comprehension, or
    ``str.translate``."""
    return (
        ("chr" in names and not names.isdisjoint(("ord", "int")))
        or ("index" in names and comprehension)
        or "translate" in names
    )


def _reverses(node: ast.expr) -> bool:
    for n in ast.walk(node):
        if (
            isinstance(n, ast.Subscript)
            and isinstance(n.slice, ast.Slice)
            and isinstance(n.slice.step, ast.UnaryOp)
        ):
            return True
    return False


def _maybe_python(text: str) -> bool:
    """Cheap test before parsing decoded text as Python."""
    return "\x00" not in text[:2048] and bool(
        re.search(r"\b(?:import|exec|eval|def|print|os\.)\b|\w\(", text[:65536])
    )


def decode_blob(s: str, limit: int) -> str | None:
    """Statically decode a long encoded literal (base64/hex, optionally compressed, maybe
    reversed) to text; ``None`` when it is not such a blob."""
    import base64
    import binascii
    import bz2
    import lzma
    import zlib

    compact = "".join(s.split())
    candidates = [compact, compact[::-1]]
    for cand in candidates:
        raw: bytes | None = None
        try:
            if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", cand):
                raw = binascii.unhexlify(cand)
            else:
                padded = cand + "=" * (-len(cand) % 4)
                alt = b"-_" if ("-" in cand or "_" in cand) else None
                raw = base64.b64decode(padded, altchars=alt, validate=True)
        except (binascii.Error, ValueError):
            continue
        for _ in range(3):  # peel compression layers
            try:
                if raw[:2] in (b"x\x9c", b"x\xda", b"x\x01", b"x^"):
                    d = zlib.decompressobj()
                    raw = d.decompress(raw, limit)
                elif raw[:2] == b"\x1f\x8b":
                    raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, limit)
                elif raw[:3] == b"BZh":
                    raw = bz2.BZ2Decompressor().decompress(raw, limit)
                elif raw[:6] == b"\xfd7zXZ\x00":
                    raw = lzma.LZMADecompressor().decompress(raw, limit)
                else:
                    break
            except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError):
                return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


@dataclass
class PackageContext:
    """Everything rules see about one package."""

    archive: Archive
    info: PackageInfo
    files: list[FileContext] = field(default_factory=list)  # Python sources
    scripts: list[tuple[Member, str]] = field(default_factory=list)  # shell/batch/js text
    skips: list[Skip] = field(default_factory=list)
    setup_kwargs: dict[str, ast.expr] = field(default_factory=dict)
    cmdclass: dict[str, str] = field(default_factory=dict)  # command -> class name

    def all_files(self) -> Iterator[FileContext]:
        for f in self.files:
            yield from f.walk()

    def release(self) -> None:
        """Break the per-file reference cycles (see :meth:`FileContext.release`) once the
        package is analysed, so its trees are freed without a cyclic collection. The context
        stays usable: what was dropped is rebuilt on demand."""
        for f in self.all_files():
            f.release()

    @cached_property
    def caps(self) -> dict[Cap, list[FileContext]]:
        out: dict[Cap, list[FileContext]] = {}
        for f in self.all_files():
            for cap in f.caps:
                out.setdefault(cap, []).append(f)
        return out

    @property
    def metadata_path(self) -> str:
        """Where package-level findings point: the metadata file, else the archive."""
        return self.info.metadata_source or self.archive.filename
