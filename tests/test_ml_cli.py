"""``pkgvet train`` and ``pkgvet evaluate`` end to end on a tiny inert corpus: a malware tree in
the malregistry layout and a pinned benign manifest whose files sit in a temporary cache."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import sdist
from pkgvet.cli import cli

pytest.importorskip("sklearn")

HEADER = "name\tversion\tfilename\tsha256\tsize\tupload_time\tstratum\trank\n"


_PAYLOAD = base64.b64encode(b"import os\nos.system('echo 1')\n").decode()


def _campaign(i: int) -> int:
    """Samples 0-15 (early) belong to campaigns 0-3, 16-19 (late) to the same campaigns, and
    20-23 (late) to a new campaign 4."""
    return 4 if i >= 20 else i % 4


def _dropper(i: int) -> bytes:
    """A campaign's template; only the package's name line differs within a campaign."""
    c = _campaign(i)
    template = "".join(f"step_{c}_{k} = 'https://example.invalid/{c}/{k}'\n" for k in range(10))
    setup = (
        f"import base64\n{template}exec(base64.b64decode('{_PAYLOAD}'))\nNAME = 'evil{i}'\n"
    )
    return sdist(f"evil{i}", "1.0", {"setup.py": setup})


def _benign(i: int) -> bytes:
    module = f"def add_{i}(a, b):\n    return a + b + {i}\n\n\nclass Thing{i}:\n    pass\n"
    return sdist(
        f"good{i}",
        "1.0",
        {
            "setup.py": f"from setuptools import setup\nsetup(name='good{i}', version='1.0')\n",
            f"good{i}/__init__.py": module,
            "README.md": f"# good{i}\n",
        },
    )


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PKGVET_CACHE_DIR", str(cache))
    mal = tmp_path / "malregistry"
    lines = ["path\tsha256\tbytes\tadded\n"]
    for i in range(24):
        rel = f"evil{i}/1.0/evil{i}-1.0.tar.gz"
        data = _dropper(i)
        (mal / rel).parent.mkdir(parents=True)
        (mal / rel).write_bytes(data)
        added = "2024-03-01" if i < 16 else "2024-09-01"
        lines.append(f"{rel}\t{hashlib.sha256(data).hexdigest()}\t{len(data)}\t{added}\n")
    (mal / "MANIFEST.tsv").write_text("".join(lines))
    rows = [HEADER]
    for i in range(24):
        data = _benign(i)
        sha = hashlib.sha256(data).hexdigest()
        name = f"good{i}-1.0.tar.gz"
        dest = cache / "dists" / sha[:2] / sha / name
        dest.parent.mkdir(parents=True)
        dest.write_bytes(data)
        when = "2023-05-01T00:00:00Z" if i < 16 else "2024-10-01T00:00:00Z"
        stratum = "long_tail" if i % 2 else "popular"
        rows.append(f"good{i}\t1.0\t{name}\t{sha}\t{len(data)}\t{when}\t{stratum}\t\n")
    manifest = tmp_path / "benign.tsv"
    manifest.write_text("".join(rows))
    return mal, manifest


def test_train_is_deterministic_and_writes_a_card(
    corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    mal, manifest = corpus
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = ["train", "--malware", str(mal), "--benign", str(manifest), "-o", str(out)]
        res = CliRunner().invoke(cli, [*args, "--jobs", "1"])
        assert res.exit_code == 0, res.output
        outs.append(out)
    blob = (outs[0] / "model.json.gz").read_bytes()
    assert blob == (outs[1] / "model.json.gz").read_bytes()
    card = (outs[0] / "model-card.md").read_text()
    assert hashlib.sha256(blob).hexdigest() in card
    assert hashlib.sha256(manifest.read_bytes()).hexdigest()[:16] in card
    # the newest malware sample (2024-09-01), not the newest benign upload (2024-10-01)
    assert "entered the dataset up to 2024-09-01" in card


def test_train_names_missing_benign_files(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    mal, manifest = corpus
    extra = "lost\t1.0\tlost-1.0.tar.gz\t" + "0" * 64 + "\t10\t2024-01-01T00:00:00Z\tlong_tail\t\n"
    manifest.write_text(manifest.read_text() + extra)
    res = CliRunner().invoke(cli, ["train", "--malware", str(mal), "--benign", str(manifest)])
    assert res.exit_code == 2
    assert "pkgvet collect --from-manifest" in res.output


def test_evaluate_reports_the_time_split(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    mal, manifest = corpus
    out = tmp_path / "eval"
    args = ["evaluate", "--malware", str(mal), "--benign", str(manifest), "-o", str(out)]
    res = CliRunner().invoke(cli, [*args, "--no-ablation", "--jobs", "1"])
    assert res.exit_code == 0, res.output
    assert "Stack, base learners and the rules alone" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    # 4 later droppers belong to campaigns seen before the cut-off: not in the test
    assert metrics["sizes"]["known_campaign_later"] == 4
    assert metrics["sizes"]["test"] == {"long_tail": 4, "malware": 4, "popular": 4}
    assert (out / "pr_curve.png").is_file() and (out / "predictions.csv").is_file()


def test_evaluate_benign_holdout_needs_a_validation_run(corpus: tuple[Path, Path]) -> None:
    mal, manifest = corpus
    args = ["evaluate", "--malware", str(mal), "--benign", str(manifest), "--no-ablation"]
    res = CliRunner().invoke(cli, [*args, "--benign-holdout", "0.3"])
    assert res.exit_code == 2
    assert "--benign-holdout is for validation runs" in res.output


def test_train_takes_triage_labels(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    """A labels file from the triage UI: a reviewer's false positive on a malware-set file
    overrides its label, a confirmed upload (found in the service's blob directory) joins the
    training data, and the card names the file and its counts."""
    from pkgvet.ml.dataset import labelled_samples

    mal, manifest = corpus
    relabel = (mal / "evil3/1.0/evil3-1.0.tar.gz").read_bytes()
    upload = _dropper(30)
    blobs = tmp_path / "blobs"
    rows = ["name\tversion\tfilename\tsha256\tlabel\tnote\tdecided_at\n"]
    for name, data, label in (("evil3", relabel, "benign"), ("evil30", upload, "malicious")):
        sha = hashlib.sha256(data).hexdigest()
        fname = f"{name}-1.0.tar.gz"
        (blobs / sha[:2] / sha).mkdir(parents=True)
        (blobs / sha[:2] / sha / fname).write_bytes(data)
        rows.append(f"{name}\t1.0\t{fname}\t{sha}\t{label}\treviewed\t2024-09-02T10:00:00Z\n")
    labels = tmp_path / "labels.tsv"
    labels.write_text("".join(rows))

    found, missing = labelled_samples(labels, [blobs])
    assert not missing
    assert sorted((s.name, s.label, s.stratum) for s in found) == [
        ("evil3", 0, "triage"),
        ("evil30", 1, "triage"),
    ]
    assert labelled_samples(labels)[1] == ["evil3-1.0.tar.gz", "evil30-1.0.tar.gz"]

    out = tmp_path / "m"
    args = ["train", "--malware", str(mal), "--benign", str(manifest), "-o", str(out)]
    res = CliRunner().invoke(cli, [*args, "--labels", str(labels), "--jobs", "1"])
    assert res.exit_code == 2 and "--label-files" in res.output  # files not found
    res = CliRunner().invoke(
        cli, [*args, "--labels", str(labels), "--label-files", str(blobs), "--jobs", "1"]
    )
    assert res.exit_code == 0, res.output
    # 24 malware + 24 benign + 2 labelled - the malware row the reviewer's label replaced
    assert "fitting on 49 packages (24 malicious)" in res.output
    card = (out / "model-card.md").read_text()
    assert "triage labels `labels.tsv`" in card
    assert "1 confirmed malicious, 1 false positives" in card
