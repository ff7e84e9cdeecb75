"""Safe static evaluation of constant expressions: the deobfuscation engine.

``Folder.fold(node)`` computes the value of an expression built only from literals, module-level
constants and a fixed set of pure decoding functions (base64/base32/base16/base85, hex, zlib,
gzip, bz2, lzma, rot13, ``chr`` lists, ``str.join``, reversal by ``[::-1]``, ``replace``,
``bytes.fromhex``...). Nothing is ever executed: unknown names or calls give ``None``. Output
size, recursion depth and the number of steps are bounded, so a hostile expression cannot make
the scanner run long or allocate much.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import lzma
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

Value = str | bytes | int | float | bool | list[Any] | tuple[Any, ...] | None

_MAX_DEPTH = 60


class _Stop(Exception):
    """Folding gave up (budget, size or an unsupported construct)."""


def _bounded_decompress(data: bytes, kind: str, limit: int) -> bytes:
    if kind == "zlib":
        d = zlib.decompressobj()
        out = d.decompress(data, limit + 1)
    elif kind == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(data, limit + 1)
    elif kind == "bz2":
        out = bz2.BZ2Decompressor().decompress(data, limit + 1)
    else:
        out = lzma.LZMADecompressor().decompress(data, limit + 1)
    if len(out) > limit:
        raise _Stop
    return out


def _as_bytes(v: Value) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    raise _Stop


def _b64(v: Value, altchars: bytes | None = None) -> bytes:
    data = _as_bytes(v)
    data = b"".join(data.split())
    data += b"=" * (-len(data) % 4)
    return base64.b64decode(data, altchars=altchars)


def _rot13(v: Value) -> str:
    if not isinstance(v, str):
        raise _Stop
    return codecs.decode(v, "rot13")


def _codecs_decode(v: Value, enc: str, limit: int) -> Value:
    enc = enc.lower().replace("-", "_")
    if enc in ("rot13", "rot_13"):
        return _rot13(v)
    if enc in ("hex", "hex_codec"):
        return binascii.unhexlify(_as_bytes(v))
    if enc in ("base64", "base_64", "base64_codec"):
        return _b64(v)
    if enc in ("zlib", "zip", "zlib_codec"):
        return _bounded_decompress(_as_bytes(v), "zlib", limit)
    if enc in ("bz2", "bz2_codec"):
        return _bounded_decompress(_as_bytes(v), "bz2", limit)
    if enc in ("utf8", "utf_8", "ascii", "latin1", "latin_1", "unicode_escape"):
        b = _as_bytes(v)
        return b.decode(
            "unicode_escape"
            if enc == "unicode_escape"
            else "latin-1"
            if enc.startswith("latin")
            else "utf-8",
            "replace",
        )
    raise _Stop


# Pure decoding functions by qualified name: f(args, limit) -> value.
_DECODERS: dict[str, Callable[[list[Value], int], Value]] = {
    "base64.b64decode": lambda a, n: _b64(a[0], _as_bytes(a[1]) if len(a) > 1 and a[1] else None),
    "base64.standard_b64decode": lambda a, n: _b64(a[0]),
    "base64.urlsafe_b64decode": lambda a, n: _b64(a[0], b"-_"),
    "base64.decodebytes": lambda a, n: _b64(a[0]),
    "base64.decodestring": lambda a, n: _b64(a[0]),
    "base64.b32decode": lambda a, n: base64.b32decode(_as_bytes(a[0])),
    "base64.b16decode": lambda a, n: base64.b16decode(_as_bytes(a[0]), casefold=True),
    "base64.b85decode": lambda a, n: base64.b85decode(_as_bytes(a[0])),
    "base64.a85decode": lambda a, n: base64.a85decode(_as_bytes(a[0])),
    "binascii.a2b_base64": lambda a, n: _b64(a[0]),
    "binascii.unhexlify": lambda a, n: binascii.unhexlify(_as_bytes(a[0])),
    "binascii.a2b_hex": lambda a, n: binascii.unhexlify(_as_bytes(a[0])),
    "bytes.fromhex": lambda a, n: bytes.fromhex(a[0] if isinstance(a[0], str) else ""),
    "zlib.decompress": lambda a, n: _bounded_decompress(_as_bytes(a[0]), "zlib", n),
    "gzip.decompress": lambda a, n: _bounded_decompress(_as_bytes(a[0]), "gzip", n),
    "bz2.decompress": lambda a, n: _bounded_decompress(_as_bytes(a[0]), "bz2", n),
    "lzma.decompress": lambda a, n: _bounded_decompress(_as_bytes(a[0]), "lzma", n),
    "codecs.decode": lambda a, n: _codecs_decode(a[0], str(a[1]) if len(a) > 1 else "utf-8", n),
}
DECODER_NAMES = frozenset(_DECODERS) | {"marshal.loads", "codecs.encode"}

# str() of built-in objects, used by obfuscators to spell names ("chr" from str(oct)[-3]...).
_BUILTIN_STR: dict[str, str] = {
    **{
        n: f"<built-in function {n}>"
        for n in (
            "abs",
            "all",
            "any",
            "ascii",
            "bin",
            "callable",
            "chr",
            "compile",
            "delattr",
            "dir",
            "divmod",
            "eval",
            "exec",
            "format",
            "getattr",
            "globals",
            "hasattr",
            "hash",
            "hex",
            "id",
            "input",
            "isinstance",
            "issubclass",
            "iter",
            "len",
            "locals",
            "max",
            "min",
            "next",
            "oct",
            "open",
            "ord",
            "pow",
            "print",
            "repr",
            "round",
            "setattr",
            "sorted",
            "sum",
            "vars",
            "__import__",
        )
    },
    **{
        n: f"<class '{n}'>"
        for n in (
            "bool",
            "bytearray",
            "bytes",
            "complex",
            "dict",
            "float",
            "frozenset",
            "int",
            "list",
            "object",
            "range",
            "set",
            "slice",
            "str",
            "tuple",
            "type",
            "map",
            "filter",
            "zip",
            "enumerate",
            "reversed",
        )
    },
    "copyright": "Copyright (c) 2001-2023 Python Software Foundation.\nAll Rights Reserved.",
}


def _chr(v: Value) -> str:
    if isinstance(v, int) and 0 <= v < 0x110000:
        return chr(v)
    raise _Stop


class Folder:
    """Folds expressions of one module, given its resolver of qualified names and constants."""

    def __init__(
        self,
        qualname: Callable[[ast.expr], str],
        constants: Mapping[str, ast.expr],
        limit: int = 2 * 1024 * 1024,
        max_steps: int = 20_000,
        deadline: float = float("inf"),
    ) -> None:
        self.qualname = qualname
        self.constants = constants
        self.limit = limit
        self.max_steps = max_steps
        self.deadline = deadline
        self.steps = 0
        self.decoded = False  # set when a decoding function was applied
        self._active = False

    def fold(self, node: ast.expr) -> Value:
        """The value of ``node`` or ``None`` when it is not a foldable constant.

        A fold started while another is running (name resolution inside a fold) shares the
        outer step budget instead of getting a fresh one."""
        nested = self._active
        if not nested:
            self.steps = 0
            self.decoded = False
        self._active = True
        try:
            return self._fold(node, 0, {})
        except (
            _Stop,
            ValueError,
            TypeError,
            binascii.Error,
            zlib.error,
            lzma.LZMAError,
            OSError,
            EOFError,
            IndexError,
            KeyError,
            OverflowError,
            RecursionError,
            MemoryError,
            UnicodeError,
        ):
            return None
        finally:
            self._active = nested

    def _check(self, v: Value) -> Value:
        if isinstance(v, str | bytes) and len(v) > self.limit:
            raise _Stop
        if isinstance(v, list | tuple) and len(v) > self.limit // 8:
            raise _Stop
        return v

    def _fold(self, node: ast.expr, depth: int, env: dict[str, Value]) -> Value:
        self.steps += 1
        if self.steps > self.max_steps or depth > _MAX_DEPTH:
            raise _Stop
        if not self.steps & 1023 and time.monotonic() > self.deadline:
            raise _Stop
        d = depth + 1
        match node:
            case ast.Constant(value=value):
                if isinstance(value, str | bytes | int | float | bool):
                    return value
                raise _Stop
            case ast.Name(id=name):
                if name in env:
                    return env[name]
                if name in self.constants:
                    return self._fold(self.constants[name], d, env)
                raise _Stop
            case ast.JoinedStr(values=values):
                parts = []
                for v in values:
                    if isinstance(v, ast.Constant):
                        parts.append(str(v.value))
                    elif isinstance(v, ast.FormattedValue) and v.format_spec is None:
                        parts.append(str(self._fold(v.value, d, env)))
                    else:
                        raise _Stop
                return self._check("".join(parts))
            case ast.List(elts=elts) | ast.Tuple(elts=elts):
                return self._check([self._fold(e, d, env) for e in elts])
            case ast.BinOp(left=left, op=op, right=right):
                return self._binop(self._fold(left, d, env), op, self._fold(right, d, env))
            case ast.Subscript(value=value, slice=ast.Slice(lower=None, upper=None, step=step)):
                seq = self._fold(value, d, env)
                s = self._fold(step, d, env) if step is not None else 1
                if isinstance(seq, str | bytes | list) and isinstance(s, int) and s != 0:
                    return seq[::s]
                raise _Stop
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                neg = self._fold(operand, d, env)
                if isinstance(neg, int):
                    return -neg
                raise _Stop
            case ast.Subscript(value=value, slice=index) if not isinstance(index, ast.Slice):
                seq = self._fold(value, d, env)
                i = self._fold(index, d, env)
                if isinstance(seq, str | bytes | list | tuple) and isinstance(i, int):
                    item: Value = seq[i]
                    return item
                raise _Stop
            case ast.Call(func=func, args=args, keywords=keywords):
                return self._call(func, args, keywords, d, env)
            case (
                ast.ListComp(elt=elt, generators=gens) | ast.GeneratorExp(elt=elt, generators=gens)
            ):
                return self._comprehension(elt, gens, d, env)
        raise _Stop

    def _binop(self, a: Value, op: ast.operator, b: Value) -> Value:
        if isinstance(op, ast.Add):
            if isinstance(a, str) and isinstance(b, str):
                return self._check(a + b)
            if isinstance(a, bytes) and isinstance(b, bytes):
                return self._check(a + b)
            if isinstance(a, list) and isinstance(b, list):
                return self._check(a + b)
            if isinstance(a, int) and isinstance(b, int):
                return a + b
        elif isinstance(op, ast.Sub) and isinstance(a, int) and isinstance(b, int):
            return a - b
        elif isinstance(op, ast.BitXor) and isinstance(a, int) and isinstance(b, int):
            return a ^ b
        elif isinstance(op, ast.Mult):
            if isinstance(a, str | bytes) and isinstance(b, int) and len(a) * b <= self.limit:
                return a * b
            if isinstance(a, int) and isinstance(b, int) and abs(a * b) < 2**64:
                return a * b
        elif isinstance(op, ast.FloorDiv) and isinstance(a, int) and isinstance(b, int) and b:
            return a // b
        elif isinstance(a, int) and isinstance(b, int):
            if isinstance(op, ast.LShift) and 0 <= b < 64 and abs(a) < 2**64:
                return a << b
            if isinstance(op, ast.RShift) and b >= 0:
                return a >> b
            if isinstance(op, ast.BitOr):
                return a | b
            if isinstance(op, ast.BitAnd):
                return a & b
            if isinstance(op, ast.Mod) and b:
                return a % b
        raise _Stop

    def _comprehension(
        self, elt: ast.expr, gens: list[ast.comprehension], depth: int, env: dict[str, Value]
    ) -> Value:
        if len(gens) != 1 or gens[0].ifs or not isinstance(gens[0].target, ast.Name):
            raise _Stop
        items = self._fold(gens[0].iter, depth, env)
        if not isinstance(items, list | tuple | str | bytes):
            raise _Stop
        var = gens[0].target.id
        out = []
        for item in items:
            out.append(self._fold(elt, depth, {**env, var: item}))
        return self._check(out)

    def _call(
        self,
        func: ast.expr,
        args: list[ast.expr],
        keywords: list[ast.keyword],
        depth: int,
        env: dict[str, Value],
    ) -> Value:
        if any(isinstance(a, ast.Starred) for a in args):
            raise _Stop
        name = self.qualname(func)
        if name == "map" and len(args) == 2:
            items = self._fold(args[1], depth, env)
            if not isinstance(items, list | tuple | str):
                raise _Stop
            return self._check(
                [self._call(args[0], [ast.Constant(x)], [], depth, env) for x in items]
            )
        if name.endswith(".__str__") and not args:
            owner = name[: -len(".__str__")]
            if owner in _BUILTIN_STR:
                return _BUILTIN_STR[owner]
            raise _Stop
        if isinstance(func, ast.Attribute) and func.attr in _METHODS and name not in _DECODERS:
            # Methods on folded values: "".join, .decode, .encode, .replace, ...
            base = self._fold(func.value, depth, env)
            vals = [self._fold(a, depth, env) for a in args]
            return self._check(_METHODS[func.attr](self, base, vals))
        vals = [self._fold(a, depth, env) for a in args]
        vals += [self._fold(k.value, depth, env) for k in keywords if k.arg in ("altchars",)]
        if name in _DECODERS:
            self.decoded = True
            return self._check(_DECODERS[name](vals, self.limit))
        if name == "chr" and len(vals) == 1:
            self.decoded = True
            return _chr(vals[0])
        if name == "ord" and len(vals) == 1 and isinstance(vals[0], str) and len(vals[0]) == 1:
            return ord(vals[0])
        if name in ("bytes", "bytearray") and len(vals) == 1 and isinstance(vals[0], list | bytes):
            return bytes(vals[0])
        if name in ("bytes", "str") and len(vals) == 2 and isinstance(vals[0], bytes | bytearray):
            return vals[0].decode(str(vals[1]), "replace")
        if name == "str" and len(vals) == 1 and isinstance(vals[0], str):
            return vals[0]
        if name in ("list", "tuple") and len(vals) == 1 and isinstance(vals[0], list | tuple):
            return list(vals[0])
        if name == "reversed" and len(vals) == 1 and isinstance(vals[0], str | list):
            return list(reversed(vals[0]))
        if name == "int" and len(vals) in (1, 2) and isinstance(vals[0], str):
            return int(vals[0], int(vals[1]) if len(vals) == 2 and isinstance(vals[1], int) else 10)
        raise _Stop


def _m_join(f: Folder, base: Value, vals: list[Value]) -> Value:
    if not isinstance(base, str | bytes) or len(vals) != 1:
        raise _Stop
    items = vals[0]
    if isinstance(items, str) and isinstance(base, str):
        return base.join(items)
    if not isinstance(items, list | tuple):
        raise _Stop
    if isinstance(base, str) and all(isinstance(i, str) for i in items):
        return base.join(items)
    if isinstance(base, bytes) and all(isinstance(i, bytes) for i in items):
        return base.join(items)
    raise _Stop


def _m_decode(f: Folder, base: Value, vals: list[Value]) -> Value:
    if isinstance(base, bytes):
        enc = str(vals[0]) if vals else "utf-8"
        if enc.lower() in ("hex", "base64", "zlib", "rot13", "bz2"):
            f.decoded = True
            return _codecs_decode(base, enc, f.limit)
        return base.decode("latin-1" if enc.lower().startswith("latin") else "utf-8", "replace")
    if isinstance(base, str):  # py2 str.decode('base64') etc.
        enc = str(vals[0]) if vals else "utf-8"
        f.decoded = True
        return _codecs_decode(base, enc, f.limit)
    raise _Stop


def _m_encode(f: Folder, base: Value, vals: list[Value]) -> Value:
    if isinstance(base, str):
        enc = str(vals[0]) if vals else "utf-8"
        if enc.lower() in ("rot13", "rot_13"):
            return _rot13(base)
        return base.encode(
            "latin-1" if enc.lower().startswith("latin") else "utf-8", "surrogateescape"
        )
    raise _Stop


def _m_replace(f: Folder, base: Value, vals: list[Value]) -> Value:
    if isinstance(base, str) and len(vals) == 2 and all(isinstance(v, str) for v in vals):
        return base.replace(str(vals[0]), str(vals[1]))
    if isinstance(base, bytes) and len(vals) == 2 and all(isinstance(v, bytes) for v in vals):
        a, b = vals
        assert isinstance(a, bytes) and isinstance(b, bytes)
        return base.replace(a, b)
    raise _Stop


def _m_strip(f: Folder, base: Value, vals: list[Value]) -> Value:
    if isinstance(base, str) and not vals:
        return base.strip()
    raise _Stop


def _m_split(f: Folder, base: Value, vals: list[Value]) -> Value:
    if isinstance(base, str) and all(isinstance(v, str) for v in vals) and len(vals) <= 1:
        return base.split(str(vals[0])) if vals else base.split()
    raise _Stop


_METHODS: dict[str, Callable[[Folder, Value, list[Value]], Value]] = {
    "join": _m_join,
    "decode": _m_decode,
    "encode": _m_encode,
    "replace": _m_replace,
    "strip": _m_strip,
    "split": _m_split,
}
