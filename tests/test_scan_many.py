"""A 100-line requirements file against the loopback index: every entry gets a result, the
missing and yanked ones are error results with clear messages, an unreachable index fails
each entry without crashing the run, and the summary ends with the table of verdicts."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from click.testing import CliRunner

from conftest import sdist
from pkgvet.cli import cli
from test_collect import FakeIndex, cache, index  # noqa: F401  (fixtures)

N_CLEAN = 97


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connections are refused


def _requirements(tmp_path: Path, index: FakeIndex) -> Path:  # noqa: F811
    lines = []
    for i in range(N_CLEAN):
        name = f"zzpkg{i:03d}"
        index.add(
            name,
            "1.0",
            f"{name}-1.0.tar.gz",
            body=sdist(name, "1.0", {f"{name}/__init__.py": "VALUE = 1\n"}),
        )
        lines.append(f"{name}==1.0" if i % 3 else name)  # pins and bare names (latest)
    index.add("zzyanked", "0.1", "zzyanked-0.1.tar.gz", yanked=True)
    lines.insert(40, "zzmissing==1.0")
    lines.insert(70, "zzyanked==0.1")
    lines.insert(10, f"--index-url http://127.0.0.1:{_closed_port()}/simple/")  # overridden
    assert len(lines) == 100
    path = tmp_path / "requirements.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_hundred_requirements(tmp_path: Path, index: FakeIndex, cache: Path) -> None:  # noqa: F811
    reqs = _requirements(tmp_path, index)
    base = ["scan", "--no-model", "--index-url", index.index_url, "-r", str(reqs)]
    res = CliRunner().invoke(cli, [*base, "-f", "json", "--progress"])  # stderr: no terminal
    assert res.exit_code == 2, res.output  # error entries; not a crash
    results = json.loads(res.stdout)["results"]  # the progress bar never reaches stdout
    assert len(results) == N_CLEAN + 2  # every entry has a result; the option line is skipped
    by_name = {r["target"].split("=")[0].split(" ")[0]: r for r in results}
    assert set(by_name) == {f"zzpkg{i:03d}" for i in range(N_CLEAN)} | {"zzmissing", "zzyanked"}
    assert "project not found on the index" in by_name["zzmissing"]["error"]
    assert "zzyanked==0.1 yanked: nothing to scan" in by_name["zzyanked"]["error"]
    assert {r["verdict"] for r in results if not r["error"]} == {"clean"}
    # the file's own --index-url (line 11) gives way to the command's, with a note
    assert re.search(r"requirements.txt: names the index \S+; fetching from --index", res.stderr)

    res = CliRunner().invoke(cli, [*base, "-f", "summary"])  # downloads now come from the cache
    assert res.exit_code == 2
    out = res.stdout.splitlines()
    lines = [line for line in out if re.match(r"^(clean|error) ", line)]
    assert len(lines) == N_CLEAN + 2
    assert sum(line.startswith("error") for line in lines) == 2
    tail = "\n".join(out[-8:])  # the last lines: the table of counts per verdict
    assert f"{N_CLEAN + 2} packages" in tail
    assert re.search(rf"clean\s*│\s*{N_CLEAN}\s*│", tail)
    assert re.search(r"error\s*│\s*2\s*│", tail)

    res = CliRunner().invoke(cli, base)  # auto: the summary format for many packages
    assert res.stdout.splitlines()[0].startswith(("clean", "error"))
    assert f"{N_CLEAN + 2} packages" in res.stdout


def test_an_unreachable_index_fails_each_entry(tmp_path: Path, cache: Path) -> None:  # noqa: F811
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("zzone==1.0\nzztwo\n")
    url = f"http://127.0.0.1:{_closed_port()}/simple/"
    res = CliRunner().invoke(
        cli, ["scan", "--no-model", "--index-url", url, "-f", "json", "-r", str(reqs)]
    )
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)  # no traceback
    results = json.loads(res.stdout)["results"]
    assert [r["target"] for r in results] == ["zzone==1.0", "zztwo"]
    for r in results:
        assert r["verdict"] == "error"
        assert "cannot fetch http://127.0.0.1:" in r["error"], r["error"]  # names the index
