"""Property-based fuzzing of the archive reader through :func:`pkgvet.pipeline.scan_bytes`.

Inputs: random bytes behind archive magics; archives built from random member names, kinds
and contents (tar.gz/tar/bz2/xz/zip, nested); valid archives mutated by bit flips,
truncations, splices, duplications and targeted header-field overwrites (zip headers in place,
tar headers with a recomputed checksum before compression).

Property: ``scan_bytes`` always returns a :class:`ScanResult` (an error or findings, both fine),
never raises, and writes, runs and connects nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import make_tar, make_zip, sdist
from hostile_archives import (
    GOOD_SDIST,
    encrypted_zip,
    make_raw_tar,
    no_writes,
    tar_member,
    tree_snapshot,
)
from pkgvet.config import Limits, ScanConfig
from pkgvet.models import ScanResult, Verdict
from pkgvet.pipeline import scan_bytes

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

SMALL = Limits(max_total_bytes=64 * 1024, max_member_bytes=16 * 1024, max_members=20,
               max_nesting=1, max_decoded_bytes=64 * 1024, time_budget_s=10.0)
CONFIGS = st.sampled_from([ScanConfig(), ScanConfig(limits=SMALL)])
FILENAMES = st.sampled_from([
    "zzf-1.0.tar.gz", "zzf-1.0.tgz", "zzf-1.0.tar.bz2", "zzf-1.0.tar.xz", "zzf-1.0.tar",
    "zzf-1.0.zip", "zzf-1.0-py3-none-any.whl", "zzf-1.0-py3.11.egg", "zzf-1.0.bin",
])

# -- members ------------------------------------------------------------------------------

SOURCE_LINES = [
    "import os", "os.system('id')", 'exec(base64.b64decode("cHJpbnQoMSk="))', "import base64",
    "print 'py2'", "x = `1`", "y = 0777", "(" * 250, "def f(:", "\x00", "# coding: latin-1",
    "# coding: utf-16", "\ufeff", "from subprocess import Popen as P", "P(['sh'])",
    "__import__('o' + 's').system('x')", "getattr(os, 'sys' + 'tem')('x')",
    "setup(name='zzf', cmdclass={'install': I})", "class I(install):", "    def run(self): pass",
    "eval(''.join(chr(c) for c in [112, 114, 105, 110, 116]))", "\t\tif 1:", "'''",
    "exec(zlib.decompress(bytes.fromhex('789c2b28cacc2bd13034d4040008e2021a')))",
    "import zlib", "s = 'QUFB' * 40", "exec(s[::-1])", "x = 1 +" * 30,
]
METADATA_LINES = [
    "Metadata-Version: 2.1", "Name: zzf", "Version: 1.0", "Version: 99.0.0", "Name: reqests",
    "Summary: x", "Author: ", "Requires-Dist: requests", "[project]", 'name = "zzf"',
    "[metadata]", "name = zzf", "version = %(x)s", "[tool.poetry]", "authors = [1]", "\xff\xfe",
    'dependencies = "x"', "[options]", "install_requires =\n  a\n  b",
]
python_text = st.lists(st.sampled_from(SOURCE_LINES), max_size=8).map("\n".join)
metadata_text = st.lists(st.sampled_from(METADATA_LINES), max_size=8).map("\n".join)
contents = st.one_of(
    st.binary(max_size=300),
    python_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
    python_text.map(lambda s: s.encode("latin-1", "replace")),
    metadata_text.map(lambda s: s.encode("utf-8")),
)
base_names = st.one_of(
    st.sampled_from([
        "setup.py", "PKG-INFO", "pyproject.toml", "setup.cfg", "zzf/__init__.py", "evil.pth",
        "zzf-1.0.dist-info/METADATA", "EGG-INFO/PKG-INFO", "run.sh", "inner.zip",
        "inner.tar.gz", "../evil.py", "/etc/x", "C:\\x.py", "a/../../b.py", "", ".", "./x.py",
        "dir/", "a" * 300 + ".py", "x!y.py", "\x1b[2J.py", "caf\xe9.py",
    ]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            min_size=1, max_size=40),
)
member_names = st.tuples(st.sampled_from(["", "zzf-1.0/"]), base_names).map("".join)
TAR_KINDS = st.sampled_from([tarfile.REGTYPE] * 6 + [tarfile.SYMTYPE, tarfile.LNKTYPE,
                            tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE])


@st.composite
def built_archives(draw: st.DrawFn, depth: int = 0) -> bytes:
    """An archive of random members (maybe holding another random archive)."""
    fmt = draw(st.sampled_from(["w:gz", "w", "w:bz2", "w:xz", "zip"]))
    members = draw(st.lists(st.tuples(member_names, contents, TAR_KINDS, member_names),
                            max_size=7))
    if depth < 2 and draw(st.booleans()):
        members.append(("zzf-1.0/nested.zip" if draw(st.booleans()) else "nested.tar.gz",
                        draw(built_archives(depth + 1)), tarfile.REGTYPE, ""))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate zip names
            if fmt == "zip":
                return make_zip({n or "x": d for n, d, _, _ in members})
            return make_raw_tar([tar_member(n or "x", d, kind, link)
                                 for n, d, kind, link in members], mode=fmt)
    except (ValueError, UnicodeError, OverflowError, tarfile.TarError, zipfile.BadZipFile):
        return make_tar({})


# -- seeds and mutations ----------------------------------------------------------------------

_PY = {"setup.py": "import os, base64\nos.system('id')\nexec(base64.b64decode('cHJpbnQoMSk='))\n"}
SEED_FILES = {"zzf-1.0/setup.py": _PY["setup.py"].encode(),
              "zzf-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: zzf\nVersion: 1.0\n",
              "zzf-1.0/zzf/__init__.py": b"import subprocess\nsubprocess.call(['id'])\n"}
SEEDS = [
    GOOD_SDIST,
    sdist("zzf", "1.0", _PY),
    make_tar(SEED_FILES, "w"),
    make_tar(SEED_FILES, "w:bz2"),
    make_tar(SEED_FILES, "w:xz"),
    make_zip(SEED_FILES),
    make_zip({"zzf/__init__.py": SEED_FILES["zzf-1.0/setup.py"],
              "zzf-1.0.dist-info/METADATA": SEED_FILES["zzf-1.0/PKG-INFO"]}),
    make_tar({**SEED_FILES, "zzf-1.0/vendor/inner.zip": make_zip(SEED_FILES)}),
    make_zip({"zzf-1.0.tar.gz": sdist("zzf", "1.0", _PY)}),
    encrypted_zip({"zzf-1.0.tar.gz": sdist("zzf", "1.0", _PY)}),
    make_raw_tar([tar_member("zzf-1.0/setup.py", b"import os\n"),
                  tar_member("zzf-1.0/l", kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
                  tar_member("zzf-1.0/h", kind=tarfile.LNKTYPE, linkname="zzf-1.0/setup.py")]),
]
_ZIP_SIGS = (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x07\x08")
_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000]


def _fix_tar_checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % (sum(block[:512]) & 0o777777)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.one_of(st.sampled_from(SEEDS), built_archives())))
    for op in draw(st.lists(st.sampled_from(["flip", "truncate", "splice", "insert", "delete",
                                             "dup", "concat", "zipfield"]),
                            min_size=1, max_size=4)):
        n = len(data)
        i = draw(st.integers(0, n))
        if op == "flip" and n:
            data[min(i, n - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "splice":
            j = draw(st.integers(i, n))
            data[i:j] = draw(st.binary(max_size=64))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[i:draw(st.integers(i, n))]
        elif op == "dup":
            j = draw(st.integers(i, n))
            data[j:j] = data[i:j]
        elif op == "concat":
            data += draw(st.sampled_from(SEEDS))
        elif op == "zipfield":
            sites = [k for sig in _ZIP_SIGS for k in _find_all(data, sig)]
            if sites:
                at = draw(st.sampled_from(sites)) + draw(st.integers(4, 44))
                width = draw(st.sampled_from([1, 2, 4]))
                value = draw(st.sampled_from(_INTERESTING)) & ((1 << (8 * width)) - 1)
                data[at:at + width] = value.to_bytes(width, "little")
    return bytes(data)


def _find_all(data: bytearray, sig: bytes) -> list[int]:
    out, k = [], data.find(sig)
    while k >= 0 and len(out) < 64:
        out.append(k)
        k = data.find(sig, k + 1)
    return out


# tar header fields: (offset, width)
_TAR_FIELDS = [(0, 100), (100, 8), (124, 12), (136, 12), (156, 1), (157, 100), (257, 6),
               (263, 2), (329, 8), (337, 8), (345, 155)]


@st.composite
def hostile_tar_headers(draw: st.DrawFn) -> bytes:
    """A tar whose header fields are overwritten (checksums fixed so tarfile believes them),
    then compressed, so that the compression layer is valid and the tar layer hostile."""
    raw = bytearray(make_tar(SEED_FILES, "w"))
    headers = [k for k in range(0, len(raw) - 512, 512) if raw[k + 257:k + 262] == b"ustar"]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.sampled_from(headers))
        off, width = draw(st.sampled_from(_TAR_FIELDS))
        if off == 124:
            # Any declared size, up to the largest octal field and huge base-256 ones (once a
            # reader hang: test_hostile.test_member_declaring_a_huge_size_does_not_hang).
            value = draw(st.one_of(
                st.integers(0, 2**27).map(lambda v: b"%011o\x00" % v),
                st.integers(0, 8**11 - 1).map(lambda v: b"%011o\x00" % v),
                st.sampled_from([b"-1", b"", b"x" * 12, b"\x00" * 12, b"8" * 11,
                                 b"\x80" + b"\xff" * 11, b"\x80" + b"\x00" * 7 + b"\x40" * 4]),
            ))
        else:
            value = draw(st.one_of(
                st.binary(min_size=1, max_size=width),
                st.sampled_from([b"7" * 11, b"\x80" + b"\xff" * 7, b"-1", b"2", b"3", b"4",
                                 b"5", b"6", b"7", b"K", b"L", b"S", b"x", b"g", b"\x00" * 12,
                                 b"../../etc/passwd", b"/etc/passwd"]),
            ))[:width]
        raw[at + off:at + off + len(value)] = value
        block = bytearray(raw[at:at + 512])
        _fix_tar_checksum(block)
        raw[at:at + 512] = block
    return draw(st.sampled_from([gzip.compress, bytes]))(bytes(raw))


magic_prefixed = st.tuples(
    st.one_of(
        st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b\x08\x00", b"BZh9",
                         b"\xfd7zXZ\x00", b"\x1f\x8b"]),
        st.binary(min_size=257, max_size=257).map(lambda b: b + b"ustar\x0000"),  # tar header
    ),
    st.binary(max_size=2048),
).map(b"".join)


# -- the property ---------------------------------------------------------------------------

_WORK: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path):
    """Scans run with an empty temporary working directory, which must stay empty."""
    scan_bytes(GOOD_SDIST, "warm-up.tar.gz")  # lazy imports happen outside the guard
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    _WORK["cwd"] = cwd
    before = tree_snapshot(tmp_path)
    yield
    assert tree_snapshot(tmp_path) == before


def check_scan(data: bytes, filename: str, config: ScanConfig) -> ScanResult:
    with contextlib.chdir(_WORK["cwd"]), no_writes():
        result = scan_bytes(data, filename, config)
    assert isinstance(result, ScanResult)
    assert result.target == filename
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    if result.error is not None:
        assert isinstance(result.error, str) and result.error.strip()
        assert result.verdict is Verdict.ERROR
        assert result.findings == []
    else:
        assert result.verdict is not Verdict.ERROR
        assert 0 <= result.stats["bytes"] <= config.limits.max_total_bytes
    for s in result.skips:
        assert s.reason.strip()
    for f in result.findings:
        assert f.path.isprintable(), f.path
        assert f.line >= 0
    return result


def outcome(result: ScanResult) -> None:
    """Hypothesis statistics (--hypothesis-show-statistics): how far inputs got."""
    event("error" if result.error else "partial" if result.skips else "analysed")


@FUZZ
@given(data=magic_prefixed, filename=FILENAMES, config=CONFIGS)
def test_random_bytes(data: bytes, filename: str, config: ScanConfig) -> None:
    outcome(check_scan(data, filename, config))


@FUZZ
@given(data=built_archives(), filename=FILENAMES, config=CONFIGS)
def test_random_members(data: bytes, filename: str, config: ScanConfig) -> None:
    outcome(check_scan(data, filename, config))


@FUZZ
@given(data=mutated(), filename=FILENAMES, config=CONFIGS)
def test_mutated_archives(data: bytes, filename: str, config: ScanConfig) -> None:
    outcome(check_scan(data, filename, config))


@FUZZ
@given(data=hostile_tar_headers(), filename=FILENAMES, config=CONFIGS)
def test_hostile_tar_headers(data: bytes, filename: str, config: ScanConfig) -> None:
    outcome(check_scan(data, filename, config))


def test_seeds_are_valid_and_analysed() -> None:
    """The mutation seeds themselves scan cleanly, so mutations start from real archives."""
    for seed in SEEDS:
        name = "zzf-1.0.zip" if seed.startswith(b"PK") else "zzf-1.0.tar.gz"
        result = check_scan(seed, name, ScanConfig())
        assert result.error is None, result.error
        assert result.stats["python_files"] >= 1


def test_untouched_gzip_seed_round_trips() -> None:
    with tarfile.open(fileobj=io.BytesIO(SEEDS[1])) as tf:
        assert "zzf-1.0/setup.py" in tf.getnames()
