"""Shared test helpers: in-memory archive builders and the location of ../shared."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# the fixture packages' own tests are data, not tests of pkgvet
collect_ignore = ["fixtures"]


def shared_root() -> Path:
    """``$PKGVET_SHARED`` or ``../shared`` beside the repository."""
    return Path(os.environ.get("PKGVET_SHARED", REPO.parent / "shared"))


def malregistry() -> Path:
    return shared_root() / "datasets" / "pypi-malregistry"


@pytest.fixture
def malregistry_dir() -> Path:
    path = malregistry()
    if not (path / "MANIFEST.tsv").exists():
        pytest.skip(f"needs the shared malware dataset at {path} (absent here; CI has it)")
    return path


def make_tar(
    files: dict[str, bytes],
    mode: str = "w:gz",
    *,
    symlinks: dict[str, str] | None = None,
    dirs: tuple[str, ...] = (),
) -> bytes:
    """A tar archive (gzip by default) holding ``files`` as regular members, then ``dirs`` as
    directory members and ``symlinks`` (member name -> link target) as symbolic links. Names are
    stored exactly as given, so ``../x`` and ``/abs`` members can be built."""
    buf = io.BytesIO()
    gz = mode == "w:gz"  # gzip after, with a fixed header time: the same files, the same bytes
    with tarfile.open(fileobj=buf, mode="w" if gz else mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0) if gz else buf.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            # a fixed member time (writestr of a name stamps the current one): the same bytes
            # on every call, which hypothesis needs to replay what it drew
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def sdist(name: str, version: str, files: dict[str, str | bytes]) -> bytes:
    """An sdist ``name-version.tar.gz`` with a PKG-INFO and the given files below its root."""
    root = f"{name}-{version}/"
    members: dict[str, bytes] = {
        root + "PKG-INFO": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            "Summary: test package\nAuthor: Test\n").encode(),
    }
    for path, data in files.items():
        members[root + path] = data.encode() if isinstance(data, str) else data
    return make_tar(members)


def realistic_clean_sdist() -> bytes:
    """A small benign sdist shaped like the ones setuptools builds
    (``tests/fixtures/packages/zzclean-1.0``: metadata, a ``src`` package of four modules, tests,
    a README, a licence and the egg-info): the trained model judges the whole package, so the
    tests' clean package has to look like a real one, not like a five-file placeholder."""
    root = FIXTURES / "packages" / "zzclean-1.0"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return make_tar(
        {f"{root.name}/{p.relative_to(root).as_posix()}": p.read_bytes() for p in files}
    )


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """Admin URL of a PostgreSQL server for tests: ``$PKGVET_TEST_POSTGRES_URL``, or a throwaway
    cluster from Debian's binaries (``.ci/run`` installs them); skips when there is neither."""
    from service_helpers import postgres_binaries, postgres_cluster

    url = os.environ.get("PKGVET_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if postgres_binaries() is None:
        pytest.skip(
            "PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin/initdb); "
            "'apt-get install postgresql' or set PKGVET_TEST_POSTGRES_URL (.ci/run installs them)"
        )
    with postgres_cluster() as admin:
        yield admin


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database for a store: a SQLite file path, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "results.db")
    pytest.importorskip("psycopg")
    from service_helpers import fresh_database

    admin: str = request.getfixturevalue("postgres_admin")
    return fresh_database(admin)
