"""Load the trained detector and score a package with it, in pure Python.

The model is a gzip-compressed JSON document (trees as arrays, linear weights): loading it can
not run code, unlike pickle. Its sha256 is checked before parsing: the shipped model against the
hash pinned in :mod:`pkgvet.ml.pinned`, any other model against a hash the user gives. A model
built for another feature schema is refused too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pkgvet.errors import PkgvetError
from pkgvet.ml import forest
from pkgvet.ml.features import Features, dense_names, schema_hash

FORMAT = "pkgvet-model/1"
SHIPPED = "data/model.json.gz"
_MAX_MODEL_BYTES = 20 * 1024 * 1024


class ModelError(PkgvetError):
    """The model file is missing, tampered with, malformed or built for other features."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    malicious: float  # the model alone
    malicious_with_rules: float  # the model, for a package a high rule finding also flags
    suspicious: float


@dataclass(frozen=True, slots=True)
class ModelOutput:
    probability: float
    version: str
    thresholds: Thresholds
    base: dict[str, float]  # each base learner's probability
    drivers: list[str]  # the features and tokens that pushed the score most


class Model:
    """A loaded, verified stacking ensemble."""

    def __init__(self, doc: dict[str, Any], sha256: str) -> None:
        if doc.get("format") != FORMAT:
            raise ModelError(f"not a pkgvet model (format {doc.get('format')!r})")
        if doc.get("schema_hash") != schema_hash():
            raise ModelError(
                "the model was trained on another feature schema "
                f"({str(doc.get('schema_hash'))[:12]}, this pkgvet has {schema_hash()[:12]}): "
                "retrain it with `pkgvet train`"
            )
        try:
            self.names: list[str] = list(doc["feature_names"])
            self.rf = forest.RandomForest(doc["base"]["random_forest"])
            self.gb = forest.GradientBoosting(doc["base"]["gradient_boosting"])
            self.text = forest.Linear(doc["base"]["text_linear"])
            self.meta: dict[str, Any] = doc["meta"]
            th = doc["thresholds"]
            self.thresholds = Thresholds(
                float(th["malicious"]),
                float(th.get("malicious_with_rules", th["malicious"])),
                float(th["suspicious"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ModelError(f"malformed model file: {type(exc).__name__}: {exc}") from exc
        if self.names != dense_names():
            raise ModelError("the model's feature names differ from this pkgvet's")
        self.sha256 = sha256
        self.version = sha256[:12]

    def predict(self, feats: Features, explain: int = 5) -> ModelOutput:
        x = forest.as_float32(feats.vector(self.names))
        if explain:
            p_rf, contrib = self.rf.explained(x)
        else:
            p_rf, contrib = self.rf.proba(x), {}
        raw_gb = self.gb.raw(x)
        raw_text = self.text.raw(dict.fromkeys(feats.tokens, 1.0))
        z = [forest.logit(p_rf), raw_gb, raw_text]
        coef = self.meta["coef"]
        raw = float(self.meta["intercept"]) + sum(c * v for c, v in zip(coef, z, strict=True))
        p = forest.sigmoid(raw)
        drivers = self._drivers(x, feats, explain, contrib) if explain else []
        return ModelOutput(
            probability=round(p, 6),
            version=self.version,
            thresholds=self.thresholds,
            base={
                "random_forest": round(p_rf, 6),
                "gradient_boosting": round(forest.sigmoid(raw_gb), 6),
                "text_linear": round(forest.sigmoid(raw_text), 6),
            },
            drivers=drivers,
        )

    def _drivers(
        self, x: list[float], feats: Features, n: int, contrib: dict[int, float]
    ) -> list[str]:
        """What pushed the score up most: the features with the largest path attributions in
        the random forest, then the tokens with the largest weights in the text model."""
        dense = sorted(((c, i) for i, c in contrib.items() if c > 0.005), reverse=True)
        out = [f"{self.names[i]}={x[i]:g}" for _c, i in dense[: n - n // 2]]
        coef = self.text.coef
        tokens = sorted(
            ((coef[i], t) for i, t in feats.tokens.items() if coef[i] > 0.2), reverse=True
        )
        out += [f"token {t!r}" for _w, t in tokens[: n - len(out)]]
        return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_model(data: bytes, expected_sha256: str) -> Model:
    """Verify ``data`` against ``expected_sha256``, then parse it (JSON only, never pickle)."""
    if len(data) > _MAX_MODEL_BYTES:
        raise ModelError(f"model file of {len(data)} bytes is over the 20 MiB limit")
    digest = _sha256(data)
    if digest != expected_sha256.lower():
        raise ModelError(
            f"model file hash {digest[:16]}… does not match the expected "
            f"{expected_sha256[:16]}…: refusing a modified or unknown model"
        )
    try:
        doc = json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    except (OSError, EOFError, ValueError) as exc:
        raise ModelError(f"model file is not gzip-compressed JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ModelError("model file does not hold a JSON object")
    return Model(doc, digest)


@lru_cache(maxsize=4)
def load_model(path: str | None = None, sha256: str | None = None) -> Model:
    """The shipped model (``path`` None), or the model at ``path`` checked against ``sha256``."""
    if path is None:
        from pkgvet.ml.pinned import MODEL_SHA256

        res = resources.files("pkgvet").joinpath(SHIPPED)
        if not res.is_file():
            raise ModelError("no model is shipped with this installation: run `pkgvet train`")
        return parse_model(res.read_bytes(), MODEL_SHA256)
    if not sha256:
        raise ModelError(f"{path}: give the model's sha256 (--model-sha256) to load it")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc}") from exc
    return parse_model(data, sha256)


@lru_cache(maxsize=1)
def shipped_model_available() -> bool:
    return resources.files("pkgvet").joinpath(SHIPPED).is_file()
