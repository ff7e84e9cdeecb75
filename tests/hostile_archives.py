"""Builders of hostile archives and guards for the hostile-input tests.

Everything is built in memory: tar members of every type, zips written byte by byte (so that
names can be cp437, entries can overlap and members can be ZipCrypto-encrypted, which the
standard library cannot write), and a guard asserting that a scan writes nothing and runs
nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import io
import os
import stat
import struct
import sys
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from conftest import sdist
from pkgvet.models import ScanResult, Verdict
from pkgvet.pipeline import scan_path

# -- a known-good package ------------------------------------------------------------------

GOOD_NAME = "zzgoodpkg-1.0.tar.gz"
GOOD_SETUP = ("import os\nfrom setuptools import setup\n\nos.system('echo building')\n"
              "setup(name='zzgoodpkg')\n")
GOOD_SDIST = sdist("zzgoodpkg", "1.0", {"setup.py": GOOD_SETUP, "zzgoodpkg/__init__.py": "X = 1\n"})


def assert_analysed(result: ScanResult) -> None:
    """The good package was fully analysed: no error, metadata read, its os.system found."""
    assert result.error is None, result.error
    assert result.verdict is not Verdict.ERROR
    assert result.package.name == "zzgoodpkg"
    assert result.stats.get("python_files") == 2
    assert any(f.rule_id == "PV101" and f.path.endswith("setup.py") for f in result.findings)


def scan_beside_good(tmp_path: Path, bad_name: str, bad_data: bytes, config=None) -> ScanResult:
    """Scan a directory holding the bad archive and the good one; return the bad result after
    checking that there are exactly two results and the good package was analysed."""
    d = tmp_path / "pkgs"
    d.mkdir(parents=True, exist_ok=True)
    (d / bad_name).write_bytes(bad_data)
    (d / GOOD_NAME).write_bytes(GOOD_SDIST)
    results = list(scan_path(d, config))
    assert len(results) == 2, [r.target for r in results]
    by_name = {Path(r.target).name: r for r in results}
    assert set(by_name) == {bad_name, GOOD_NAME}
    assert_analysed(by_name[GOOD_NAME])
    return by_name[bad_name]


# -- tar -----------------------------------------------------------------------------------


def tar_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
               linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    info.mode = 0o644
    return info, data


def make_raw_tar(members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz",
                 fmt: int = tarfile.PAX_FORMAT, encoding: str = "utf-8") -> bytes:
    buf = io.BytesIO()
    gz = mode == "w:gz"  # gzip after, with a fixed header time: the same members, the same bytes
    with tarfile.open(fileobj=buf, mode="w" if gz else mode, format=fmt, encoding=encoding) as tf:  # type: ignore[call-overload]
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.size else None)
    return gzip.compress(buf.getvalue(), mtime=0) if gz else buf.getvalue()


# -- zip, written by hand ------------------------------------------------------------------

_CRC_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


class _ZipCrypto:
    """PKWARE traditional encryption (APPNOTE 6.1), the ``infected`` convention's cipher."""

    def __init__(self, password: bytes) -> None:
        self.keys = [0x12345678, 0x23456789, 0x34567890]
        for b in password:
            self._update(b)

    @staticmethod
    def _crc(c: int, b: int) -> int:
        return (c >> 8) ^ _CRC_TABLE[(c ^ b) & 0xFF]

    def _update(self, b: int) -> None:
        k0, k1, k2 = self.keys
        k0 = self._crc(k0, b)
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = self._crc(k2, k1 >> 24)
        self.keys = [k0, k1, k2]

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for p in data:
            t = (self.keys[2] | 2) & 0xFFFF
            out.append(p ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            self._update(p)
        return bytes(out)


@dataclass
class ZipEntry:
    name: bytes
    data: bytes
    deflate: bool = True
    utf8: bool = False  # general-purpose flag bit 11; unset means cp437 names
    password: bytes | None = None  # ZipCrypto when set
    external_attr: int = 0
    create_system: int = 0  # 3 = unix (external_attr high word is st_mode)
    declared_size: int | None = None  # lie about the uncompressed size


def make_raw_zip(entries: list[ZipEntry], overlap: int = 0) -> bytes:
    """A zip written byte by byte. ``overlap`` adds that many extra central-directory entries
    all pointing at the first local header (the overlapping-entries zip bomb)."""
    body = bytearray()
    central = bytearray()
    records = []
    for e in entries:
        crc = zlib.crc32(e.data)
        if e.deflate:
            co = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = co.compress(e.data) + co.flush()
        else:
            payload = e.data
        flags = 0x800 if e.utf8 else 0
        if e.password is not None:
            flags |= 0x1
            payload = _ZipCrypto(e.password).encrypt(bytes(11) + bytes([crc >> 24]) + payload)
        method = 8 if e.deflate else 0
        offset = len(body)
        size = len(e.data) if e.declared_size is None else e.declared_size
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc,
                            len(payload), size, len(e.name), 0) + e.name + payload
        records.append((e, flags, method, crc, len(payload), offset))
    records += [records[0]] * overlap
    for e, flags, method, crc, csize, offset in records:
        size = len(e.data) if e.declared_size is None else e.declared_size
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (e.create_system << 8) | 20, 20,
                               flags, method, 0, 0x21, crc, csize, size, len(e.name),
                               0, 0, 0, 0, e.external_attr, offset) + e.name
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(records), len(records),
                       len(central), len(body), 0)
    return bytes(body + central + eocd)


def encrypted_zip(files: dict[str, bytes], password: bytes = b"infected") -> bytes:
    return make_raw_zip([ZipEntry(n.encode(), d, password=password) for n, d in files.items()])


def zip_symlink(name: str, target: str) -> ZipEntry:
    return ZipEntry(name.encode(), target.encode(), deflate=False, create_system=3,
                    external_attr=(stat.S_IFLNK | 0o777) << 16)


# -- the scanner writes nothing and runs nothing -------------------------------------------

_WRITE_MODE = set("wax+")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FS_EVENTS = frozenset({
    "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate",
    "os.chmod", "os.chown", "os.utime", "os.mkfifo", "os.mknod", "shutil.copyfile",
    "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.rmtree",
    "shutil.unpack_archive", "tempfile.mkstemp", "tempfile.mkdtemp",
    "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
    "os.forkpty", "os.startfile", "pty.spawn", "socket.connect", "socket.bind",
    "urllib.Request", "ctypes.dlopen",
})
_CODEGEN = frozenset({dataclasses.__file__, collections.__file__})  # generated methods


class _Guard:
    seen: list[str] | None = None  # set while a guarded block runs (in any thread)


_guard = _Guard()


def _is_bytecode_cache(path: object) -> bool:
    # The import system may write __pycache__/*.pyc when a module is imported lazily.
    return isinstance(path, str | bytes | os.PathLike) and "__pycache__" in os.fsdecode(path)


def _audit(event: str, args: tuple) -> None:
    seen = getattr(_guard, "seen", None)
    if seen is None:
        return
    if event == "open":
        path, mode, flags = args
        if _is_bytecode_cache(path):
            return
        if (isinstance(mode, str) and set(mode) & _WRITE_MODE) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        ):
            seen.append(f"open({path!r}, {mode!r}, {flags!r})")
    elif event in _FS_EVENTS:
        if event in ("os.mkdir", "os.rename") and args and _is_bytecode_cache(args[0]):
            return
        seen.append(f"{event}{args!r}")
    elif event == "exec":
        # Module imports exec code from real files, and dataclasses/namedtuple exec the
        # methods they generate; package code would come from anywhere else.
        code = args[0]
        filename = getattr(code, "co_filename", "")
        caller = sys._getframe(1).f_code.co_filename
        if caller not in _CODEGEN and not (os.path.isabs(filename) and os.path.exists(filename)):
            seen.append(f"exec of code from {filename!r}")


sys.addaudithook(_audit)


class WriteAttempted(AssertionError):
    pass


@contextmanager
def no_writes() -> Iterator[list[str]]:
    """Fail on any write-mode ``open`` and record every write, file-system change, process,
    socket or exec of non-module code while the block runs (checked on exit)."""
    real_open = open

    def guarded_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if set(str(mode)) & _WRITE_MODE:
            raise WriteAttempted(f"scanner opened {file!r} for writing ({mode!r})")
        return real_open(file, mode, *args, **kwargs)

    seen: list[str] = []
    _guard.seen = seen
    try:
        with mock.patch("builtins.open", guarded_open), mock.patch("io.open", guarded_open):
            yield seen
    finally:
        _guard.seen = None
    assert not seen, f"the scan wrote, ran or connected: {seen}"


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``root`` (links not followed) with its mode, size and mtime."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out
