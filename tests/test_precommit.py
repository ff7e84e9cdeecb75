"""The pre-commit hook: its entry, run as pre-commit would (file names appended), against a
real index on loopback."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from conftest import REPO, realistic_clean_sdist
from pkgvet.cli import cli
from test_collect import FakeIndex, cache, index  # noqa: F401  (fixtures)
from test_scan_remote import DROPPER


def _hook_entry() -> list[str]:
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert re.search(r"^\s*pass_filenames: true$", text, re.M)
    match = re.search(r"^\s*entry: (.+)$", text, re.M)
    assert match is not None
    return shlex.split(match.group(1))


def test_hook_entry_scans_the_files_it_is_given(
    index: FakeIndex, cache: Path, tmp_path: Path  # noqa: F811
) -> None:
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    index.add("zzdrop", "1.0", "zzdrop-1.0.tar.gz", body=DROPPER)
    clean = tmp_path / "requirements.txt"
    clean.write_text("zzclean==1.0\n")
    uv = tmp_path / "uv.lock"
    uv.write_text('version = 1\n\n[[package]]\nname = "zzdrop"\nversion = "1.0"\n'
                  'source = { registry = "https://example.invalid/simple" }\n')
    entry = _hook_entry()
    assert entry[:2] == ["pkgvet", "scan"]
    runner = CliRunner()
    base = [*entry[1:], "--index-url", index.index_url]
    ok = runner.invoke(cli, [*base, str(clean)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(cli, [*base, "-f", "json", str(clean), str(uv)])
    assert bad.exit_code == 1, bad.output
    verdicts = {r["target"].split(" ")[0]: r["verdict"] for r in json.loads(bad.stdout)["results"]}
    assert verdicts == {"zzclean==1.0": "clean", "zzdrop==1.0": "malicious"}


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["scan", "--targets-are-requirements", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such file" in res.output
