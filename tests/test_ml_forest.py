"""Pure-Python tree/linear inference (pkgvet.ml.forest) against scikit-learn (pkgvet.ml.export)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

from pkgvet.ml import forest
from pkgvet.ml.forest import GradientBoosting, Linear, RandomForest, as_float32, logit, sigmoid

# A hand-made stump pair: feature 0 <= 0.5 -> left.
TREE_A: dict[str, Any] = {
    "feature": [0, -2, -2],
    "threshold": [0.5, -2.0, -2.0],
    "left": [1, -1, -1],
    "right": [2, -1, -1],
    "value": [0.5, 0.1, 0.9],
}
TREE_B: dict[str, Any] = {
    "feature": [1, 0, -2, -2, -2],
    "threshold": [2.0, 0.25, -2.0, -2.0, -2.0],
    "left": [1, 2, -1, -1, -1],
    "right": [4, 3, -1, -1, -1],
    "value": [0.4, 0.3, 0.2, 0.6, 0.8],
}


def test_forest_is_stdlib_only() -> None:
    tree = ast.parse(Path(forest.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"numpy", "sklearn", "scipy", "pkgvet"}


def _rf(*trees: dict[str, Any]) -> RandomForest:
    return RandomForest({"kind": "random_forest", "trees": list(trees)})


def test_hand_made_trees() -> None:
    assert _rf(TREE_A).proba([0.5]) == 0.1  # x <= threshold goes left
    assert _rf(TREE_A).proba([0.6]) == 0.9
    assert _rf(TREE_B).proba([0.3, 1.0]) == 0.6
    assert _rf(TREE_B).proba([0.0, 3.0]) == 0.8
    assert _rf(TREE_B).proba([0.0, 1.0]) == 0.2
    rf = _rf(TREE_A, TREE_B)  # the second tree's nodes are numbered after the first's
    assert rf.proba([0.3, 1.0]) == pytest.approx((0.1 + 0.6) / 2)
    _p, contrib = rf.explained([0.3, 1.0])
    # tree A: f0 0.1-0.5; tree B: f1 0.3-0.4, f0 0.6-0.3
    assert contrib == pytest.approx({0: (-0.4 + 0.3) / 2, 1: -0.1 / 2})
    assert rf.bias() == pytest.approx(0.45)
    gb = GradientBoosting(
        {"kind": "gradient_boosting", "init": 0.5, "learning_rate": 0.1, "trees": [TREE_B, TREE_A]}
    )
    assert gb.raw([0.3, 1.0]) == pytest.approx(0.5 + 0.1 * 0.6 + 0.1 * 0.1)


def test_nan_routes() -> None:
    assert _rf(TREE_A).proba([math.nan]) == 0.9  # NaN goes right by default
    with_missing = dict(TREE_A, missing_left=[1, 0, 0])
    assert _rf(with_missing).proba([math.nan]) == 0.1
    assert _rf(with_missing).proba([0.9]) == 0.9
    assert _rf(TREE_B, with_missing).proba([math.nan, 1.0]) == pytest.approx((0.6 + 0.1) / 2)


def test_kind_is_checked() -> None:
    with pytest.raises(ValueError):
        RandomForest({"kind": "gradient_boosting", "trees": [TREE_A]})
    with pytest.raises(ValueError):
        GradientBoosting({"kind": "random_forest", "trees": [TREE_A]})
    with pytest.raises(ValueError):
        Linear({"kind": "random_forest", "coef": []})


@pytest.mark.parametrize(
    "tree",
    [
        dict(TREE_A, left=[0, -1, -1]),  # a node its own child: the walk would never end
        dict(TREE_B, right=[4, 0, -1, -1, -1]),  # a link back to the root
        dict(TREE_A, right=[7, -1, -1]),  # out of range
        dict(TREE_A, feature=[-2, -2, -2]),  # a split on a negative feature
        dict(TREE_A, value=[0.5, 0.1]),  # arrays of different lengths
        dict(TREE_A, left=[], right=[], feature=[], threshold=[], value=[]),
    ],
)
def test_malformed_trees_are_refused(tree: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="malformed tree"):
        _rf(tree)
    with pytest.raises(ValueError, match="without trees"):
        _rf()


def test_as_float32() -> None:
    x = as_float32([0.1, 1.0, 1e10 + 1.0, 3])
    assert x[1] == 1.0 and x[3] == 3.0
    assert x[0] != 0.1 and abs(x[0] - 0.1) < 1e-8
    assert x[2] == 1e10


def test_sigmoid_logit() -> None:
    assert sigmoid(0.0) == 0.5
    assert sigmoid(1000.0) == 1.0
    assert sigmoid(-1000.0) == 0.0
    for p in (0.01, 0.3, 0.5, 0.77, 0.999):
        assert sigmoid(logit(p)) == pytest.approx(p, abs=1e-12)
    assert logit(0.0) == pytest.approx(math.log(1e-6 / (1 - 1e-6)))
    assert logit(1.0) == pytest.approx(-logit(0.0))


def test_linear_hand_made() -> None:
    lin = Linear({"kind": "linear", "intercept": -1.0, "coef": [0.5, 0.0, 2.0]})
    assert lin.raw({}) == -1.0
    assert lin.raw({0: 2.0, 2: 1.0}) == pytest.approx(2.0)
    assert lin.proba({0: 2.0}) == 0.5


# --- against scikit-learn ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any]:
    pytest.importorskip("sklearn")
    import numpy as np
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=2000,
        n_features=40,
        n_informative=12,
        n_redundant=6,
        flip_y=0.05,
        random_state=7,
    )
    rng = np.random.default_rng(3)
    # integer-valued counts and log1p-scaled counts, as the real features are
    X[:, :8] = np.floor(np.abs(X[:, :8]) * 3)
    X[:, 8:16] = np.log1p(np.abs(X[:, 8:16]) * 50)
    X[:, 16:20] = rng.integers(0, 5, size=(2000, 4))
    X[:, 20:24] = np.log1p(rng.integers(0, 1000, size=(2000, 4)))
    return X, y


def _rows32(X: Any) -> list[list[float]]:
    return [as_float32(row) for row in X.tolist()]


def _roundtrip(model: dict[str, Any]) -> Any:
    return json.loads(json.dumps(model))


def test_random_forest_matches_sklearn(data: tuple[Any, Any]) -> None:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    from pkgvet.ml.export import export_random_forest

    X, y = data
    rf = RandomForestClassifier(n_estimators=40, min_samples_leaf=2, random_state=0).fit(X, y)
    exported = export_random_forest(rf)
    assert exported["kind"] == "random_forest" and len(exported["trees"]) == 40
    expected = rf.predict_proba(X)[:, 1]
    rows = _rows32(X)
    got = np.array([RandomForest(exported).proba(r) for r in rows])
    assert np.max(np.abs(got - expected)) < 1e-9

    loaded = _roundtrip(exported)
    assert loaded == exported
    forest_ = RandomForest(loaded)
    got2 = np.array([forest_.proba(r) for r in rows])
    assert np.array_equal(got, got2)

    # Saabas: bias + contributions == probability, for every row
    bias = forest_.bias()
    for r, p in zip(rows[:300], got[:300], strict=True):
        p_explained, contrib = forest_.explained(r)
        assert p_explained == p
        assert bias + sum(contrib.values()) == pytest.approx(p, abs=1e-9)
        assert all(0 <= f < 40 for f in contrib)


def test_random_forest_with_class_weight_and_missing_values(data: tuple[Any, Any]) -> None:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    from pkgvet.ml.export import export_random_forest

    X, y = data
    X = X.copy()
    rng = np.random.default_rng(11)
    X[rng.random(X.shape) < 0.05] = np.nan
    rf = RandomForestClassifier(
        n_estimators=15, class_weight="balanced", max_depth=8, random_state=1
    ).fit(X, y)
    exported = _roundtrip(export_random_forest(rf))
    assert any("missing_left" in t for t in exported["trees"])
    expected = rf.predict_proba(X)[:, 1]
    forest_ = RandomForest(exported)
    got = np.array([forest_.proba(r) for r in _rows32(X)])
    assert np.max(np.abs(got - expected)) < 1e-9


def test_gradient_boosting_matches_sklearn(data: tuple[Any, Any]) -> None:
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    from pkgvet.ml.export import export_gradient_boosting

    X, y = data
    gb = GradientBoostingClassifier(
        n_estimators=60, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=0
    ).fit(X, y)
    exported = export_gradient_boosting(gb)
    prior = float(np.mean(y))
    assert exported["init"] == pytest.approx(math.log(prior / (1 - prior)), abs=1e-12)
    expected = gb.decision_function(X)
    rows = _rows32(X)
    got = np.array([GradientBoosting(exported).raw(r) for r in rows])
    assert np.max(np.abs(got - expected)) < 1e-9

    loaded = _roundtrip(exported)
    assert loaded == exported
    boosted = GradientBoosting(loaded)
    got2 = np.array([boosted.raw(r) for r in rows])
    assert np.array_equal(got, got2)
    proba = np.array([boosted.proba(r) for r in rows])
    assert np.max(np.abs(proba - gb.predict_proba(X)[:, 1])) < 1e-9


def test_gradient_boosting_zero_init(data: tuple[Any, Any]) -> None:
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    from pkgvet.ml.export import export_gradient_boosting

    X, y = data
    gb = GradientBoostingClassifier(
        n_estimators=10, init="zero", learning_rate=0.3, random_state=0
    ).fit(X[:500], y[:500])
    exported = _roundtrip(export_gradient_boosting(gb))
    assert exported["init"] == 0.0
    boosted = GradientBoosting(exported)
    got = np.array([boosted.raw(r) for r in _rows32(X[:500])])
    assert np.max(np.abs(got - gb.decision_function(X[:500]))) < 1e-9


@pytest.mark.filterwarnings("ignore:lbfgs failed to converge")
def test_export_rejects_unsupported(data: tuple[Any, Any]) -> None:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from pkgvet.ml.export import (
        export_gradient_boosting,
        export_logistic,
        export_random_forest,
    )

    X, y = data
    y3 = y + (X[:, 0] > 3)
    with pytest.raises(ValueError):
        export_random_forest(RandomForestClassifier(n_estimators=2).fit(X[:200], y3[:200]))
    with pytest.raises(ValueError):
        export_logistic(LogisticRegression(max_iter=50).fit(X[:200], y3[:200]))
    gb = GradientBoostingClassifier(n_estimators=2, loss="exponential").fit(X[:200], y[:200])
    with pytest.raises(ValueError):
        export_gradient_boosting(gb)
    with pytest.raises(ValueError):
        export_random_forest(RandomForestClassifier())


def test_logistic_matches_sklearn(data: tuple[Any, Any]) -> None:
    import numpy as np
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    from pkgvet.ml.export import export_logistic

    X, y = data
    rng = np.random.default_rng(5)
    dense = np.where(rng.random((2000, 300)) < 0.03, rng.random((2000, 300)) * 3, 0.0)
    dense[:, :40] += X * (rng.random((2000, 40)) < 0.2)
    Xs = sparse.csr_matrix(dense)
    lr = LogisticRegression(C=0.5, max_iter=2000).fit(Xs, y)
    exported = _roundtrip(export_logistic(lr))
    assert exported["kind"] == "linear" and len(exported["coef"]) == 300
    expected = lr.decision_function(Xs)
    for i in range(Xs.shape[0]):
        row = Xs.getrow(i)
        x_sparse = {int(j): float(v) for j, v in zip(row.indices, row.data, strict=True)}
        assert Linear(exported).raw(x_sparse) == pytest.approx(expected[i], abs=1e-9)
    p = lr.predict_proba(Xs[:50])[:, 1]
    row0 = Xs.getrow(0)
    assert Linear(exported).proba(
        dict(zip(row0.indices.tolist(), row0.data.tolist(), strict=True))
    ) == pytest.approx(p[0], abs=1e-9)


def test_one_walk_gives_the_probability_and_its_attribution() -> None:
    rf = _rf(TREE_A, TREE_B)
    for x in ([0.3, 1.0], [0.9, -2.0], [0.5, 0.5], [math.nan, 0.0]):
        p, contrib = rf.explained(x)
        assert p == rf.proba(x)
        assert rf.bias() + sum(contrib.values()) == pytest.approx(p)
        assert all(c != 0.0 for c in contrib.values())
