"""Export fitted scikit-learn models to the JSON-able dicts that :mod:`pkgvet.ml.forest` reads.

Training-only (the optional ``ml`` tooling): it needs numpy and a fitted scikit-learn model,
but it imports scikit-learn itself nowhere, so models are taken as ``Any`` and checked by their
attributes. Nothing is pickled; the dicts hold plain lists, ints and floats and survive
``json.dumps``/``json.loads`` exactly (Python writes floats with round-trip ``repr``), so
thresholds are kept to the last bit: a rounded threshold would move samples to the other side.

Exactness (checked by the tests): with inputs rounded by :func:`pkgvet.ml.forest.as_float32`,
``RandomForest.proba`` reproduces ``RandomForestClassifier.predict_proba(X)[:, 1]``,
``GradientBoosting.raw`` reproduces ``GradientBoostingClassifier.decision_function(X)`` and
``Linear.raw`` reproduces ``LogisticRegression.decision_function(X)``, each to about 1e-12.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["export_gradient_boosting", "export_logistic", "export_random_forest"]

_CONSTANT_DUMMY_STRATEGIES = frozenset({"prior", "most_frequent", "constant"})


def _check_binary(model: Any, what: str) -> None:
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ValueError(f"{what} is not fitted")
    if len(classes) != 2:
        raise ValueError(f"{what} must be a binary classifier, it has {len(classes)} classes")
    if int(getattr(model, "n_outputs_", 1)) != 1:
        raise ValueError(f"{what} must have a single output")


def _tree_structure(tree: Any) -> dict[str, Any]:
    """Topology and thresholds of a fitted ``sklearn.tree._tree.Tree``."""
    left = np.asarray(tree.children_left, dtype=np.int64)
    out: dict[str, Any] = {
        "feature": np.asarray(tree.feature, dtype=np.int64).tolist(),
        "threshold": np.asarray(tree.threshold, dtype=np.float64).tolist(),
        "left": left.tolist(),
        "right": np.asarray(tree.children_right, dtype=np.int64).tolist(),
    }
    missing = getattr(tree, "missing_go_to_left", None)
    if missing is not None:
        flags = np.where(left != -1, np.asarray(missing).astype(np.int64), 0)
        if flags.any():
            out["missing_left"] = flags.tolist()
    return out


def export_random_forest(rf: Any) -> dict[str, Any]:
    """A fitted binary ``RandomForestClassifier`` (or ``ExtraTreesClassifier``) as a dict.

    Every node's ``value`` is the class-1 fraction of its (weighted) samples. Older
    scikit-learn versions store counts in ``tree_.value`` and newer ones fractions; both are
    normalised per node exactly as ``DecisionTreeClassifier.predict_proba`` does.
    """
    _check_binary(rf, "random forest")
    trees: list[dict[str, Any]] = []
    for est in rf.estimators_:
        t = est.tree_
        value = np.asarray(t.value, dtype=np.float64)[:, 0, :]
        total = value.sum(axis=1)
        total[total == 0.0] = 1.0
        frac = value[:, 1] / total
        node = _tree_structure(t)
        node["value"] = frac.tolist()
        trees.append(node)
    return {
        "kind": "random_forest",
        "n_features": int(rf.n_features_in_),
        "trees": trees,
    }


def _scipy_logit() -> Callable[[float], float] | None:
    try:
        special: Any = importlib.import_module("scipy.special")
    except ImportError:  # pragma: no cover - scipy is a scikit-learn dependency
        return None

    def f(p: float) -> float:
        return float(special.logit(np.float64(p)))

    return f


def _logit_like_scipy(p: float) -> float:
    """``scipy.special.logit`` for one double (same formula, same libm calls)."""
    if p < 0.3 or p > 0.65:
        return math.log(p / (1.0 - p))
    s = 2.0 * (p - 0.5)
    return math.log1p(s) - math.log1p(-s)


def _boosting_init(gb: Any) -> float:
    """The raw prediction of the fitted ``init_`` estimator, as ``_raw_predict_init`` has it.

    scikit-learn computes it per sample as ``logit(clip(init_.predict_proba(X)[:, 1], eps,
    1 - eps))`` with ``eps`` the float64 machine epsilon; for the default
    ``DummyClassifier(strategy="prior")`` it is the same for every sample, the log-odds of the
    class-1 prior. Any estimator whose output depends on ``X`` cannot be exported.
    """
    init = gb.init_
    if isinstance(init, str):
        if init == "zero":
            return 0.0
        raise ValueError(f"unsupported init_ {init!r}")
    strategy = getattr(init, "strategy", None)
    if type(init).__name__ != "DummyClassifier" or strategy not in _CONSTANT_DUMMY_STRATEGIES:
        raise ValueError(
            "only a constant init estimator (DummyClassifier with strategy prior, most_frequent "
            f"or constant, or init='zero') can be exported, got {init!r}"
        )
    x0 = np.zeros((1, int(gb.n_features_in_)), dtype=np.float32)
    p = float(np.asarray(init.predict_proba(x0), dtype=np.float64)[0, 1])
    eps = float(np.finfo(np.float64).eps)
    p = min(max(p, eps), 1.0 - eps)
    logit = _scipy_logit() or _logit_like_scipy
    return logit(p)


def export_gradient_boosting(gb: Any) -> dict[str, Any]:
    """A fitted binary ``GradientBoostingClassifier`` with ``loss="log_loss"`` as a dict.

    ``init`` is the raw output of the init estimator (the log-odds of the class-1 prior for
    the default init), ``learning_rate`` the shrinkage and each tree's ``value`` the raw
    node values (``estimators_[i, 0].tree_.value[:, 0, 0]``; only the leaves are used).
    """
    _check_binary(gb, "gradient boosting model")
    loss = getattr(gb, "loss", None)
    if loss != "log_loss":
        raise ValueError(f"only loss='log_loss' can be exported, got {loss!r}")
    estimators = np.asarray(gb.estimators_, dtype=object)
    if estimators.ndim != 2 or estimators.shape[1] != 1:
        raise ValueError(f"expected one tree per stage, got estimators_ {estimators.shape}")
    trees: list[dict[str, Any]] = []
    for est in estimators[:, 0]:
        t = est.tree_
        node = _tree_structure(t)
        node.pop("missing_left", None)  # gradient boosting rejects NaN: no missing routes
        node["value"] = np.asarray(t.value, dtype=np.float64)[:, 0, 0].tolist()
        trees.append(node)
    return {
        "kind": "gradient_boosting",
        "n_features": int(gb.n_features_in_),
        "init": _boosting_init(gb),
        "learning_rate": float(gb.learning_rate),
        "trees": trees,
    }


def export_logistic(lr: Any) -> dict[str, Any]:
    """A fitted binary ``LogisticRegression`` (or any binary linear classifier) as a dict."""
    _check_binary(lr, "linear model")
    coef = np.asarray(lr.coef_, dtype=np.float64)
    if coef.ndim != 2 or coef.shape[0] != 1:
        raise ValueError(f"expected coef_ of shape (1, n_features), got {coef.shape}")
    intercept = np.ravel(np.asarray(lr.intercept_, dtype=np.float64))
    return {
        "kind": "linear",
        "n_features": int(coef.shape[1]),
        "intercept": float(intercept[0]) if intercept.size else 0.0,
        "coef": coef[0].tolist(),
    }
