"""Fit the stacking ensemble (the ``train`` extra: numpy, scipy, scikit-learn).

Three diverse base learners, after Samaana et al. (2024):

- a random forest and gradient-boosted trees over the dense features (metadata, files, code,
  strings, rule findings);
- a logistic regression over the hashed text tokens.

A logistic meta-learner is fitted on their out-of-fold outputs (folds grouped by campaign, so a
campaign's clones never sit on both sides of a fold), which also calibrates the final score as
a probability. Thresholds are chosen on the out-of-fold scores for a false-positive budget.
Everything is seeded: the same rows give the same model file, byte for byte.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from pkgvet.ml import export
from pkgvet.ml.features import TEXT_DIM, dense_names, schema_hash
from pkgvet.ml.model import FORMAT

LEARNERS = ("random_forest", "gradient_boosting", "text_linear")
DENSE_GROUPS = {"metadata": "m_", "files": "f_", "code": "c_", "strings": "s_", "rules": "r_"}
FEATURE_GROUPS = (*DENSE_GROUPS, "text")
MALICIOUS_FPR = 0.0025  # false-positive budget (out-of-fold) for the malicious threshold
SUSPICIOUS_FPR = 0.02


@dataclass(slots=True)
class Data:
    X: Any  # dense features (n, d)
    T: Any  # hashed text tokens, CSR (n, TEXT_DIM), binary
    y: Any  # labels
    rows: list[dict[str, Any]]


def matrices(rows: Sequence[dict[str, Any]]) -> Data:
    """Dense and sparse matrices of the rows that have features (scan errors are left out)."""
    ok = [r for r in rows if r.get("dense") is not None]
    X = np.asarray([r["dense"] for r in ok], dtype=np.float64).reshape(len(ok), len(dense_names()))
    indptr = [0]
    indices: list[int] = []
    for r in ok:
        indices.extend(r["tokens"])
        indptr.append(len(indices))
    T = sparse.csr_matrix(
        (np.ones(len(indices)), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
        shape=(len(ok), TEXT_DIM),
    )
    y = np.asarray([r["sample"]["label"] for r in ok], dtype=np.int64)
    return Data(X, T, y, list(ok))


def subset(data: Data, idx: Any) -> Data:
    idx = np.asarray(idx)
    return Data(data.X[idx], data.T[idx], data.y[idx], [data.rows[i] for i in idx])


def _learner(name: str, seed: int) -> Any:
    if name == "random_forest":
        return RandomForestClassifier(
            n_estimators=120,
            min_samples_leaf=2,
            max_features="sqrt",
            class_weight="balanced_subsample",
            n_jobs=2,
            random_state=seed,
        )
    if name == "gradient_boosting":
        return GradientBoostingClassifier(
            n_estimators=200, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=seed
        )
    return LogisticRegression(
        C=0.5, solver="liblinear", max_iter=2000, class_weight="balanced", random_state=seed
    )


def _mask(X: Any, drop: frozenset[str]) -> Any:
    """``X`` with the columns of the dropped groups zeroed (trees never split on constants)."""
    if not drop:
        return X
    names = dense_names()
    cols = [i for i, n in enumerate(names) for g in drop if n.startswith(DENSE_GROUPS.get(g, "~"))]
    X = X.copy()
    X[:, cols] = 0.0
    return X


def _base_output(name: str, model: Any, data: Data, drop: frozenset[str]) -> Any:
    """The base learner's output on the meta-learner's scale: the logit of the forest's
    probability, the raw score of the boosted trees and of the linear model."""
    if name == "random_forest":
        model.n_jobs = 1  # threads sum tree outputs in varying order: last-bit differences
        p = np.clip(model.predict_proba(_mask(data.X, drop))[:, 1], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))
    if name == "gradient_boosting":
        return model.decision_function(_mask(data.X, drop))
    return model.decision_function(data.T)


def _fit_base(name: str, data: Data, seed: int, drop: frozenset[str]) -> Any:
    model = _learner(name, seed)
    if name == "text_linear":
        model.fit(data.T, data.y)
    else:
        model.fit(_mask(data.X, drop), data.y)
    return model


@dataclass(slots=True)
class Stack:
    learners: tuple[str, ...]
    drop: frozenset[str]
    bases: dict[str, Any] = field(default_factory=dict)
    meta: Any = None
    oof: Any = None  # out-of-fold probabilities on the training rows
    oof_base: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    train_y: Any = None

    def raw(self, data: Data) -> Any:
        return np.column_stack(
            [_base_output(n, self.bases[n], data, self.drop) for n in self.learners]
        )

    def predict(self, data: Data) -> Any:
        return self.meta.predict_proba(self.raw(data))[:, 1]

    def base_proba(self, data: Data) -> dict[str, Any]:
        z = self.raw(data)
        return {n: _sigmoid(z[:, i]) for i, n in enumerate(self.learners)}


def campaign_folds(data: Data, groups: Any, n_folds: int, seed: int) -> list[tuple[Any, Any]]:
    """Folds that keep each campaign on one side; fewer folds when there are fewer campaigns
    of a class than folds (every fold's training part must hold both classes)."""
    groups = np.asarray(groups)
    per_class = min(len(set(groups[data.y == c])) for c in (0, 1))
    if per_class < 2:
        raise ValueError("training needs at least two campaigns of each class")
    n_folds = min(n_folds, per_class)
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(cv.split(data.X, data.y, groups))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function of a base learner's logit; a very confident logit overflows
    ``exp`` to inf, which gives exactly 0 here and is not worth a warning."""
    with np.errstate(over="ignore"):
        out: np.ndarray = 1 / (1 + np.exp(-z))
    return out


def fit_stack(
    data: Data,
    groups: Any,
    learners: tuple[str, ...] = LEARNERS,
    drop: frozenset[str] = frozenset(),
    n_folds: int = 5,
    seed: int = 0,
) -> Stack:
    """Fit the base learners out of fold, the meta-learner on their outputs, then the bases on
    all rows; choose thresholds on the out-of-fold probabilities."""
    stack = Stack(learners=learners, drop=drop, train_y=data.y)
    z = np.zeros((len(data.y), len(learners)))
    for train_idx, test_idx in campaign_folds(data, groups, n_folds, seed):
        tr, te = subset(data, train_idx), subset(data, test_idx)
        for j, name in enumerate(learners):
            z[test_idx, j] = _base_output(name, _fit_base(name, tr, seed, drop), te, drop)
    stack.meta = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000).fit(z, data.y)
    stack.oof = stack.meta.predict_proba(z)[:, 1]
    stack.oof_base = {n: _sigmoid(z[:, i]) for i, n in enumerate(learners)}
    for name in learners:
        stack.bases[name] = _fit_base(name, data, seed, drop)
    high = rules_high(data)
    alone, with_rules = joint_thresholds(stack.oof, data.y, high, MALICIOUS_FPR)
    stack.thresholds = {
        "malicious": alone,
        "malicious_with_rules": with_rules,
        "suspicious": min(
            threshold_for_fpr(stack.oof, data.y, SUSPICIOUS_FPR, floor=0.1), with_rules
        ),
    }
    return stack


def rules_high(data: Data) -> Any:
    """Rows with a high or critical rule finding."""
    return np.asarray([bool(r.get("rules_high")) for r in data.rows])


def flag(p: Any, high: Any, thresholds: dict[str, float]) -> Any:
    """The malicious verdict: the model alone, or the model and a high rule finding together."""
    p = np.asarray(p)
    alone = p >= thresholds["malicious"]
    if "malicious_with_rules" not in thresholds:
        return alone
    return alone | (np.asarray(high) & (p >= thresholds["malicious_with_rules"]))


def joint_thresholds(p: Any, y: Any, high: Any, fpr: float) -> tuple[float, float]:
    """Two thresholds on out-of-fold probabilities: the model alone gets the whole
    false-positive budget (the lowest threshold, at least 0.5, with at most ``fpr`` of benign
    rows above it), then packages a high rule finding also flags get the lowest threshold (at
    least 0.2) that keeps the two together within the same budget.

    The model-alone threshold is fixed first on purpose. Chosen jointly to flag the most
    out-of-fold malware, it was starved: nearly every training sample has a high rule finding
    (campaign clones), so raising it cost nothing out of fold, and one fit drew 1.0 (the model
    alone never flagging) while new campaigns, a sixth of which no rule describes, need it."""
    p, y, high = np.asarray(p), np.asarray(y), np.asarray(high, dtype=bool)
    benign = y == 0
    allowed = int(np.floor(fpr * benign.sum()))
    alone = threshold_for_fpr(p, y, fpr, floor=0.5)
    flagged = p >= alone
    with_rules = alone
    grid = np.round(np.linspace(0.2, 1.0, 801), 6)  # steps of 0.001
    for t in grid[grid <= alone][::-1]:
        if ((flagged | (high & (p >= t))) & benign).sum() > allowed:
            break  # lower thresholds only flag more benign rows
        with_rules = float(t)
    return alone, with_rules


def threshold_for_fpr(p: Any, y: Any, fpr: float, floor: float) -> float:
    """The lowest threshold (at least ``floor``) whose false-positive rate on the benign rows
    of ``p`` is at most ``fpr``."""
    benign = np.sort(np.asarray(p)[np.asarray(y) == 0])[::-1]
    allowed = int(np.floor(fpr * len(benign)))
    if len(benign) == 0:
        return floor
    # flag p >= t: with t just above the (allowed+1)-th highest benign score, at most `allowed`
    cut = benign[allowed] if allowed < len(benign) else 0.0
    return float(max(floor, np.nextafter(cut, 1.0)))


def export_stack(stack: Stack, card: dict[str, Any]) -> bytes:
    """The model file: gzip-compressed JSON, deterministic (sorted keys, no gzip timestamp)."""
    if stack.learners != LEARNERS or stack.drop:
        raise ValueError("only the full stack is shipped")
    doc = {
        "format": FORMAT,
        "schema_hash": schema_hash(),
        "feature_names": dense_names(),
        "text_dim": TEXT_DIM,
        "base": {
            "random_forest": export.export_random_forest(stack.bases["random_forest"]),
            "gradient_boosting": export.export_gradient_boosting(stack.bases["gradient_boosting"]),
            "text_linear": export.export_logistic(stack.bases["text_linear"]),
        },
        "meta": {
            "intercept": float(stack.meta.intercept_[0]),
            "coef": [float(c) for c in stack.meta.coef_[0]],
        },
        "thresholds": stack.thresholds,
        "card": card,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(text, compresslevel=9, mtime=0)
