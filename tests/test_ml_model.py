"""The stacking ensemble: training is deterministic, the exported JSON model reproduces
scikit-learn's predictions in pure Python, and a modified model file is refused."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import realistic_clean_sdist
from pkgvet.cli import cli
from pkgvet.ml.features import TEXT_DIM, Features, dense_names, token_index
from pkgvet.ml.model import ModelError, load_model, parse_model, shipped_model_available
from test_ml_features import DROPPER

sk = pytest.importorskip("sklearn")


def synthetic_rows(n: int = 240, seed: int = 0) -> list[dict[str, Any]]:
    """Rows shaped like the feature cache's, with a learnable but noisy signal."""
    rng = random.Random(seed)
    names = dense_names()
    rows = []
    for i in range(n):
        label = int(i % 3 == 0)
        dense = [0.0] * len(names)
        dense[names.index("c_install_exec")] = float(label and rng.random() < 0.8)
        dense[names.index("r_score")] = round(rng.random() * (0.9 if label else 0.4), 6)
        dense[names.index("f_count")] = round(rng.random() * 5, 6)
        dense[names.index("m_summary_len")] = round(rng.random() * (2 if label else 4), 6)
        tokens = {rng.randrange(TEXT_DIM) for _ in range(6)}
        if label and rng.random() < 0.7:
            tokens.add(token_index("call:exec"))
        rows.append(
            {
                "sample": {
                    "id": f"p{i}",
                    "label": label,
                    "date": "2024-01-01",
                    "stratum": "malware" if label else "long_tail",
                    "source": "synthetic",
                    "name": f"p{i}",
                    "path": "",
                },
                "dense": dense,
                "tokens": sorted(tokens),
                "fingerprint": [],
                "categories": [],
                "rules_high": False,
            }
        )
    return rows


def _train(rows: list[dict[str, Any]]) -> tuple[Any, Any, bytes]:
    import numpy as np

    from pkgvet.ml.train import export_stack, fit_stack, matrices

    data = matrices(rows)
    stack = fit_stack(data, np.arange(len(data.y)), n_folds=3)
    return data, stack, export_stack(stack, {"note": "test"})


@pytest.fixture(scope="module")
def trained() -> tuple[Any, Any, bytes]:
    return _train(synthetic_rows())


def test_training_is_deterministic(trained: tuple[Any, Any, bytes]) -> None:
    _data, _stack, blob = trained
    assert _train(synthetic_rows())[2] == blob


def test_pure_python_inference_matches_scikit_learn(trained: tuple[Any, Any, bytes]) -> None:
    data, stack, blob = trained
    model = parse_model(blob, hashlib.sha256(blob).hexdigest())
    expected = stack.predict(data)
    names = dense_names()
    for i, row in enumerate(data.rows):
        feats = Features(dense=dict(zip(names, row["dense"], strict=True)))
        feats.tokens = {t: f"t{t}" for t in row["tokens"]}
        out = model.predict(feats)
        assert out.probability == pytest.approx(expected[i], abs=1e-5)


def test_model_separates_the_synthetic_classes(trained: tuple[Any, Any, bytes]) -> None:
    data, stack, _blob = trained
    from pkgvet.ml.evaluate import metrics

    m = metrics(data.y, stack.oof >= 0.5)
    assert m["f1"] > 0.8  # out-of-fold, on a noisy but learnable signal
    assert 0.5 <= stack.thresholds["malicious"] < 1.0
    assert stack.thresholds["suspicious"] <= stack.thresholds["malicious"]


def test_a_modified_model_file_is_refused(trained: tuple[Any, Any, bytes]) -> None:
    _data, _stack, blob = trained
    digest = hashlib.sha256(blob).hexdigest()
    tampered = bytearray(blob)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(ModelError, match="does not match"):
        parse_model(bytes(tampered), digest)


def test_a_model_for_another_feature_schema_is_refused(trained: tuple[Any, Any, bytes]) -> None:
    _data, _stack, blob = trained
    doc = json.loads(gzip.decompress(blob))
    doc["schema_hash"] = "0" * 64
    other = gzip.compress(json.dumps(doc).encode())
    with pytest.raises(ModelError, match="another feature schema"):
        parse_model(other, hashlib.sha256(other).hexdigest())


def test_a_pickle_is_never_loaded() -> None:
    import pickle

    evil = pickle.dumps({"format": "pkgvet-model/1"})
    with pytest.raises(ModelError, match="not gzip-compressed JSON"):
        parse_model(evil, hashlib.sha256(evil).hexdigest())


def test_cli_refuses_a_tampered_model_file(
    tmp_path: Path, trained: tuple[Any, Any, bytes]
) -> None:
    _data, _stack, blob = trained
    model = tmp_path / "model.json.gz"
    model.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    pkg = tmp_path / "reqeusts-999.0.1.tar.gz"
    pkg.write_bytes(DROPPER)
    args = ["scan", str(pkg), "--model-file", str(model)]
    res = CliRunner().invoke(cli, [*args, "--model-sha256", hashlib.sha256(blob).hexdigest()])
    assert res.exit_code == 2
    assert "refusing a modified or unknown model" in res.output
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "--model-sha256" in res.output


def test_prepare_loads_popular_names_and_model_and_refuses_a_tampered_one(
    tmp_path: Path, trained: tuple[Any, Any, bytes]
) -> None:
    """Workers call pipeline.prepare before their first package: it builds what the first
    scan would (the popular-name index, the model) and fails as that scan would."""
    from pkgvet import typosquat
    from pkgvet.config import ScanConfig
    from pkgvet.pipeline import prepare

    _data, _stack, blob = trained
    model = tmp_path / "model.json.gz"
    model.write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    typosquat._index.cache_clear()
    prepare(ScanConfig(model_path=str(model), model_sha256=digest))
    assert typosquat._index.cache_info().currsize == 1
    assert load_model(str(model), digest).sha256 == digest  # served from the cache
    model.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(ModelError, match="does not match"):
        prepare(ScanConfig(model_path=str(model), model_sha256="0" * 64))


def test_cli_scores_with_a_given_model(tmp_path: Path, trained: tuple[Any, Any, bytes]) -> None:
    _data, _stack, blob = trained
    model = tmp_path / "model.json.gz"
    model.write_bytes(blob)
    pkg = tmp_path / "reqeusts-999.0.1.tar.gz"
    pkg.write_bytes(DROPPER)
    digest = hashlib.sha256(blob).hexdigest()
    res = CliRunner().invoke(
        cli,
        ["scan", str(pkg), "-f", "json", "--model-file", str(model), "--model-sha256", digest],
    )
    doc = json.loads(res.output)
    result = doc["results"][0] if "results" in doc else doc
    assert result["model_version"] == digest[:12]
    assert 0.0 <= result["model_probability"] <= 1.0
    assert result["score"] == result["model_probability"]
    assert any(r.startswith("model probability") for r in result["reasons"])


def test_batch_scores_with_a_given_model_and_refuses_a_tampered_one(
    tmp_path: Path, trained: tuple[Any, Any, bytes]
) -> None:
    """``pkgvet batch --model-file``: a candidate model scores every package in the workers
    (its version is stored with each result); a file that is not the named one stops the run
    before any scan."""
    pytest.importorskip("sqlalchemy")
    import sqlite3

    _data, _stack, blob = trained
    model = tmp_path / "model.json.gz"
    model.write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "reqeusts-999.0.1.tar.gz").write_bytes(DROPPER)
    (corpus / "zzclean-1.0.tar.gz").write_bytes(realistic_clean_sdist())
    common = [str(corpus), "--no-known", "--no-progress", "--jobs", "2"]
    model_args = ["--model-file", str(model), "--model-sha256"]
    db = tmp_path / "candidate.db"
    res = CliRunner().invoke(cli, ["batch", *common, "--db", str(db), *model_args, digest])
    assert res.exit_code == 0, res.output
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select model_version, model_probability from scans").fetchall()
    assert len(rows) == 2
    assert all(v == digest[:12] and p is not None for v, p in rows)

    refused = tmp_path / "refused.db"
    res = CliRunner().invoke(cli, ["batch", *common, "--db", str(refused), *model_args, "0" * 64])
    assert res.exit_code == 2
    assert "refusing a modified or unknown model" in res.output
    with sqlite3.connect(refused) as conn:
        assert conn.execute("select count(*) from scans").fetchone() == (0,)


def test_shipped_model_is_pinned_small_and_carded() -> None:
    assert shipped_model_available(), "the model ships with the package (pkgvet train --install)"
    from importlib import resources

    from pkgvet.ml.pinned import MODEL_SHA256

    data = resources.files("pkgvet").joinpath("data/model.json.gz").read_bytes()
    assert len(data) < 20 * 1024 * 1024
    assert hashlib.sha256(data).hexdigest() == MODEL_SHA256
    card = resources.files("pkgvet").joinpath("data/model-card.md").read_text("utf-8")
    assert MODEL_SHA256 in card
    model = load_model()
    assert model.version == MODEL_SHA256[:12]
    assert 0.5 <= model.thresholds.malicious < 1.0


def test_shipped_model_scores_inert_packages() -> None:
    from pkgvet.config import ScanConfig
    from pkgvet.pipeline import scan_bytes

    bad = scan_bytes(DROPPER, "reqeusts-999.0.1.tar.gz", ScanConfig())
    good = scan_bytes(realistic_clean_sdist(), "zzclean-1.0.tar.gz", ScanConfig())
    assert bad.model_probability is not None and good.model_probability is not None
    assert bad.verdict.value == "malicious"
    assert good.verdict.value == "clean"
    assert bad.model_probability > 0.9 > 0.5 > good.model_probability
    assert any(r.startswith("model: ") for r in bad.reasons)  # features that drove it


@pytest.mark.shared
def test_shipped_model_on_a_sample_of_the_shared_malware(malregistry_dir: Path) -> None:
    """A sanity check of the shipped model on real malware (in-sample: it trained on these;
    the out-of-sample figures come from ``pkgvet evaluate``)."""
    from pkgvet.config import ScanConfig
    from pkgvet.pipeline import iter_targets, scan_target

    targets = sorted(iter_targets(malregistry_dir))
    sample = random.Random(7).sample(targets, 150)
    results = [scan_target(t, ScanConfig()) for t in sample]
    scored = [r for r in results if r.model_probability is not None]
    assert len(scored) >= 145
    flagged = sum(r.verdict.value in ("malicious", "suspicious") for r in scored)
    assert flagged / len(scored) >= 0.95
