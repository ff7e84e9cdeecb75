"""Unit tests of the in-memory archive reader (pkgvet.archive) on valid and hostile input.

Every archive is built here, in memory; nothing is extracted and no package code runs.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import sys
import tarfile
import zipfile

import pytest

from conftest import make_tar, make_zip, sdist
from hostile_archives import (
    ZipEntry,
    encrypted_zip,
    make_raw_tar,
    make_raw_zip,
    no_writes,
    tar_member,
    zip_symlink,
)
from pkgvet.archive import (
    _CappedReader,
    _display,
    is_archive_name,
    kind_of,
    read_archive,
    read_directory,
    read_single_file,
)
from pkgvet.config import Limits
from pkgvet.errors import ArchiveError, UnsafeArchiveError

MiB = 1024 * 1024
SETUP = b"import os\nos.system('echo hi')\n"
PKG_INFO = b"Metadata-Version: 2.1\nName: zzpkg\nVersion: 1.0\n"
SDIST_FILES = {"zzpkg-1.0/setup.py": SETUP, "zzpkg-1.0/PKG-INFO": PKG_INFO,
               "zzpkg-1.0/zzpkg/__init__.py": b"X = 1\n"}


def read(data: bytes, filename: str = "zzpkg-1.0.tar.gz", limits: Limits | None = None,
         password: bytes | None = b"infected"):
    with no_writes():
        return read_archive(data, filename, limits or Limits(), password)


def rels(archive) -> set[str]:
    return {m.rel for m in archive.members}


# -- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "filename"), [
    ("w:gz", "zzpkg-1.0.tar.gz"),
    ("w:gz", "zzpkg-1.0.tgz"),
    ("w:bz2", "zzpkg-1.0.tar.bz2"),
    ("w:bz2", "zzpkg-1.0.tbz2"),
    ("w:xz", "zzpkg-1.0.tar.xz"),
    ("w", "zzpkg-1.0.tar"),
])
def test_tar_formats_are_read(mode: str, filename: str) -> None:
    archive = read(make_tar(SDIST_FILES, mode), filename)
    assert archive.kind == "sdist"
    assert rels(archive) == {"setup.py", "PKG-INFO", "zzpkg/__init__.py"}
    assert archive.skips == [] and archive.anomalies == []
    setup = next(m for m in archive.members if m.rel == "setup.py")
    assert setup.path == "zzpkg-1.0/setup.py" and setup.data == SETUP


def test_zip_sdist_is_read_and_its_root_stripped() -> None:
    archive = read(make_zip(SDIST_FILES), "zzpkg-1.0.zip")
    assert archive.kind == "zip"
    assert rels(archive) == {"setup.py", "PKG-INFO", "zzpkg/__init__.py"}


def test_dot_slash_names_and_appledouble_files_keep_the_root_stripped() -> None:
    # `tar -czf x.tar.gz .` on macOS: every name starts with ./ and ._ files sit beside
    files = {"./" + k: v for k, v in SDIST_FILES.items()}
    files["./._zzpkg-1.0"] = b"\x00\x05\x16\x07"
    archive = read(make_tar(files), "zzpkg-1.0.tar.gz")
    assert rels(archive) == {"setup.py", "PKG-INFO", "zzpkg/__init__.py", "._zzpkg-1.0"}


def test_wheel_is_read_without_stripping() -> None:
    whl = make_zip({"zzpkg/__init__.py": SETUP, "zzpkg-1.0.dist-info/METADATA": PKG_INFO,
                    "zzpkg-1.0.dist-info/RECORD": b""})
    archive = read(whl, "zzpkg-1.0-py3-none-any.whl")
    assert archive.kind == "wheel"
    assert "zzpkg/__init__.py" in rels(archive)
    assert "zzpkg-1.0.dist-info/METADATA" in rels(archive)


def test_egg_is_read() -> None:
    egg = make_zip({"zzpkg/__init__.py": SETUP, "EGG-INFO/PKG-INFO": PKG_INFO})
    archive = read(egg, "zzpkg-1.0-py3.11.egg")
    assert archive.kind == "egg"
    assert rels(archive) == {"zzpkg/__init__.py", "EGG-INFO/PKG-INFO"}


def test_content_decides_the_format_not_the_name() -> None:
    archive = read(make_zip(SDIST_FILES), "zzpkg-1.0.tar.gz")  # a zip named .tar.gz
    assert "setup.py" in rels(archive)


@pytest.mark.parametrize(("name", "kind"), [
    ("a-1.tar.gz", "sdist"), ("a-1.TGZ", "sdist"), ("a-1.tar.bz2", "sdist"),
    ("a-1-py3-none-any.whl", "wheel"), ("a-1.egg", "egg"), ("a-1.zip", "zip"),
])
def test_kind_of(name: str, kind: str) -> None:
    assert is_archive_name(name)
    assert kind_of(name) == kind


def test_non_archive_names() -> None:
    assert not is_archive_name("setup.py")
    assert not is_archive_name("README.gz")


@pytest.mark.parametrize("data", [b"", b"hello world", b"\x00" * 1024, b"PK", b"\x1f"])
def test_unknown_format_is_an_archive_error(data: bytes) -> None:
    with pytest.raises(ArchiveError, match=r"unknown format|corrupt|truncated"):
        read(data, "zzpkg-1.0.tar.gz")


def test_empty_zip_has_no_members() -> None:
    archive = read(make_zip({}), "zzpkg-1.0.zip")
    assert archive.members == []


# -- size and count limits ------------------------------------------------------------------


def test_archive_over_max_archive_bytes() -> None:
    data = make_tar(SDIST_FILES)
    with pytest.raises(UnsafeArchiveError, match=r"over the .*-byte limit"):
        read(data, limits=Limits(max_archive_bytes=len(data) - 1))


@pytest.mark.parametrize("builder", [make_tar, make_zip])
def test_member_count_over_limit(builder) -> None:
    files = {f"zzpkg-1.0/f{i}.txt": b"x" for i in range(11)}
    with pytest.raises(UnsafeArchiveError, match="10"):
        read(builder(files), limits=Limits(max_members=10))


def test_member_count_exactly_at_limit_is_fine() -> None:
    files = {f"zzpkg-1.0/f{i}.txt": b"x" for i in range(10)}
    assert len(read(make_tar(files), limits=Limits(max_members=10)).members) == 10


@pytest.mark.parametrize("builder", [make_tar, make_zip])
def test_total_uncompressed_bytes_over_limit(builder) -> None:
    files = {f"zzpkg-1.0/f{i}.txt": os.urandom(3000) for i in range(5)}
    with pytest.raises(UnsafeArchiveError, match="exceeds 10000 bytes"):
        read(builder(files), limits=Limits(max_total_bytes=10_000))


@pytest.mark.parametrize("builder", [make_tar, make_zip])
def test_member_over_limit_is_skipped_with_a_reason(builder) -> None:
    files = {"zzpkg-1.0/big.bin": os.urandom(5000), **SDIST_FILES}
    archive = read(builder(files), limits=Limits(max_member_bytes=1000))
    assert "big.bin" not in rels(archive)
    assert "setup.py" in rels(archive)
    (skip,) = archive.skips
    assert skip.path == "zzpkg-1.0/big.bin"
    assert "5000 bytes, over the member limit" in skip.reason


def test_zip_ratio_bomb_is_refused() -> None:
    data = make_zip({"zzpkg-1.0/zeros.bin": bytes(4 * MiB), **SDIST_FILES})
    assert len(data) < 20_000
    with pytest.raises(UnsafeArchiveError, match="compression ratio over 200"):
        read(data, "zzpkg-1.0.zip")


def test_small_highly_compressible_member_is_not_a_bomb() -> None:
    # Below the 1 MiB floor the ratio is not checked: small files of zeros are normal.
    archive = read(make_zip({"zzpkg-1.0/zeros.bin": bytes(512 * 1024)}), "zzpkg-1.0.zip")
    assert archive.members[0].size == 512 * 1024


def test_zip_member_lying_small_about_its_size_is_not_inflated() -> None:
    data = make_raw_zip([ZipEntry(b"zzpkg-1.0/a.py", b"x" * 100_000, declared_size=10),
                         ZipEntry(b"zzpkg-1.0/setup.py", SETUP)])
    archive = read(data, "zzpkg-1.0.zip")
    assert rels(archive) == {"setup.py"}
    assert any("corrupt member" in s.reason for s in archive.skips)


def test_zip_overlapping_entries_bomb_hits_the_total_limit() -> None:
    data = make_raw_zip([ZipEntry(b"zzpkg-1.0/a.txt", bytes(512 * 1024))], overlap=50)
    assert len(data) < 10_000
    with pytest.raises(UnsafeArchiveError, match="exceeds"):
        read(data, "zzpkg-1.0.zip", Limits(max_total_bytes=4 * MiB))


def _tar_of_zeros(size: int, count: int = 1, trailing: int = 0) -> bytes:
    """A tar.gz of ``count`` members of ``size`` zero bytes each, followed by ``trailing`` zero
    bytes after the tar's end-of-archive blocks."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for i in range(count):
            info = tarfile.TarInfo(f"zzpkg-1.0/zeros{i}.bin")
            info.size = size
            tf.addfile(info, io.BytesIO(bytes(size)))
    return gzip.compress(raw.getvalue() + bytes(trailing), 9)


def test_gzip_stream_bomb_ratio_is_refused() -> None:
    data = _tar_of_zeros(16 * MiB)
    assert len(data) < 100_000
    with pytest.raises(UnsafeArchiveError, match="compression ratio"):
        read(data)


def test_member_declaring_more_than_the_total_limit_is_refused_from_its_header() -> None:
    # The member is under the member limit, but its header alone is over the total limit.
    data = _tar_of_zeros(16 * MiB)
    with pytest.raises(UnsafeArchiveError, match="declares 16777216 bytes, over the total limit"):
        read(data, limits=Limits(max_total_bytes=2 * MiB))


def test_gzip_stream_bomb_stops_at_the_total_cap() -> None:
    # No member declares much; the zeros after the end-of-archive blocks are drained (to reach
    # the gzip trailer) and the decompressed stream is capped there.
    data = _tar_of_zeros(1024, trailing=16 * MiB)
    assert len(data) < 100_000
    with pytest.raises(UnsafeArchiveError, match="decompressed stream exceeds"):
        read(data, limits=Limits(max_total_bytes=2 * MiB))


def test_gzip_stream_bomb_of_skipped_members_is_still_capped() -> None:
    # Each member is over the member limit (skipped, never added to the total) but under the
    # total limit; tarfile still reads through them, and the stream cap stops it.
    data = _tar_of_zeros(MiB + MiB // 2, count=8)
    with pytest.raises(UnsafeArchiveError, match="decompressed stream exceeds"):
        read(data, limits=Limits(max_total_bytes=2 * MiB, max_member_bytes=MiB))


def test_capped_reader_counts_every_byte() -> None:
    reader = _CappedReader(io.BytesIO(bytes(100)), cap=50, compressed=100, ratio=200.0)
    assert reader.read(50) == bytes(50)
    with pytest.raises(UnsafeArchiveError, match="total size limit"):
        reader.read(10)
    buf = bytearray(8)
    assert _CappedReader(io.BytesIO(b"abc"), 10, 3, 200.0).readinto(buf) == 3
    assert bytes(buf[:3]) == b"abc"


# -- nesting and wrapping -------------------------------------------------------------------


def test_nested_archives_are_read_within_the_limit() -> None:
    inner = make_zip({"inner.py": SETUP})
    archive = read(make_tar({**SDIST_FILES, "zzpkg-1.0/vendor/inner.zip": inner}))
    paths = {m.path for m in archive.members}
    assert "zzpkg-1.0/vendor/inner.zip!inner.py" in paths
    assert "zzpkg-1.0/vendor/inner.zip" in paths  # kept too, for file-level rules
    nested = next(m for m in archive.members if m.path.endswith("!inner.py"))
    assert "!" in nested.rel  # never mistaken for the package's own files


def _zip_in_zip_in_zip() -> bytes:
    z3 = make_zip({"deepest.py": SETUP})
    z2 = make_zip({"level3.zip": z3})
    z1 = make_zip({"level2.zip": z2})
    return make_zip({"zzpkg-1.0/level1.zip": z1, **SDIST_FILES})


def test_nesting_within_max_nesting_is_read() -> None:
    archive = read(_zip_in_zip_in_zip(), "zzpkg-1.0.zip", Limits(max_nesting=3))
    assert any(m.path.endswith("level3.zip!deepest.py") for m in archive.members)


def test_nesting_deeper_than_max_nesting_is_not_read() -> None:
    archive = read(_zip_in_zip_in_zip(), "zzpkg-1.0.zip", Limits(max_nesting=2))
    assert not any(m.path.endswith("!deepest.py") for m in archive.members)


def test_nesting_deeper_than_max_nesting_leaves_a_skip() -> None:
    archive = read(_zip_in_zip_in_zip(), "zzpkg-1.0.zip", Limits(max_nesting=2))
    assert any("level3.zip" in s.path and "nest" in s.reason for s in archive.skips)


def test_unreadable_nested_archive_is_a_skip() -> None:
    archive = read(make_tar({**SDIST_FILES, "zzpkg-1.0/data.zip": b"PK\x03\x04garbage"}))
    assert "setup.py" in rels(archive)
    assert any(s.path == "zzpkg-1.0/data.zip" and "nested archive unreadable" in s.reason
               for s in archive.skips)


def test_bomb_nested_inside_an_archive_is_refused() -> None:
    bomb = make_zip({"zeros.bin": bytes(4 * MiB)})
    with pytest.raises(UnsafeArchiveError, match="ratio"):
        read(make_tar({**SDIST_FILES, "zzpkg-1.0/inner.zip": bomb}))


def test_nested_members_count_against_the_same_budget() -> None:
    inner = make_zip({f"f{i}.txt": b"x" for i in range(8)})
    with pytest.raises(UnsafeArchiveError, match="more than 10 members"):
        read(make_tar({**SDIST_FILES, "zzpkg-1.0/inner.zip": inner}), limits=Limits(max_members=10))


def test_zip_wrapping_one_sdist_is_that_sdist() -> None:
    archive = read(make_zip({"zzpkg-1.0.tar.gz": make_tar(SDIST_FILES)}), "zzpkg-1.0.zip")
    assert archive.kind == "sdist"
    assert archive.filename == "zzpkg-1.0.tar.gz"
    assert rels(archive) == {"setup.py", "PKG-INFO", "zzpkg/__init__.py"}


# -- encryption ---------------------------------------------------------------------------


def test_zipcrypto_wrapper_with_password_infected_is_read() -> None:
    data = encrypted_zip({"zzpkg-1.0.tar.gz": make_tar(SDIST_FILES)})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:  # really encrypted
        assert zf.infolist()[0].flag_bits & 0x1
        with pytest.raises(RuntimeError):
            zf.read("zzpkg-1.0.tar.gz")
    archive = read(data, "zzpkg-1.0.zip")
    assert archive.kind == "sdist"
    assert "setup.py" in rels(archive)


@pytest.mark.parametrize("password", [b"wrong", b"", None])
def test_zipcrypto_with_wrong_or_no_password_is_a_clear_error(password) -> None:
    data = encrypted_zip({"zzpkg-1.0.tar.gz": make_tar(SDIST_FILES)})
    with pytest.raises(ArchiveError, match="encrypted and the password does not fit"):
        read(data, "zzpkg-1.0.zip", password=password)


def _aes_zip(password: bytes) -> bytes:
    pyzipper = pytest.importorskip("pyzipper")
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(password)
        zf.writestr("zzpkg-1.0.tar.gz", make_tar(SDIST_FILES))
    return buf.getvalue()


def test_aes_zip_is_read_with_pyzipper() -> None:
    archive = read(_aes_zip(b"infected"), "zzpkg-1.0.zip")
    assert archive.kind == "sdist" and "setup.py" in rels(archive)


def test_aes_zip_with_wrong_password_is_a_clear_error() -> None:
    with pytest.raises(ArchiveError, match="password does not fit"):
        read(_aes_zip(b"infected"), "zzpkg-1.0.zip", password=b"wrong")


def test_aes_zip_without_pyzipper_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _aes_zip(b"infected")
    monkeypatch.setitem(sys.modules, "pyzipper", None)  # import pyzipper -> ImportError
    with pytest.raises(ArchiveError, match=r"AES-encrypted zip.*pip install 'pkgvet\[aes\]'"):
        read(data, "zzpkg-1.0.zip")


# -- unsafe members -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "reason"), [
    ("../evil.py", "path traversal"),
    ("zzpkg-1.0/../../evil.py", "path traversal"),
    ("..\\evil.py", "path traversal"),
    ("/etc/x", "absolute path"),
    ("C:\\Windows\\evil.py", "absolute path"),
    ("\\\\server\\share\\evil.py", "absolute path"),
])
@pytest.mark.parametrize("builder", [make_tar, make_zip])
def test_escaping_paths_are_anomalies_and_never_read(builder, name: str, reason: str) -> None:
    archive = read(builder({**SDIST_FILES, name: b"import os\nos.system('rm -rf /')\n"}))
    assert not any(b"rm -rf" in m.data for m in archive.members)
    assert any(reason in a.reason for a in archive.anomalies)
    assert any(s.reason.startswith("not read: ") and reason in s.reason for s in archive.skips)
    assert "setup.py" in rels(archive)


def test_tar_links_are_never_followed() -> None:
    data = make_raw_tar([
        tar_member("zzpkg-1.0/setup.py", SETUP),
        tar_member("zzpkg-1.0/passwd.py", kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
        tar_member("zzpkg-1.0/copy.py", kind=tarfile.LNKTYPE, linkname="zzpkg-1.0/setup.py"),
    ])
    archive = read(data)
    assert rels(archive) == {"setup.py"}
    assert {a.reason for a in archive.anomalies} == {
        "symbolic link to /etc/passwd", "hard link to zzpkg-1.0/setup.py"}
    assert {(s.path, s.reason) for s in archive.skips} == {
        ("zzpkg-1.0/passwd.py", "not followed: symbolic link"),
        ("zzpkg-1.0/copy.py", "not followed: hard link")}


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_devices_and_fifos_are_not_read(kind: bytes) -> None:
    archive = read(make_raw_tar([tar_member("zzpkg-1.0/setup.py", SETUP),
                                 tar_member("zzpkg-1.0/dev", kind=kind)]))
    assert rels(archive) == {"setup.py"}
    assert archive.skips[0].path == "zzpkg-1.0/dev"
    assert "device, fifo or special member" in archive.skips[0].reason


def test_zip_symlink_is_never_followed() -> None:
    data = make_raw_zip([ZipEntry(b"zzpkg-1.0/setup.py", SETUP),
                         zip_symlink("zzpkg-1.0/passwd.py", "/etc/passwd")])
    archive = read(data, "zzpkg-1.0.zip")
    assert rels(archive) == {"setup.py"}
    assert archive.anomalies[0].reason == "symbolic link"
    assert archive.skips[0].reason == "not followed: symbolic link"


def test_zip_fifo_is_not_read() -> None:
    fifo = ZipEntry(b"zzpkg-1.0/fifo", b"", create_system=3, external_attr=(0o010644) << 16)
    archive = read(make_raw_zip([ZipEntry(b"zzpkg-1.0/setup.py", SETUP), fifo]), "x.zip")
    assert rels(archive) == {"setup.py"}
    assert archive.skips[0].reason == "not read: not a regular file"


# -- names ----------------------------------------------------------------------------------


def test_latin1_tar_names_are_shown_as_valid_text() -> None:
    data = make_raw_tar([tar_member("zzpkg-1.0/caf\xe9.py", SETUP),
                         tar_member("zzpkg-1.0/setup.py", SETUP)],
                        fmt=tarfile.GNU_FORMAT, encoding="latin-1")
    archive = read(data)
    names = [m.path for m in archive.members]
    assert "zzpkg-1.0/caf\ufffd.py" in names
    for n in names:
        n.encode("utf-8")  # no lone surrogates left


def test_cp437_zip_names_are_decoded() -> None:
    name = "zzpkg-1.0/caf\u00e9.py".encode("cp437")
    assert b"\x82" in name
    archive = read(make_raw_zip([ZipEntry(name, SETUP), ZipEntry(b"zzpkg-1.0/setup.py", SETUP)]),
                   "zzpkg-1.0.zip")
    assert "caf\u00e9.py" in rels(archive)


def test_zip_with_invalid_utf8_name_is_a_clear_error() -> None:
    data = make_raw_zip([ZipEntry(b"zzpkg-1.0/\xff\xfe.py", SETUP, utf8=True)])
    with pytest.raises(ArchiveError, match="corrupt or truncated zip"):
        read(data, "zzpkg-1.0.zip")


@pytest.mark.parametrize("raw", ["a\x1b[31mb", "a\nb", "a\rb\x07", "a\udce9b", "a\u202eb"])
def test_display_escapes_control_characters(raw: str) -> None:
    shown = _display(raw)
    assert shown.isprintable()
    shown.encode("utf-8")


def test_control_characters_in_member_names_are_escaped() -> None:
    archive = read(make_tar({"zzpkg-1.0/\x1b[2Jevil\n.py": SETUP, **SDIST_FILES}))
    assert "zzpkg-1.0/\\x1b[2Jevil\\x0a.py" in {m.path for m in archive.members}


# -- truncation and corruption --------------------------------------------------------------


def _many_member_sdist() -> bytes:
    rnd = random.Random(0)
    files = {f"zzpkg-1.0/m{i:02}.py": SETUP + rnd.randbytes(2000).hex().encode()
             for i in range(20)}
    return make_tar({**SDIST_FILES, **files})


def test_truncated_gzip_gives_partial_analysis() -> None:
    data = _many_member_sdist()
    archive = read(data[: len(data) // 2])
    assert 0 < len(archive.members) < 23
    (skip,) = archive.skips
    assert "truncated or corrupt" in skip.reason and "partial analysis" in skip.reason


def test_gzip_truncated_before_any_member_is_a_clear_error() -> None:
    data = _many_member_sdist()
    with pytest.raises(ArchiveError, match="corrupt or truncated tar"):
        read(data[:40])


def test_corrupt_gzip_body_is_an_error_or_a_partial_analysis() -> None:
    data = bytearray(_many_member_sdist())
    data[20] ^= 0xFF  # early in the deflate stream: the decoder fails
    with pytest.raises(ArchiveError, match="corrupt or truncated tar"):
        read(bytes(data))


def test_gzip_crc_mismatch_is_reported() -> None:
    # Regression: the reader stopped at the tar end-of-archive blocks and never drained the
    # gzip stream, so a CRC mismatch went unnoticed.
    data = bytearray(_many_member_sdist())
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer; every member is intact
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(bytes(data))
    try:
        archive = read(bytes(data))
    except ArchiveError as exc:
        assert "corrupt" in str(exc)
    else:
        assert any("corrupt" in s.reason for s in archive.skips)


@pytest.mark.parametrize("data", [
    b"PK\x03\x04" + b"garbage" * 100,
    b"PK\x05\x06" + b"\x00" * 10,
])
def test_corrupt_zip_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(ArchiveError, match="corrupt or truncated zip"):
        read(data, "zzpkg-1.0.zip")


def test_truncated_zip_is_a_clear_error() -> None:
    data = make_zip(SDIST_FILES)
    with pytest.raises(ArchiveError, match="corrupt or truncated zip"):
        read(data[: len(data) // 2], "zzpkg-1.0.zip")


def test_zip_member_with_corrupt_data_is_a_skip() -> None:
    data = bytearray(make_zip({"zzpkg-1.0/setup.py": SETUP * 50, "zzpkg-1.0/ok.py": b"x = 1\n"}))
    data[40] ^= 0xFF  # inside the first member's deflate stream
    archive = read(bytes(data), "zzpkg-1.0.zip")
    assert "zzpkg-1.0/ok.py" in rels(archive)  # setup.py unreadable: no project file seen
    assert any("corrupt member" in s.reason for s in archive.skips)


# -- directories and single files -----------------------------------------------------------


def test_directory_symlinks_are_not_followed(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("import os\nos.system('secret')\n")
    pkg = tmp_path / "zzpkg"
    pkg.mkdir()
    (pkg / "setup.py").write_bytes(SETUP)
    (pkg / "linked_dir").symlink_to(outside, target_is_directory=True)
    (pkg / "linked.py").symlink_to(outside / "secret.py")
    with no_writes():
        archive = read_directory(pkg, Limits())
    assert rels(archive) == {"setup.py"}
    assert {(s.path, s.reason) for s in archive.skips} == {
        ("linked_dir", "not followed: symbolic link"), ("linked.py", "not followed: symbolic link")}
    assert {a.path for a in archive.anomalies} == {"linked_dir", "linked.py"}


def test_directory_fifo_and_vcs_dirs_are_not_read(tmp_path) -> None:
    pkg = tmp_path / "zzpkg"
    (pkg / ".git").mkdir(parents=True)
    (pkg / ".git" / "hook.py").write_bytes(SETUP)
    (pkg / "setup.py").write_bytes(SETUP)
    os.mkfifo(pkg / "pipe.py")
    archive = read_directory(pkg, Limits())
    assert rels(archive) == {"setup.py"}
    skips = {(s.path, s.reason) for s in archive.skips}
    assert ("pipe.py", "not read: not a regular file") in skips


def test_directory_limits_apply(tmp_path) -> None:
    pkg = tmp_path / "zzpkg"
    pkg.mkdir()
    (pkg / "big.bin").write_bytes(os.urandom(5000))
    (pkg / "setup.py").write_bytes(SETUP)
    archive = read_directory(pkg, Limits(max_member_bytes=1000))
    assert rels(archive) == {"setup.py"}
    assert "over the member limit" in archive.skips[0].reason
    for i in range(5):
        (pkg / f"f{i}.py").write_bytes(b"x")
    with pytest.raises(UnsafeArchiveError, match="more than 3 members"):
        read_directory(pkg, Limits(max_members=3))


def test_single_file(tmp_path) -> None:
    (tmp_path / "setup.py").write_bytes(SETUP)
    archive = read_single_file(tmp_path / "setup.py", Limits())
    assert archive.kind == "file" and rels(archive) == {"setup.py"}
    with pytest.raises(UnsafeArchiveError, match="over the member limit"):
        read_single_file(tmp_path / "setup.py", Limits(max_member_bytes=5))


def test_sdist_helper_round_trip() -> None:
    archive = read(sdist("zzpkg", "1.0", {"setup.py": SETUP}))
    assert rels(archive) == {"PKG-INFO", "setup.py"}


def _outcome(data: bytes) -> object:
    try:
        a = read(data)
    except ArchiveError as exc:
        return type(exc).__name__, str(exc)
    return [(m.rel, m.data) for m in a.members], a.skips, a.anomalies


def _damaged_sdists() -> dict[str, bytes]:
    good = _many_member_sdist()
    tar = gzip.decompress(good)
    crc = bytearray(good)
    crc[-8] ^= 0xFF
    return {
        "intact": good,
        "truncated gzip": good[: len(good) // 2],
        "crc mismatch": bytes(crc),
        "trailing bytes": good + b"junk",
        "two gzip members": gzip.compress(tar[:4096], mtime=0) + gzip.compress(tar[4096:], mtime=0),
        "tar without end blocks": gzip.compress(tar[:-2048], mtime=0),
        "tar cut inside a member": gzip.compress(tar[: len(tar) // 2], mtime=0),
        "escaping name": make_tar({**SDIST_FILES, "../evil.py": b"x = 1\n"}),
    }


@pytest.mark.parametrize("case", list(_damaged_sdists()))
def test_small_gzip_inflated_at_once_reads_as_through_gzipfile(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small .tar.gz is inflated in one zlib call (a speed-up); members, skips, anomalies
    and errors are those of reading it through gzip.GzipFile."""
    import pkgvet.archive as archive_mod

    data = _damaged_sdists()[case]
    fast = _outcome(data)
    monkeypatch.setattr(archive_mod, "_INFLATE_AT_ONCE", 0)  # every stream through GzipFile
    assert _outcome(data) == fast
    monkeypatch.undo()
    damaged_gzip = case in ("truncated gzip", "crc mismatch", "trailing bytes", "two gzip members")
    # damaged or unusual gzip framing is left to GzipFile; an intact one is inflated at once
    assert (archive_mod._gunzip_small(data) is None) == damaged_gzip
