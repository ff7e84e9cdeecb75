"""Pure-Python inference for tree ensembles and linear models stored as JSON-able dicts.

This module runs in every scan, so it imports the standard library only (no numpy, no
scikit-learn) and keeps the tree walk tight. The dicts are written by :mod:`pkgvet.ml.export`.

A tree is ``{"feature": [...], "threshold": [...], "left": [...], "right": [...],
"value": [...]}``, one entry per node, node 0 the root. Leaves have ``left == right == -1``
(and ``feature == -2``). A sample goes left when ``x[feature] <= threshold``. A tree may also
hold ``"missing_left"`` (0/1 per node): where it is 1, a NaN feature value goes left (as in
scikit-learn trees trained with missing values); otherwise NaN goes right.

scikit-learn compares ``float32(x)`` with ``float64`` thresholds, so feature vectors must be
rounded with :func:`as_float32` before they are given to the tree functions, or the
predictions can differ from scikit-learn's near a threshold.

Model kinds:

- ``{"kind": "random_forest", "trees": [...]}``: a node's ``value`` is the fraction of class 1
  among the (weighted) training samples in that node, for every node, internal ones too;
- ``{"kind": "gradient_boosting", "init": float, "learning_rate": float, "trees": [...]}``:
  binary log-loss; ``init`` is the raw log-odds of the prior and leaf values are raw updates;
- ``{"kind": "linear", "intercept": float, "coef": [...]}``: binary logistic regression over
  a sparse vector.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "as_float32",
    "boosting_proba",
    "boosting_raw",
    "forest_bias",
    "forest_contributions",
    "forest_explained",
    "forest_proba",
    "linear_proba",
    "linear_raw",
    "logit",
    "sigmoid",
    "tree_value",
]

LEAF = -1
_P_MIN = 1e-6
_P_MAX = 1.0 - 1e-6

Tree = Mapping[str, Any]
Model = Mapping[str, Any]


def as_float32(values: Sequence[float]) -> list[float]:
    """Round every value to the nearest float32, as scikit-learn does before a tree walk."""
    return array("f", values).tolist()


def _leaf(tree: Tree, x: Sequence[float]) -> int:
    feature: Sequence[int] = tree["feature"]
    threshold: Sequence[float] = tree["threshold"]
    left: Sequence[int] = tree["left"]
    right: Sequence[int] = tree["right"]
    missing: Sequence[int] | None = tree.get("missing_left")
    node = 0
    child = left[0]
    while child != LEAF:
        v = x[feature[node]]
        if v <= threshold[node] or (v != v and missing is not None and missing[node]):
            node = child
        else:
            node = right[node]
        child = left[node]
    return node


def tree_value(tree: Tree, x: Sequence[float]) -> float:
    """The value of the leaf that ``x`` reaches."""
    return float(tree["value"][_leaf(tree, x)])


def _check_kind(model: Model, kind: str) -> None:
    got = model.get("kind")
    if got != kind:
        raise ValueError(f"expected a {kind!r} model, got kind={got!r}")


def forest_proba(forest: Model, x: Sequence[float]) -> float:
    """Probability of class 1: the mean over trees of the leaf's class-1 fraction."""
    _check_kind(forest, "random_forest")
    trees: Sequence[Tree] = forest["trees"]
    if not trees:
        raise ValueError("random forest without trees")
    total = 0.0
    for tree in trees:
        total += tree["value"][_leaf(tree, x)]
    return total / len(trees)


def forest_bias(forest: Model) -> float:
    """The mean root value over trees: the forest's output before any split is taken."""
    _check_kind(forest, "random_forest")
    trees: Sequence[Tree] = forest["trees"]
    if not trees:
        raise ValueError("random forest without trees")
    return math.fsum(float(t["value"][0]) for t in trees) / len(trees)


def forest_contributions(forest: Model, x: Sequence[float]) -> dict[int, float]:
    """Saabas path attribution of :func:`forest_proba` to features (see
    :func:`forest_explained`)."""
    return forest_explained(forest, x)[1]


def forest_explained(forest: Model, x: Sequence[float]) -> tuple[float, dict[int, float]]:
    """:func:`forest_proba` and its Saabas path attribution to features, in one walk.

    For every split on ``x``'s path in every tree, ``value[child] - value[parent]`` is credited
    to the split's feature; the sums are averaged over trees. Features never split on along
    the paths are absent. ``forest_bias(forest) + sum(contributions.values())`` equals the
    probability up to rounding.
    """
    _check_kind(forest, "random_forest")
    trees: Sequence[Tree] = forest["trees"]
    if not trees:
        raise ValueError("random forest without trees")
    contrib: dict[int, float] = {}
    total = 0.0
    for tree in trees:
        feature: Sequence[int] = tree["feature"]
        threshold: Sequence[float] = tree["threshold"]
        left: Sequence[int] = tree["left"]
        right: Sequence[int] = tree["right"]
        value: Sequence[float] = tree["value"]
        missing: Sequence[int] | None = tree.get("missing_left")
        node = 0
        child = left[0]
        while child != LEAF:
            f = feature[node]
            v = x[f]
            if not (v <= threshold[node] or (v != v and missing is not None and missing[node])):
                child = right[node]
            contrib[f] = contrib.get(f, 0.0) + (value[child] - value[node])
            node = child
            child = left[node]
        total += value[node]
    n = len(trees)
    return total / n, {f: c / n for f, c in contrib.items()}


def boosting_raw(gb: Model, x: Sequence[float]) -> float:
    """Raw log-odds of a binary gradient-boosting model: ``init + lr * sum(leaf values)``.

    The stages are added one at a time, ``raw += lr * leaf``, in scikit-learn's order, so the
    result matches ``decision_function`` to the last bit or so.
    """
    _check_kind(gb, "gradient_boosting")
    lr = float(gb["learning_rate"])
    raw = float(gb["init"])
    for tree in gb["trees"]:
        raw += lr * tree["value"][_leaf(tree, x)]
    return raw


def boosting_proba(gb: Model, x: Sequence[float]) -> float:
    """Probability of class 1 of a binary gradient-boosting model."""
    return sigmoid(boosting_raw(gb, x))


def linear_raw(lin: Model, x_sparse: Mapping[int, float]) -> float:
    """``intercept + coef . x`` for a sparse vector given as index -> value."""
    _check_kind(lin, "linear")
    coef: Sequence[float] = lin["coef"]
    dot = math.fsum(coef[i] * v for i, v in x_sparse.items() if v)
    return dot + float(lin["intercept"])


def linear_proba(lin: Model, x_sparse: Mapping[int, float]) -> float:
    """Probability of class 1 of a binary logistic regression."""
    return sigmoid(linear_raw(lin, x_sparse))


def sigmoid(z: float) -> float:
    """The logistic function, without overflow for large ``|z|``."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def logit(p: float) -> float:
    """Log-odds of ``p``, with ``p`` clipped to ``[1e-6, 1 - 1e-6]``."""
    p = min(max(p, _P_MIN), _P_MAX)
    return math.log(p / (1.0 - p))
