"""Pure-Python tree/linear inference (pkgvet.ml.forest) against scikit-learn (pkgvet.ml.export)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

from pkgvet.ml import forest
from pkgvet.ml.forest import (
    as_float32,
    boosting_proba,
    boosting_raw,
    forest_bias,
    forest_contributions,
    forest_proba,
    linear_proba,
    linear_raw,
    logit,
    sigmoid,
    tree_value,
)

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


def test_hand_made_trees() -> None:
    assert tree_value(TREE_A, [0.5]) == 0.1  # x <= threshold goes left
    assert tree_value(TREE_A, [0.6]) == 0.9
    assert tree_value(TREE_B, [0.3, 1.0]) == 0.6
    assert tree_value(TREE_B, [0.0, 3.0]) == 0.8
    assert tree_value(TREE_B, [0.0, 1.0]) == 0.2
    rf = {"kind": "random_forest", "trees": [TREE_A, TREE_B]}
    assert forest_proba(rf, [0.3, 1.0]) == pytest.approx((0.1 + 0.6) / 2)
    contrib = forest_contributions(rf, [0.3, 1.0])
    # tree A: f0 0.1-0.5; tree B: f1 0.3-0.4, f0 0.6-0.3
    assert contrib == pytest.approx({0: (-0.4 + 0.3) / 2, 1: -0.1 / 2})
    assert forest_bias(rf) == pytest.approx(0.45)


def test_nan_routes() -> None:
    assert tree_value(TREE_A, [math.nan]) == 0.9  # NaN goes right by default
    with_missing = dict(TREE_A, missing_left=[1, 0, 0])
    assert tree_value(with_missing, [math.nan]) == 0.1
    assert tree_value(with_missing, [0.9]) == 0.9


def test_kind_is_checked() -> None:
    with pytest.raises(ValueError):
        forest_proba({"kind": "gradient_boosting", "trees": [TREE_A]}, [0.0])
    with pytest.raises(ValueError):
        boosting_raw({"kind": "random_forest", "trees": [TREE_A]}, [0.0])


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
    lin = {"kind": "linear", "intercept": -1.0, "coef": [0.5, 0.0, 2.0]}
    assert linear_raw(lin, {}) == -1.0
    assert linear_raw(lin, {0: 2.0, 2: 1.0}) == pytest.approx(2.0)
    assert linear_proba(lin, {0: 2.0}) == 0.5


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
    got = np.array([forest_proba(exported, r) for r in rows])
    assert np.max(np.abs(got - expected)) < 1e-9

    loaded = _roundtrip(exported)
    assert loaded == exported
    got2 = np.array([forest_proba(loaded, r) for r in rows])
    assert np.array_equal(got, got2)

    # Saabas: bias + contributions == probability, for every row
    bias = forest_bias(loaded)
    for r, p in zip(rows[:300], got[:300], strict=True):
        contrib = forest_contributions(loaded, r)
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
    got = np.array([forest_proba(exported, r) for r in _rows32(X)])
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
    got = np.array([boosting_raw(exported, r) for r in rows])
    assert np.max(np.abs(got - expected)) < 1e-9

    loaded = _roundtrip(exported)
    assert loaded == exported
    got2 = np.array([boosting_raw(loaded, r) for r in rows])
    assert np.array_equal(got, got2)
    proba = np.array([boosting_proba(loaded, r) for r in rows])
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
    got = np.array([boosting_raw(exported, r) for r in _rows32(X[:500])])
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
        assert linear_raw(exported, x_sparse) == pytest.approx(expected[i], abs=1e-9)
    p = lr.predict_proba(Xs[:50])[:, 1]
    row0 = Xs.getrow(0)
    assert linear_proba(
        exported, dict(zip(row0.indices.tolist(), row0.data.tolist(), strict=True))
    ) == pytest.approx(p[0], abs=1e-9)


def test_one_walk_gives_the_probability_and_its_attribution() -> None:
    from pkgvet.ml.forest import forest_bias, forest_explained

    rf = {"kind": "random_forest", "trees": [TREE_A, TREE_B]}
    for x in ([0.3, 1.0], [0.9, -2.0], [0.5, 0.5], [math.nan, 0.0]):
        p, contrib = forest_explained(rf, x)
        assert p == forest_proba(rf, x)
        assert contrib == forest_contributions(rf, x)
        assert forest_bias(rf) + sum(contrib.values()) == pytest.approx(p)
