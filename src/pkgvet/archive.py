"""Read package archives as bytes in memory, never extracting or executing anything.

Every archive is hostile input. The reader enforces the :class:`~pkgvet.config.Limits`
(member count, single-member and total uncompressed size, compression ratio, nesting) and
refuses to follow links or read devices. Unsafe members become :class:`~pkgvet.models.Skip`
records and archive-level anomalies; only a broken limit or an unreadable archive raises.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from pkgvet.config import Limits
from pkgvet.errors import ArchiveError, UnsafeArchiveError
from pkgvet.models import Skip

ARCHIVE_SUFFIXES = (
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tar.xz",
    ".tar",
    ".zip",
    ".whl",
    ".egg",
)
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
# Compression ratios are only checked past this size: tiny files of zeros compress well.
_RATIO_FLOOR = 1024 * 1024


# Magic numbers of native executables, by format (the package rules and `pkgvet diff` read them).
EXECUTABLE_MAGIC: dict[bytes, str] = {
    b"\x7fELF": "ELF",
    b"MZ": "PE",
    b"\xfe\xed\xfa\xce": "Mach-O",
    b"\xfe\xed\xfa\xcf": "Mach-O",
    b"\xce\xfa\xed\xfe": "Mach-O",
    b"\xcf\xfa\xed\xfe": "Mach-O",
}
EXECUTABLE_PREFIXES = tuple(EXECUTABLE_MAGIC)  # for bytes.startswith


@dataclass(slots=True)
class Member:
    """One regular file of a package, with its uncompressed bytes."""

    path: str  # as stored in the archive (display form, always valid text)
    data: bytes
    rel: str = ""  # path below the package root (sdist top folder stripped)
    size: int = field(init=False)  # the uncompressed size, kept when the bytes are released

    def __post_init__(self) -> None:
        self.size = len(self.data)

    def release_source(self) -> None:
        """Drop the bytes of a source file once its decoded text is kept elsewhere (the file
        context): a package of 141 MB of Python then peaks 130 MB lower. Bytes that start like
        a native executable are kept, since the package rules and `pkgvet diff` read those."""
        if not self.data.startswith(EXECUTABLE_PREFIXES):
            self.data = b""


@dataclass(slots=True)
class Archive:
    """The readable content of one artifact."""

    kind: str  # sdist, wheel, egg, zip, directory, file
    members: list[Member] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    anomalies: list[Skip] = field(default_factory=list)  # suspicious structure, e.g. traversal
    filename: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(m.size for m in self.members)


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def kind_of(filename: str) -> str:
    low = filename.lower()
    if low.endswith(".whl"):
        return "wheel"
    if low.endswith(".egg"):
        return "egg"
    if low.endswith(".zip"):
        return "zip"
    return "sdist"


def _display(name: str) -> str:
    """A member name as safe text: undecodable bytes replaced, control characters escaped."""
    raw = name.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "replace")
    if text.isprintable():  # nearly every name: no per-character pass needed
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _unsafe_path_reason(name: str) -> str | None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." not in name:  # nearly every name: no part can be ".."
        return None
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "path traversal ('..')"
    return None


class _Budget:
    """Counts members and bytes across one archive and the archives nested in it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.members = 0
        self.bytes = 0

    def add_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise UnsafeArchiveError(
                f"more than {self.limits.max_members} members: refusing (possible archive bomb)"
            )

    def add_bytes(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"uncompressed content exceeds {self.limits.max_total_bytes} bytes: refusing"
                " (possible decompression bomb)"
            )


def read_archive(
    data: bytes, filename: str, limits: Limits, password: bytes | None = b"infected"
) -> Archive:
    """Read an archive given as bytes. Raises :class:`ArchiveError` if nothing can be read."""
    if len(data) > limits.max_archive_bytes:
        raise UnsafeArchiveError(
            f"archive is {len(data)} bytes, over the {limits.max_archive_bytes}-byte limit"
        )
    archive = Archive(kind=kind_of(filename), filename=filename)
    budget = _Budget(limits)
    _read_into(archive, data, filename, "", budget, password, depth=0)
    _assign_rel_paths(archive, _unwrap_single_archive(archive))
    return archive


def _read_into(
    archive: Archive,
    data: bytes,
    filename: str,
    prefix: str,
    budget: _Budget,
    password: bytes | None,
    depth: int,
) -> None:
    if data.startswith(_ZIP_MAGIC) or (data[:4] == b"PK\x05\x06"):
        _read_zip(archive, data, prefix, budget, password, depth)
    elif data.startswith((_GZIP_MAGIC, _BZ2_MAGIC, _XZ_MAGIC)) or _looks_like_tar(data):
        _read_tar(archive, data, prefix, budget, password, depth)
    else:
        raise ArchiveError(f"{filename}: not a zip or tar archive (unknown format)")


def _looks_like_tar(data: bytes) -> bool:
    return len(data) >= 512 and data[257:262] == b"ustar"


def _add_member(
    archive: Archive,
    name: str,
    payload: bytes,
    prefix: str,
    budget: _Budget,
    password: bytes | None,
    depth: int,
) -> None:
    path = prefix + _display(name)
    if depth < budget.limits.max_nesting and is_archive_name(name) and payload:
        nested = prefix + _display(name) + "!"
        try:
            _read_into(archive, payload, name, nested, budget, password, depth + 1)
        except UnsafeArchiveError:
            raise
        except ArchiveError as exc:
            archive.skips.append(Skip(path, f"nested archive unreadable: {exc}"))
    elif is_archive_name(name) and payload:
        archive.skips.append(
            Skip(path, f"nested archive not read: deeper than {budget.limits.max_nesting} levels")
        )
    # Keep the nested archive itself too, so file-level rules see it.
    archive.members.append(Member(path=path, data=payload))


def _check_ratio(size: int, compressed: int, limits: Limits) -> bool:
    return size > _RATIO_FLOOR and size > limits.max_ratio * max(compressed, 1)


def _read_zip(
    archive: Archive,
    data: bytes,
    prefix: str,
    budget: _Budget,
    password: bytes | None,
    depth: int,
) -> None:
    limits = budget.limits
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ArchiveError(f"corrupt or truncated zip: {exc}") from exc
    if len(infos) > limits.max_members:
        raise UnsafeArchiveError(f"zip declares {len(infos)} members, over {limits.max_members}")
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue
        budget.add_member()
        shown = prefix + _display(name)
        if reason := _unsafe_path_reason(name):
            archive.anomalies.append(Skip(shown, reason))
            archive.skips.append(Skip(shown, f"not read: {reason}"))
            continue
        mode = (info.external_attr >> 16) & 0o170000
        if mode == stat.S_IFLNK:
            archive.anomalies.append(Skip(shown, "symbolic link"))
            archive.skips.append(Skip(shown, "not followed: symbolic link"))
            continue
        if mode and mode not in (stat.S_IFREG,):
            archive.skips.append(Skip(shown, "not read: not a regular file"))
            continue
        if info.file_size > limits.max_member_bytes:
            archive.skips.append(
                Skip(shown, f"not read: {info.file_size} bytes, over the member limit")
            )
            continue
        if _check_ratio(info.file_size, info.compress_size, limits):
            raise UnsafeArchiveError(
                f"{shown}: compression ratio over {limits.max_ratio:g} (possible zip bomb)"
            )
        if info.compress_type == 99:  # WinZip AES
            payload = _read_aes_member(data, info, password, limits)
        else:
            try:
                with zf.open(info, pwd=password if info.flag_bits & 0x1 else None) as fh:
                    payload = fh.read(limits.max_member_bytes + 1)
            except RuntimeError as exc:  # bad password
                raise ArchiveError(f"{shown}: encrypted and the password does not fit") from exc
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                zlib.error,
                NotImplementedError,
                lzma.LZMAError,
                ValueError,
            ) as exc:
                archive.skips.append(Skip(shown, f"not read: corrupt member ({exc})"))
                continue
        if len(payload) > limits.max_member_bytes:
            raise UnsafeArchiveError(f"{shown}: inflates past its declared size (zip bomb)")
        budget.add_bytes(len(payload))
        _add_member(archive, name, payload, prefix, budget, password, depth)


def _read_aes_member(
    data: bytes, info: zipfile.ZipInfo, password: bytes | None, limits: Limits
) -> bytes:
    try:
        import pyzipper
    except ImportError as exc:
        raise ArchiveError(
            f"{info.filename}: AES-encrypted zip; install the 'aes' extra "
            "(pip install 'pkgvet[aes]') to read it"
        ) from exc
    try:
        with (
            pyzipper.AESZipFile(io.BytesIO(data)) as zf,
            zf.open(info.filename, pwd=password) as fh,
        ):
            payload: bytes = fh.read(limits.max_member_bytes + 1)
    except RuntimeError as exc:
        raise ArchiveError(f"{info.filename}: encrypted and the password does not fit") from exc
    return payload


# A gzip stream that decompresses to at most this much is inflated in one call before its tar
# is read (see _gunzip_small); larger ones are read through gzip.GzipFile as they are parsed.
_INFLATE_AT_ONCE = 32 * 1024 * 1024


def _gunzip_small(data: bytes) -> bytes | None:
    """``data`` inflated in one ``zlib`` call when it is one complete, intact gzip member of at
    most :data:`_INFLATE_AT_ONCE` bytes; None otherwise (larger, truncated, corrupt, several
    members or trailing bytes), and the caller reads it through ``gzip.GzipFile`` as before.

    The tar parser then reads the same bytes it would have read through ``GzipFile``, through
    the same capped reader, so findings and errors are unchanged; a small sdist (the usual
    malware sample) is read faster, without the gzip file object's work on every read."""
    d = zlib.decompressobj(wbits=31)  # gzip framing; CRC-32 and length are checked at the end
    try:
        raw = d.decompress(data, _INFLATE_AT_ONCE)
    except zlib.error:
        return None
    if not d.eof or d.unused_data or d.unconsumed_tail:
        return None
    return raw


def _gzip_stream(data: bytes) -> IO[bytes]:
    """The decompressed bytes of a gzip stream as a file object."""
    # The trailer's size field (mod 2**32, and the sender's word) only chooses the path: a
    # stream it announces as large is not inflated at once just to be thrown away.
    announced = int.from_bytes(data[-4:], "little")
    small = _gunzip_small(data) if announced <= _INFLATE_AT_ONCE else None
    if small is not None:
        return io.BytesIO(small)
    return gzip.GzipFile(fileobj=io.BytesIO(data))  # type: ignore[return-value]


def _open_tar(data: bytes, limits: Limits) -> tuple[tarfile.TarFile, _CappedReader]:
    """Open a tar stream whose decompressed size is capped (a gzip bomb stops early)."""
    raw: IO[bytes]
    if data.startswith(_GZIP_MAGIC):
        raw = _gzip_stream(data)
    elif data.startswith(_BZ2_MAGIC):
        raw = bz2.BZ2File(io.BytesIO(data))
    elif data.startswith(_XZ_MAGIC):
        raw = lzma.LZMAFile(io.BytesIO(data))  # noqa: SIM115 - closed with the tar stream
    else:
        raw = io.BytesIO(data)
    capped = _CappedReader(raw, limits.max_total_bytes + 1024 * 1024, len(data), limits.max_ratio)
    return tarfile.open(fileobj=capped, mode="r|"), capped


class _CappedReader(io.RawIOBase):
    """A file object that refuses to yield more than ``cap`` decompressed bytes."""

    def __init__(self, inner: IO[bytes], cap: int, compressed: int, ratio: float) -> None:
        self.inner = inner
        self.cap = cap
        self.compressed = compressed
        self.ratio = ratio
        self.count = 0
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.eof:  # tarfile "seeks" by reading: never let it read past the end forever
            raise EOFError("unexpected end of the archive stream")
        chunk = self.inner.read(size)
        if not chunk and size != 0:
            self.eof = True
        self.count += len(chunk)
        if self.count > self.cap:
            raise UnsafeArchiveError("decompressed stream exceeds the total size limit (bomb)")
        if self.count > _RATIO_FLOOR * 8 and self.count > self.ratio * self.compressed:
            raise UnsafeArchiveError(
                f"compression ratio over {self.ratio:g} (possible decompression bomb)"
            )
        return chunk

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


def _read_tar(
    archive: Archive,
    data: bytes,
    prefix: str,
    budget: _Budget,
    password: bytes | None,
    depth: int,
) -> None:
    limits = budget.limits
    try:
        tf, stream = _open_tar(data, limits)
    except UnsafeArchiveError:
        raise
    except _TAR_ERRORS as exc:
        raise ArchiveError(f"corrupt or truncated tar: {exc}") from exc
    read_any = False
    try:
        for info in _iter_tar(tf):
            read_any = True
            if info.isdir():
                continue
            budget.add_member()
            if info.size > limits.max_total_bytes:
                raise UnsafeArchiveError(
                    f"a member declares {info.size} bytes, over the total limit: refusing"
                )
            name = info.name
            shown = prefix + _display(name)
            if reason := _unsafe_path_reason(name):
                archive.anomalies.append(Skip(shown, reason))
                archive.skips.append(Skip(shown, f"not read: {reason}"))
                continue
            if info.issym() or info.islnk():
                kind = "symbolic link" if info.issym() else "hard link"
                archive.anomalies.append(Skip(shown, f"{kind} to {_display(info.linkname)}"))
                archive.skips.append(Skip(shown, f"not followed: {kind}"))
                continue
            if not info.isfile():
                archive.skips.append(Skip(shown, "not read: device, fifo or special member"))
                continue
            if info.size > limits.max_member_bytes:
                archive.skips.append(
                    Skip(shown, f"not read: {info.size} bytes, over the member limit")
                )
                continue
            fh = tf.extractfile(info)
            payload = fh.read() if fh is not None else b""
            budget.add_bytes(len(payload))
            _add_member(archive, name, payload, prefix, budget, password, depth)
        while stream.read(1 << 20):  # reach the compression trailer: its checksum is verified
            pass
    except UnsafeArchiveError:
        raise
    except _TAR_ERRORS as exc:
        if not read_any and not archive.members:
            raise ArchiveError(f"corrupt or truncated tar: {exc}") from exc
        archive.skips.append(
            Skip(
                prefix or archive.filename,
                f"archive truncated or corrupt after "
                f"{len(archive.members)} members ({exc}); partial analysis",
            )
        )


def _iter_tar(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        info = tf.next()
        if info is None:
            return
        yield info


def _unwrap_single_archive(archive: Archive) -> str:
    """A zip holding exactly one archive (the malware-dataset convention) is that archive.

    Returns the path prefix of the wrapped members ("" when nothing was unwrapped)."""
    if archive.kind != "zip":
        return ""
    top = [m for m in archive.members if "!" not in m.path]
    if len(top) != 1 or not is_archive_name(top[0].path):
        return ""
    inner = top[0]
    archive.kind = kind_of(inner.path)
    archive.filename = inner.path
    archive.members = [m for m in archive.members if m is not inner]
    return inner.path + "!"


_PROJECT_FILES = ("/setup.py", "/pyproject.toml", "/setup.cfg", "/PKG-INFO")


def _assign_rel_paths(archive: Archive, wrapper: str) -> None:
    """Package-relative paths: the wrapper prefix and an sdist's single top folder stripped
    (only when that folder holds the project files: setup.py, pyproject.toml, setup.cfg or
    PKG-INFO; a lone ``mypkg/`` is the package itself, not a wrapper). A leading ``./`` is
    dropped, and macOS ``._`` metadata files do not count as a second top folder.

    Members of archives nested inside the package keep their ``outer!inner`` form, so they
    are never mistaken for the package's own ``setup.py`` or ``__init__.py``."""
    for m in archive.members:
        m.rel = m.path[len(wrapper) :] if wrapper and m.path.startswith(wrapper) else m.path
        while m.rel.startswith("./"):  # `tar -czf x.tar.gz .` names every member ./...
            m.rel = m.rel[2:]
    # macOS tar adds an AppleDouble ``._name`` beside each file: metadata, never a root
    own = [
        m
        for m in archive.members
        if "!" not in m.rel and not m.rel.rpartition("/")[2].startswith("._")
    ]
    roots = {m.rel.split("/", 1)[0] for m in own}
    if (
        archive.kind in ("sdist", "zip", "directory")
        and len(roots) == 1
        and all("/" in m.rel for m in own)
        and any(m.rel.count("/") == 1 and m.rel.endswith(_PROJECT_FILES) for m in own)
    ):
        root = roots.pop() + "/"
        for m in archive.members:
            if m.rel.startswith(root):
                m.rel = m.rel[len(root) :]


def read_directory(root: Path, limits: Limits) -> Archive:
    """Read an unpacked package directory, never following symbolic links."""
    archive = Archive(kind="directory", filename=str(root))
    budget = _Budget(limits)
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            archive.skips.append(Skip(str(current), f"not read: {exc.strerror}"))
            continue
        for entry in entries:
            rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
            if entry.is_symlink():
                archive.anomalies.append(Skip(rel, "symbolic link"))
                archive.skips.append(Skip(rel, "not followed: symbolic link"))
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in (".git", "__pycache__", ".tox", ".venv", "node_modules"):
                    stack.append(Path(entry.path))
                continue
            if not entry.is_file(follow_symlinks=False):
                archive.skips.append(Skip(rel, "not read: not a regular file"))
                continue
            budget.add_member()
            size = entry.stat(follow_symlinks=False).st_size
            if size > limits.max_member_bytes:
                archive.skips.append(Skip(rel, f"not read: {size} bytes, over the member limit"))
                continue
            try:
                payload = Path(entry.path).read_bytes()
            except OSError as exc:
                archive.skips.append(Skip(rel, f"not read: {exc.strerror}"))
                continue
            budget.add_bytes(len(payload))
            archive.members.append(Member(path=_display(rel), data=payload))
    _assign_rel_paths(archive, "")
    return archive


MISSING = "not read: listed but not installed (missing)"


def read_listed(
    base: Path, names: Iterable[str], root: Path, limits: Limits, *, kind: str, filename: str
) -> Archive:
    """Read the files an installed distribution's RECORD lists (``names``, relative to
    ``base`` or absolute) as one package, never following symbolic links.

    Only files inside ``root`` (the environment's prefix) are read: a name that escapes it, or
    reaches outside through a linked directory, is an anomaly and is not opened. Missing files
    and non-regular files are skips; the member count and size limits apply as to an archive.
    Members keep the name as listed, so ``pkg/__init__.py`` has the layout of a wheel."""
    archive = Archive(kind=kind, filename=filename)
    budget = _Budget(limits)
    top = os.path.normpath(os.path.abspath(root))
    real_top = os.path.realpath(top)
    seen: set[str] = set()
    for name in names:
        shown = _display(posixpath.normpath(name.replace("\\", "/")))
        path = os.path.normpath(os.path.join(os.path.abspath(base), name))
        if path in seen:
            continue
        seen.add(path)
        if os.path.commonpath([top, path]) != top:
            archive.anomalies.append(Skip(shown, "listed file lies outside the environment"))
            archive.skips.append(Skip(shown, "not read: outside the environment"))
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            archive.skips.append(Skip(shown, MISSING))
            continue
        except OSError as exc:
            archive.skips.append(Skip(shown, f"not read: {exc.strerror or exc}"))
            continue
        if stat.S_ISLNK(st.st_mode):
            archive.anomalies.append(Skip(shown, "symbolic link"))
            archive.skips.append(Skip(shown, "not followed: symbolic link"))
            continue
        if not stat.S_ISREG(st.st_mode):
            archive.skips.append(Skip(shown, "not read: not a regular file"))
            continue
        if os.path.commonpath([real_top, os.path.realpath(path)]) != real_top:
            archive.anomalies.append(Skip(shown, "listed file resolves outside the environment"))
            archive.skips.append(Skip(shown, "not read: outside the environment"))
            continue
        budget.add_member()
        if st.st_size > limits.max_member_bytes:
            archive.skips.append(
                Skip(shown, f"not read: {st.st_size} bytes, over the member limit")
            )
            continue
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as fh:
                payload = fh.read(limits.max_member_bytes + 1)
        except OSError as exc:
            archive.skips.append(Skip(shown, f"not read: {exc.strerror or exc}"))
            continue
        if len(payload) > limits.max_member_bytes:
            archive.skips.append(Skip(shown, "not read: grew over the member limit"))
            continue
        budget.add_bytes(len(payload))
        archive.members.append(Member(path=shown, data=payload, rel=shown))
    return archive


def read_single_file(path: Path, limits: Limits) -> Archive:
    """A lone source file (e.g. a setup.py) is a one-member package."""
    data = path.read_bytes()
    if len(data) > limits.max_member_bytes:
        raise UnsafeArchiveError(f"{path.name}: {len(data)} bytes, over the member limit")
    return Archive(kind="file", members=[Member(path.name, data, path.name)], filename=path.name)
