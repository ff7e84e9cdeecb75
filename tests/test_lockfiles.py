"""Lock files (pylock.toml, poetry.lock, uv.lock) and pyproject.toml as ``scan -r`` inputs:
parsed as TOML data (nothing runs), pins and sha256 hashes passed on, local/VCS sources
skipped, ranges refused; and end to end against the loopback index."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import realistic_clean_sdist
from pkgvet.cli import cli
from pkgvet.lockfiles import NOT_PINNED, file_format, parse_any
from pkgvet.requirements import Entry, Parsed, RequirementsError
from test_collect import FakeIndex, cache, index  # noqa: F401  (fixtures)

A = "a" * 64
B = "b" * 64


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _pins(parsed: Parsed) -> dict[str, Entry]:
    return {e.name: e for e in parsed.entries if e.name and e.problem is None}


def test_format_from_file_name() -> None:
    assert file_format(Path("pylock.toml")) == "pylock"
    assert file_format(Path("x/pylock.dev.toml")) == "pylock"
    assert file_format(Path("pylock.a.b.toml")) == "requirements"  # PEP 751: one name part
    assert file_format(Path("poetry.lock")) == "poetry"
    assert file_format(Path("uv.lock")) == "uv"
    assert file_format(Path("pyproject.toml")) == "pyproject"
    assert file_format(Path("requirements-dev.txt")) == "requirements"
    assert file_format(Path("other.toml")) == "requirements"


def test_pylock(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pylock.toml",
        f"""
lock-version = "1.0"
created-by = "test"
extras = ["fast"]
dependency-groups = ["dev"]

[[packages]]
name = "zzone"
version = "1.0"
index = "https://example.invalid/simple"
sdist = {{ name = "zzone-1.0.tar.gz", url = "https://x.invalid/z", hashes = {{ sha256 = "{A}" }} }}
wheels = [
  {{ name = "zzone-1.0-py3-none-any.whl", hashes = {{ sha256 = "{B.upper()}" }} }},
]

[[packages]]
name = "zzwin"
version = "2.0"
marker = "sys_platform == 'win-never'"
wheels = [{{ name = "zzwin-2.0-py3-none-any.whl", hashes = {{ sha256 = "{A}" }} }}]

[[packages]]
name = "zzgroup"
version = "3.0"
marker = "'dev' in dependency_groups"
wheels = [{{ name = "zzgroup-3.0-py3-none-any.whl", hashes = {{ sha256 = "{A}" }} }}]

[[packages]]
name = "zzgit"
version = "0.1"
vcs = {{ type = "git", url = "https://example.invalid/r.git", commit-id = "{"0" * 40}" }}

[[packages]]
name = "zzlocal"
directory = {{ path = "." }}

[[packages]]
name = "zzarch"
archive = {{ url = "https://example.invalid/a.tar.gz", hashes = {{ sha256 = "{A}" }} }}
""",
    )
    parsed = parse_any(path)
    pins = _pins(parsed)
    assert pins["zzone"].version == "1.0"
    assert pins["zzone"].hashes == {A, B}  # lowercased: only these files may be fetched
    assert pins["zzone"].origin == f"{path}:7"  # the line of its [[packages]] header
    assert pins["zzgroup"].version == "3.0"  # every group of the lock counts as selected
    assert set(pins) == {"zzone", "zzgroup"}
    skipped = "\n".join(parsed.skipped)
    assert "zzwin: marker is false" in skipped
    assert "zzgit: vcs source" in skipped
    assert "zzlocal: directory source" in skipped
    assert "zzarch: archive source" in skipped


def test_pylock_newer_major_version_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "pylock.toml", 'lock-version = "2.0"\n')
    with pytest.raises(RequirementsError, match="newer than pkgvet understands"):
        parse_any(path)


def test_poetry_lock(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "poetry.lock",
        f"""
[[package]]
name = "zzone"
version = "1.0"
description = ""
optional = false
python-versions = ">=3.8"
files = [
    {{file = "zzone-1.0-py3-none-any.whl", hash = "sha256:{A}"}},
    {{file = "zzone-1.0.tar.gz", hash = "sha256:{B}"}},
]

[[package]]
name = "zzgit"
version = "0.1"
description = ""
optional = false
python-versions = "*"
files = []

[package.source]
type = "git"
url = "https://example.invalid/zzgit.git"
reference = "HEAD"
resolved_reference = "{"0" * 40}"

[[package]]
name = "zzwin"
version = "2.0"
description = ""
optional = false
python-versions = "*"
markers = "sys_platform == 'win-never'"
files = [{{file = "zzwin-2.0.tar.gz", hash = "sha256:{A}"}}]

[[package]]
name = "zzopt"
version = "4.0"
description = ""
optional = true
python-versions = "*"
markers = {{main = "extra == 'fast'", dev = "sys_platform == 'win-never'"}}
files = [{{file = "zzopt-4.0.tar.gz", hash = "sha256:{A}"}}]

[[package]]
name = "zzoptwin"
version = "5.0"
description = ""
optional = true
python-versions = "*"
markers = "extra == 'fast' and sys_platform == 'win-never'"
files = [{{file = "zzoptwin-5.0.tar.gz", hash = "sha256:{A}"}}]

[[package]]
name = "zzold"
version = "3.0"
description = ""
optional = true
python-versions = "*"

[metadata]
lock-version = "2.0"
python-versions = "^3.11"
content-hash = "0"

[metadata.files]
zzold = [{{file = "zzold-3.0.tar.gz", hash = "sha256:{B}"}}]
""",
    )
    parsed = parse_any(path)
    pins = _pins(parsed)
    assert pins["zzone"].hashes == {A, B} and pins["zzone"].version == "1.0"
    assert pins["zzold"].hashes == {B}  # lock-version 1.x keeps files under [metadata.files]
    assert set(pins) == {"zzone", "zzold", "zzopt"}  # an extra counts as selected
    skipped = "\n".join(parsed.skipped)
    assert "zzgit: git source" in skipped and "zzwin: marker is false" in skipped
    assert "zzoptwin: marker is false" in skipped


def test_uv_lock(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "uv.lock",
        f"""
version = 1
revision = 2
requires-python = ">=3.11"

[[package]]
name = "myproject"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [{{ name = "zzone" }}]

[[package]]
name = "zzone"
version = "1.0"
source = {{ registry = "https://example.invalid/simple" }}
sdist = {{ url = "https://example.invalid/zzone-1.0.tar.gz", hash = "sha256:{A}", size = 10 }}
wheels = [
    {{ url = "https://example.invalid/zzone.whl", hash = "sha256:{B}", size = 10 }},
]

[[package]]
name = "zzfork"
version = "2.0"
source = {{ registry = "https://example.invalid/simple" }}
resolution-markers = ["sys_platform == 'win-never'"]
sdist = {{ url = "https://example.invalid/zzfork-2.0.tar.gz", hash = "sha256:{A}" }}

[[package]]
name = "zzgit"
version = "0.1"
source = {{ git = "https://example.invalid/zzgit.git#{"0" * 40}" }}

[[package]]
name = "zzvirt"
version = "0.0.0"
source = {{ virtual = "packages/zzvirt" }}
""",
    )
    parsed = parse_any(path)
    pins = _pins(parsed)
    assert set(pins) == {"zzone"} and pins["zzone"].hashes == {A, B}
    skipped = "\n".join(parsed.skipped)
    assert "myproject: editable source (a local project)" in skipped
    assert "zzvirt: virtual source" in skipped
    assert "zzgit: git source" in skipped
    assert "zzfork: marker is false" in skipped


def test_pyproject_pep621_pep735_and_poetry(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pyproject.toml",
        """
[build-system]
requires = ["setuptools>=61"]

[project]
name = "myproject"
version = "0.1"
dependencies = [
    "zzpin==1.0",
    "zzbare",
    "zzrange>=1,<2",
    "zzwin==1.0; sys_platform == 'win-never'",
    "zzurl @ https://example.invalid/zzurl-1.0.tar.gz",
]

[project.optional-dependencies]
fast = ["zzfast==2.0", "zzpin==1.0"]

[dependency-groups]
test = ["zztest==3.0", {include-group = "lint"}]
lint = ["zzlint~=1.0"]

[tool.poetry.dependencies]
python = "^3.11"
zzpoet = "4.0"
zzcaret = "^1.2"
zzstar = "*"
zzeq = {version = "==5.0", extras = ["x"]}
zzpoetgit = {git = "https://example.invalid/zzpoetgit.git"}
zzpath = {path = "../zzpath", develop = true}

[tool.poetry.group.dev.dependencies]
zzdev = "6.0"
""",
    )
    parsed = parse_any(path)
    pins = {e.name: e.version for e in parsed.entries if e.problem is None}
    assert pins == {
        "zzpin": "1.0",
        "zzbare": None,  # the latest release, as a bare NAME in a requirements file
        "zzfast": "2.0",
        "zztest": "3.0",
        "zzpoet": "4.0",  # a bare Poetry version is an exact pin
        "zzstar": None,
        "zzeq": "5.0",
        "zzdev": "6.0",
    }
    assert sum(e.name == "zzpin" for e in parsed.entries) == 1  # in two lists, scanned once
    problems = {e.name: e.problem for e in parsed.entries if e.problem}
    assert problems["zzrange"] == NOT_PINNED
    assert problems["zzlint"] == NOT_PINNED
    assert problems["zzcaret"] == NOT_PINNED
    assert "URL" in str(problems["zzurl"]) and "URL" in str(problems["zzpoetgit"])
    assert not any(e.name in ("python", "setuptools") for e in parsed.entries)
    skipped = "\n".join(parsed.skipped)
    assert "zzwin: marker is false" in skipped and "zzpath: a local path" in skipped
    origin = next(e.origin for e in parsed.entries if e.name == "zzrange")
    assert origin == f"{path}:11"  # the line quoting it
    assert next(e.origin for e in parsed.entries if e.name == "zzcaret") == f"{path}:26"


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    for name in ("pylock.toml", "poetry.lock", "uv.lock", "pyproject.toml"):
        path = _write(tmp_path, name, "[[package]\nname = \n")
        with pytest.raises(RequirementsError, match=f"{name}: not valid TOML"):
            parse_any(path)
    res = CliRunner().invoke(cli, ["scan", "--no-model", "-r", str(tmp_path / "uv.lock")])
    assert res.exit_code == 2 and "uv.lock: not valid TOML" in res.output


def test_odd_shapes_do_not_crash(tmp_path: Path) -> None:
    """Hostile lock files: wrong types everywhere become skips or problem entries."""
    path = _write(
        tmp_path,
        "uv.lock",
        'package = [1, "x", {name = 3}, {name = "zz", version = 4}, {name = "zz2", version = "1",'
        ' source = "odd", sdist = "odd", wheels = [1, {hash = 2}]}]\n',
    )
    parsed = parse_any(path)
    assert {e.name for e in parsed.entries} == {None, "zz2"}
    assert any("zz: no version" in s for s in parsed.skipped)
    path = _write(tmp_path, "pyproject.toml", "project = 1\ndependency-groups = {a = 2}\n")
    assert parse_any(path).entries == []


def test_scan_lock_files_fetch_only_locked_files(
    tmp_path: Path,
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
) -> None:
    sdist = index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    wheel = index.add("zzclean", "1.0", "zzclean-1.0-py3-none-any.whl", packagetype="bdist_wheel")
    index.add("zzbad", "1.0", "zzbad-1.0.tar.gz")
    sdist_hash = hashlib.sha256(sdist).hexdigest()
    wheel_hash = hashlib.sha256(wheel).hexdigest()
    lock = _write(
        tmp_path,
        "uv.lock",
        f"""
version = 1

[[package]]
name = "zzclean"
version = "1.0"
source = {{ registry = "{index.index_url}" }}
wheels = [{{ url = "https://example.invalid/w.whl", hash = "sha256:{wheel_hash}" }}]

[[package]]
name = "zzbad"
version = "1.0"
source = {{ registry = "{index.index_url}" }}
sdist = {{ url = "https://example.invalid/b.tar.gz", hash = "sha256:{"0" * 64}" }}

[[package]]
name = "me"
version = "0.1"
source = {{ editable = "." }}
""",
    )
    res = CliRunner().invoke(
        cli, ["scan", "--no-model", "--index-url", index.index_url, "-f", "json", "-r", str(lock)]
    )
    results = {r["target"]: r for r in json.loads(res.stdout)["results"]}
    assert set(results) == {"zzclean==1.0 (zzclean-1.0-py3-none-any.whl)", "zzbad==1.0"}
    assert "matches a --hash" in results["zzbad==1.0"]["error"]  # the index has another file
    assert index.hits["/files/zzclean-1.0.tar.gz"] == 0  # the sdist is not in the lock
    assert index.hits["/files/zzbad-1.0.tar.gz"] == 0
    assert "skipped" in res.stderr and "me: editable source" in res.stderr
    assert res.exit_code == 2
    # the same release through pylock.toml, locking the sdist this time
    pylock = _write(
        tmp_path,
        "pylock.toml",
        f"""
lock-version = "1.0"
created-by = "test"
[[packages]]
name = "zzclean"
version = "1.0"
sdist = {{ name = "zzclean-1.0.tar.gz", hashes = {{ sha256 = "{sdist_hash}" }} }}
""",
    )
    res = CliRunner().invoke(
        cli, ["scan", "--no-model", "--index-url", index.index_url, "-f", "json", "-r", str(pylock)]
    )
    (result,) = json.loads(res.stdout)["results"]
    assert result["target"] == "zzclean==1.0 (zzclean-1.0.tar.gz)"
    assert result["verdict"] == "clean" and res.exit_code == 0


def test_scan_pyproject_ranges_are_error_entries(
    tmp_path: Path,
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
) -> None:
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    pyproject = _write(
        tmp_path,
        "pyproject.toml",
        '[project]\nname = "me"\nversion = "0"\ndependencies = ["zzclean==1.0", "zzother>=2"]\n',
    )
    res = CliRunner().invoke(
        cli,
        ["scan", "--no-model", "--index-url", index.index_url, "-f", "json", "-r", str(pyproject)],
    )
    results = {r["target"]: r for r in json.loads(res.stdout)["results"]}
    assert results["zzclean==1.0 (zzclean-1.0.tar.gz)"]["verdict"] == "clean"
    bad = next(r for t, r in results.items() if t.startswith("zzother>=2"))
    assert bad["error"] == NOT_PINNED and f"{pyproject}:4" in bad["target"]
    assert res.exit_code == 2


def test_files_record_the_index_each_package_comes_from(tmp_path: Path) -> None:
    private = "https://pypi.example.invalid/simple"
    uv_text = f"""
version = 1
[[package]]
name = "zzprivate"
version = "1.0"
source = {{ registry = "{private}" }}
sdist = {{ url = "https://files.example.invalid/z.tar.gz", hash = "sha256:{A}" }}
"""
    uv = parse_any(_write(tmp_path, "uv.lock", uv_text))
    assert _pins(uv)["zzprivate"].index_url == private
    poetry = parse_any(
        _write(
            tmp_path,
            "poetry.lock",
            f"""
[[package]]
name = "zzprivate"
version = "1.0"
files = [{{ file = "zzprivate-1.0.tar.gz", hash = "sha256:{A}" }}]
[package.source]
type = "legacy"
url = "{private}"
reference = "corp"

[[package]]
name = "zzpublic"
version = "1.0"
files = [{{ file = "zzpublic-1.0.tar.gz", hash = "sha256:{B}" }}]

[metadata]
lock-version = "2.0"
""",
        )
    )
    assert _pins(poetry)["zzprivate"].index_url == private
    assert _pins(poetry)["zzpublic"].index_url is None  # the default index
    pylock = parse_any(
        _write(
            tmp_path,
            "pylock.toml",
            f"""
lock-version = "1.0"
[[packages]]
name = "zzprivate"
version = "1.0"
index = "{private}"
sdist = {{ name = "zzprivate-1.0.tar.gz", hashes = {{ sha256 = "{A}" }} }}
""",
        )
    )
    assert _pins(pylock)["zzprivate"].index_url == private
    # a requirements file's -i / --index-url is global, the last one wins, as in pip
    req = parse_any(
        _write(
            tmp_path,
            "requirements.txt",
            "--index-url https://first.example.invalid/simple\n"
            "zzpublic==1.0\n"
            f"-i {private}\n"
            "--extra-index-url https://extra.example.invalid/simple\n",
        )
    )
    assert req.index_url == private
    assert any("first.example.invalid" in s and "overridden" in s for s in req.skipped)
    assert any("--extra-index-url" in s for s in req.skipped)
    assert parse_any(_write(tmp_path, "r2.txt", f"--index-url={private}\n")).index_url == private
    assert parse_any(_write(tmp_path, "r3.txt", f"-i{private}\n")).index_url == private
    # PyPI's own URL is the default index: $PIP_INDEX_URL (a mirror) still serves it
    assert parse_any(_write(tmp_path, "r4.txt", "-i https://pypi.org/simple/\n")).index_url is None
    assert "not an http(s) index URL" in parse_any(_write(tmp_path, "r5.txt", "-i\n")).skipped[0]
    pypi_lock = uv_text.replace(private, "https://pypi.org/simple")
    assert _pins(parse_any(_write(tmp_path, "uv.lock", pypi_lock)))["zzprivate"].index_url is None


def test_scan_fetches_from_the_index_a_file_names(
    tmp_path: Path,
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    monkeypatch.setenv("PIP_INDEX_URL", "https://unreachable.example.invalid/simple")
    req = _write(tmp_path, "requirements.txt", f"-i {index.index_url}\nzzclean==1.0\n")
    res = CliRunner().invoke(cli, ["scan", "--no-model", "-f", "json", "-r", str(req)])
    (result,) = json.loads(res.stdout)["results"]
    assert result["verdict"] == "clean" and res.exit_code == 0  # the file's index, not the env's
    assert index.hits["/files/zzclean-1.0.tar.gz"] == 1
    # the command's --index-url wins over the file's, and says so
    other = _write(
        tmp_path, "other.txt", "-i https://private.example.invalid/simple\nzzclean==1.0\n"
    )
    res = CliRunner().invoke(
        cli, ["scan", "--no-model", "-f", "json", "--index-url", index.index_url, "-r", str(other)]
    )
    assert "names the index https://private.example.invalid/simple; fetching from" in res.stderr
    assert json.loads(res.stdout)["results"][0]["verdict"] == "clean"
