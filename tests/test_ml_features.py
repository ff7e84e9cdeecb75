"""Features of the trained detector, read off the package context (inert fixtures)."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

from conftest import sdist
from pkgvet.config import ScanConfig
from pkgvet.ml.features import TEXT_DIM, dense_names, schema, schema_hash, token_index
from pkgvet.pipeline import scan_bytes

FEATURES_ONLY = ScanConfig(use_model=False, keep_features=True)

_PAYLOAD = base64.b64encode(b"import os\nos.system('echo 1')\n").decode()
DROPPER = sdist(
    "reqeusts",
    "999.0.1",
    {
        "setup.py": (
            "import base64\nfrom setuptools import setup\n"
            f"exec(base64.b64decode('{_PAYLOAD}'))\n"
            "setup(name='reqeusts', version='999.0.1')\n"
        ),
        "reqeusts/__init__.py": "x = 'https://example.invalid/a'\n",
    },
)
BENIGN = sdist(
    "tidylib",
    "1.2.0",
    {
        "setup.py": "from setuptools import setup\nsetup(name='tidylib', version='1.2.0')\n",
        "tidylib/__init__.py": "def tidy(text):\n    return text.strip()\n",
        "tests/test_tidy.py": "from tidylib import tidy\n\ndef test():\n    assert tidy(' a ')\n",
        "README.md": "# tidylib\n",
    },
)


def _features(data: bytes, name: str) -> dict[str, float]:
    r = scan_bytes(data, name, FEATURES_ONLY)
    assert r.error is None and r.features is not None
    return dict(r.features.dense)


def test_schema_names_are_unique_and_hash_is_stable() -> None:
    names = dense_names()
    assert len(names) == len(set(names)) > 150
    assert schema()["text_dim"] == TEXT_DIM
    assert schema_hash() == schema_hash()
    assert len(schema_hash()) == 64


def test_every_feature_group_and_every_rule_has_columns() -> None:
    names = dense_names()
    for prefix in ("m_", "f_", "c_", "s_", "r_"):
        assert any(n.startswith(prefix) for n in names), prefix
    assert "r_PV201" in names and "c_install_exec" in names


def test_install_time_exec_of_a_decoded_payload() -> None:
    d = _features(DROPPER, "reqeusts-999.0.1.tar.gz")
    assert d["c_install_exec"] == 1.0
    assert d["c_install_decode"] == 1.0
    assert d["c_install_process"] == 1.0  # inside the decoded payload
    assert d["c_decoded_payloads"] > 0
    assert d["c_exec_decoded"] > 0
    assert d["m_typosquat"] == 1.0  # one transposition from requests
    assert d["m_version_major"] > 6  # log1p(999)
    assert d["r_high"] > 0 and d["r_score"] > 0.5
    assert d["s_urls"] > 0


def test_benign_package_has_no_capabilities_or_rule_findings() -> None:
    d = _features(BENIGN, "tidylib-1.2.0.tar.gz")
    caps = [n for n in d if n.startswith(("c_install_", "c_import_", "r_PV"))]
    caps = [n for n in caps if not n.endswith(("_calls", "_files"))]
    assert caps and not any(d[n] for n in caps), {n: d[n] for n in caps if d[n]}
    assert d["f_tests"] == 1.0 and d["f_readme"] == 1.0
    assert d["m_name_matches_module"] == 1.0
    assert d["r_high"] == 0.0


def test_text_tokens_are_hashed_deterministically() -> None:
    r = scan_bytes(DROPPER, "reqeusts-999.0.1.tar.gz", FEATURES_ONLY)
    assert r.features is not None
    tokens = set(r.features.tokens.values())
    assert {"call:exec", "imp:base64", "host:example.invalid"} <= tokens
    assert all(0 <= i < TEXT_DIM for i in r.features.tokens)
    # the column is part of the schema a shipped model was trained on: CRC-32 of the UTF-8
    # bytes, modulo the text dimension, in every process (no per-process hash seed)
    assert token_index("call:exec") == zlib.crc32(b"call:exec") % TEXT_DIM
    assert token_index("w:caf\u00e9") == zlib.crc32("w:caf\u00e9".encode()) % TEXT_DIM
    assert {i: t for i, t in r.features.tokens.items() if token_index(t) != i} == {}


def test_keep_features_adds_a_fingerprint_for_campaign_grouping() -> None:
    a = scan_bytes(DROPPER, "a.tar.gz", FEATURES_ONLY)
    b = scan_bytes(DROPPER, "b.tar.gz", FEATURES_ONLY)
    assert a.fingerprint is not None and a.fingerprint == b.fingerprint
    plain = scan_bytes(DROPPER, "a.tar.gz", ScanConfig(use_model=False))
    assert plain.features is None and plain.fingerprint is None


def test_archive_form_is_not_a_feature() -> None:
    """The shared malware set holds unpacked directories and lone files that benign samples
    never are: the form of the artifact must not be learnable."""
    assert not any(n.startswith(("kind", "f_kind", "m_kind")) for n in dense_names())


def test_feature_cache_key_follows_the_extraction_code(tmp_path: Path) -> None:
    """Cached feature rows are keyed by the code that computed them: editing a rule, the
    analysis or the popular names gives a new cache directory; editing a shell around the
    pipeline (the CLI, the service, the fitting code) or retraining the model does not."""
    from pkgvet.ml.dataset import extractor_hash, features_dir

    root = tmp_path / "pkgvet"
    files = {
        "rules/exec.py": "SEVERITY = 'high'\n",
        "analysis/apis.py": "FAMILIES = ()\n",
        "data/popular.tsv": "requests\t1\n",
        "data/model.json.gz": "model v1",
        "ml/pinned.py": "MODEL_SHA256 = 'aa'\n",
        "cli.py": "def main(): ...\n",
        "service/app.py": "APP = None\n",
        "ml/train.py": "SEED = 0\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    base = extractor_hash(root)
    for rel in ("cli.py", "service/app.py", "ml/train.py", "data/model.json.gz", "ml/pinned.py"):
        (root / rel).write_text("edited\n")
        assert extractor_hash(root) == base, rel
    (root / "rules/__pycache__").mkdir()
    (root / "rules/__pycache__/exec.cpython-311.pyc").write_bytes(b"\0")
    assert extractor_hash(root) == base
    seen = {base}
    for rel in ("rules/exec.py", "analysis/apis.py", "data/popular.tsv"):
        (root / rel).write_text((root / rel).read_text() + "# edited\n")
        seen.add(extractor_hash(root))
    (root / "rules/new_rule.py").write_text("")  # a new module counts too
    seen.add(extractor_hash(root))
    assert len(seen) == 5
    assert features_dir().name.endswith("-" + extractor_hash()[:16])
