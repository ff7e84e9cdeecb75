"""Package metadata from pyproject.toml and setup.cfg (pkgvet.analysis.metadata), including the
shortcuts that skip parsing files that cannot hold any."""

from __future__ import annotations

import pytest

from pkgvet.analysis.metadata import from_pyproject, from_setup_cfg


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('[build-system]\nrequires = ["setuptools"]\n', None),
        ('[project]\nname = "zzpkg"\nversion = "1.0"\n', "zzpkg"),
        ('project = { name = "zzinline" }\n', "zzinline"),
        ('project.name = "zzdotted"\n', "zzdotted"),
        ('["\\u0070roject"]\nname = "zzescaped"\n', "zzescaped"),  # a \u-escaped key
        ('[tool.poetry]\nname = "zzpoetry"\n', "zzpoetry"),
        ("[project\nname = broken\n", None),
    ],
)
def test_pyproject_name(text: str, name: str | None) -> None:
    info = from_pyproject(text.encode())
    assert (info.name if info else None) == name


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("[egg_info]\ntag_build =\n", None),
        ("[metadata]\nname = zzcfg\nversion = 1.0\n", "zzcfg"),
        ("  [metadata]\nname = zzindented\n", "zzindented"),
        ("[ metadata ]\nname = zzspaced\n", None),  # configparser reads " metadata ", not ours
    ],
)
def test_setup_cfg_name(text: str, name: str | None) -> None:
    info = from_setup_cfg(text.encode())
    assert (info.name if info else None) == name
