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

The classes below compile such a dict once, at model load, into flat typed arrays: every tree
of a model in one array per field (``array('i')`` for features and children, ``array('d')``
for thresholds and values), indexed by node number. Compact arrays instead of lists of boxed
numbers spread over the heap matter inside a scan, whose parsing leaves the CPU caches cold;
one array per field spares the walk any index arithmetic. The values are the same doubles, so
the results are bit-identical.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "GradientBoosting",
    "Linear",
    "RandomForest",
    "as_float32",
    "logit",
    "sigmoid",
]

LEAF = -1
_P_MIN = 1e-6
_P_MAX = 1.0 - 1e-6

Tree = Mapping[str, Any]
Model = Mapping[str, Any]


def as_float32(values: Sequence[float]) -> list[float]:
    """Round every value to the nearest float32, as scikit-learn does before a tree walk."""
    return array("f", values).tolist()


def _check_kind(model: Model, kind: str) -> None:
    got = model.get("kind")
    if got != kind:
        raise ValueError(f"expected a {kind!r} model, got kind={got!r}")


class _Trees:
    """The trees of one model, packed: node ``i`` (numbered across all trees) splits on
    ``feature[i]`` at ``threshold[i]`` with children ``left[i]`` and ``right[i]`` (absolute node
    numbers, ``left == -1`` for a leaf), sends NaN left where ``missing_left[i]``, and holds
    ``value[i]``. ``delta[i]`` is ``value[i] - value[parent]`` (0.0 at a root), computed once
    here for the path attribution. One array per field, indexed by the node number: the walk
    does no index arithmetic."""

    __slots__ = ("delta", "feature", "left", "missing_left", "right", "roots", "threshold", "value")

    def __init__(self, model: Model) -> None:
        trees: Sequence[Tree] = model["trees"]
        if not trees:
            raise ValueError(f"{model.get('kind')} model without trees")
        self.feature = array("i")
        self.left = array("i")
        self.right = array("i")
        self.missing_left = array("i")
        self.threshold = array("d")
        self.value = array("d")
        self.delta = array("d")
        roots: list[int] = []
        for tree in trees:
            base = len(self.value)
            roots.append(base)
            left: Sequence[int] = tree["left"]
            right: Sequence[int] = tree["right"]
            n = len(left)
            missing: Sequence[int] = tree.get("missing_left") or [0] * n
            feature: Sequence[int] = tree["feature"]
            value: Sequence[float] = tree["value"]
            columns = (right, missing, feature, tree["threshold"], value)
            if n == 0 or any(len(c) != n for c in columns):
                raise ValueError("malformed tree: arrays of different lengths")
            # children come after their parent: a walk always ends, at a leaf; a split's
            # feature is a real column (a negative index would read another one silently)
            if any(
                not i < left[i] < n or not i < right[i] < n or feature[i] < 0
                for i in range(n)
                if left[i] != LEAF
            ):
                raise ValueError(
                    "malformed tree: a child before its parent or out of range, "
                    "or a split on a negative feature"
                )
            delta = [0.0] * n
            for i in range(n):
                if left[i] != LEAF:
                    delta[left[i]] = value[left[i]] - value[i]
                    delta[right[i]] = value[right[i]] - value[i]
            self.feature.fromlist(list(feature))  # a leaf's is never read
            self.left.fromlist([c if c == LEAF else c + base for c in left])
            self.right.fromlist([c if c == LEAF else c + base for c in right])
            self.missing_left.fromlist(list(missing))
            self.threshold.fromlist(list(tree["threshold"]))
            self.value.fromlist(list(value))
            self.delta.fromlist(delta)
        self.roots = tuple(roots)

    def leaf_sum(self, x: Sequence[float], scale: float, start: float) -> float:
        """``start`` plus ``scale`` times the value of the leaf ``x`` reaches in each tree, added
        one tree at a time in tree order (the order fixes the last bits of the sum). NaN goes
        left where ``missing_left``."""
        feature, left, right = self.feature, self.left, self.right
        threshold, missing, value = self.threshold, self.missing_left, self.value
        total = start
        for node in self.roots:
            child = left[node]
            while child != LEAF:
                v = x[feature[node]]
                if not (v <= threshold[node] or (v != v and missing[node])):
                    child = right[node]
                node = child
                child = left[node]
            total += scale * value[node]
        return total


class RandomForest:
    """A random forest's probability of class 1 (the mean over trees of the leaf's class-1
    fraction) and its path attribution."""

    __slots__ = ("_trees",)

    def __init__(self, model: Model) -> None:
        _check_kind(model, "random_forest")
        self._trees = _Trees(model)

    def proba(self, x: Sequence[float]) -> float:
        return self._trees.leaf_sum(x, 1.0, 0.0) / len(self._trees.roots)

    def bias(self) -> float:
        """The mean root value over trees: the forest's output before any split is taken."""
        t = self._trees
        return math.fsum(t.value[r] for r in t.roots) / len(t.roots)

    def explained(self, x: Sequence[float]) -> tuple[float, dict[int, float]]:
        """:meth:`proba` and its Saabas path attribution to features, in one walk.

        For every split on ``x``'s path in every tree, ``value[child] - value[parent]`` is
        credited to the split's feature; the sums are averaged over trees. Features whose
        credits sum to zero (those never split on along the paths, in particular) are absent.
        ``bias() + sum(attribution.values())`` equals the probability up to rounding.
        """
        t = self._trees
        feature, left, right = t.feature, t.left, t.right
        threshold, missing, delta, value = t.threshold, t.missing_left, t.delta, t.value
        contrib = [0.0] * len(x)
        total = 0.0
        for node in t.roots:
            child = left[node]
            while child != LEAF:
                f = feature[node]
                v = x[f]
                if not (v <= threshold[node] or (v != v and missing[node])):
                    child = right[node]
                contrib[f] += delta[child]
                node = child
                child = left[node]
            total += value[node]
        n = len(t.roots)
        return total / n, {f: c / n for f, c in enumerate(contrib) if c}


class GradientBoosting:
    """A binary gradient-boosting model: raw log-odds ``init + lr * sum(leaf values)``."""

    __slots__ = ("_init", "_lr", "_trees")

    def __init__(self, model: Model) -> None:
        _check_kind(model, "gradient_boosting")
        self._lr = float(model["learning_rate"])
        self._init = float(model["init"])
        self._trees = _Trees(model)

    def raw(self, x: Sequence[float]) -> float:
        """The stages are added one at a time, ``raw += lr * leaf``, in scikit-learn's order,
        so the result matches ``decision_function`` to the last bit or so."""
        return self._trees.leaf_sum(x, self._lr, self._init)

    def proba(self, x: Sequence[float]) -> float:
        return sigmoid(self.raw(x))


class Linear:
    """A binary logistic regression over a sparse vector given as index -> value."""

    __slots__ = ("coef", "intercept")

    def __init__(self, model: Model) -> None:
        _check_kind(model, "linear")
        self.coef = array("d", model["coef"])
        self.intercept = float(model["intercept"])

    def raw(self, x_sparse: Mapping[int, float]) -> float:
        """``intercept + coef . x``."""
        coef = self.coef
        dot = math.fsum(coef[i] * v for i, v in x_sparse.items() if v)
        return dot + self.intercept

    def proba(self, x_sparse: Mapping[int, float]) -> float:
        return sigmoid(self.raw(x_sparse))


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
