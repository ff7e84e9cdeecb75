"""The evaluation split (campaign-grouped, time-ordered), the metrics and the report."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pkgvet.ml.campaigns import line_shingles, minhash
from test_ml_model import synthetic_rows

pytest.importorskip("sklearn")

from pkgvet.ml.evaluate import evaluate, metrics, time_split
from pkgvet.ml.train import threshold_for_fpr

CAMPAIGN = [f"payload_line_{i} = fetch('https://example.invalid/{i}')" for i in range(20)]


def _row(i: int, label: int, date: str, name: str, code: list[str], source: str = "s") -> Any:
    return {
        "sample": {
            "id": f"r{i}",
            "label": label,
            "date": date,
            "stratum": "malware" if label else "long_tail",
            "source": source,
            "name": name,
            "path": "",
        },
        "fingerprint": list(minhash(line_shingles(["\n".join(code)]))),
    }


def test_campaigns_never_straddle_the_cutoff() -> None:
    other = [f"unrelated_{i} = compute({i} * 3.5)" for i in range(20)]
    rows = [
        _row(0, 1, "2024-05-02", "evil-a", CAMPAIGN),
        _row(1, 1, "2024-08-10", "evil-b", [*CAMPAIGN[:-1], "changed = 1"]),  # clone, later
        _row(2, 1, "2024-08-11", "fresh-c", other),  # a new campaign after the cut-off
        _row(3, 0, "2023-01-01", "lib", ["def f(): return 1"]),
        _row(4, 0, "2024-09-01", "lib", ["def g(): return 2"]),  # same project, later release
        _row(5, 0, "2024-09-01", "newlib", ["def h(): return 3"]),
        _row(6, 0, "2024-09-01", "tuned", ["def k(): return 4"], source="scan-manifest"),
        _row(7, 1, "0000-00-00", "undated", ["x = 1"]),
    ]
    split = time_split(rows, "2024-07-01")
    assert split.train == [0, 3]
    assert split.known == [1, 4]
    assert split.test == [2, 5]
    assert split.undated == [7]
    assert 6 not in split.train + split.test + split.known  # tuning data never tests


def test_metrics_and_threshold_for_a_false_positive_budget() -> None:
    m = metrics([1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 3)
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["fpr"] == pytest.approx(0.25, abs=1e-4)
    p = [0.99, 0.95, 0.9, 0.8, 0.7, 0.6] + [i / 1000 for i in range(1000)]
    y = [1] * 6 + [0] * 1000
    t = threshold_for_fpr(p, y, 0.002, floor=0.5)
    benign_flagged = sum(1 for pi, yi in zip(p, y, strict=True) if yi == 0 and pi >= t)
    assert benign_flagged <= 2 and t >= 0.5


def test_evaluate_writes_report_metrics_and_plots(tmp_path: Path) -> None:
    rows = synthetic_rows(300)
    for i, r in enumerate(rows):
        r["sample"]["date"] = "2024-03-01" if i < 200 else "2024-09-01"
        r["sample"]["name"] = f"pkg{i}"
        r["fingerprint"] = list(minhash(line_shingles([f"unique_line_{i} = {i}"])))
        r["categories"] = ["command_execution"] if r["sample"]["label"] else []
        r["rules_high"] = bool(r["sample"]["label"] and i % 2)
    result = evaluate(
        copy.deepcopy(rows), tmp_path, "2024-07-01", ablation=True, log=lambda m: None, n_folds=2
    )
    assert result["sizes"]["test"] == {"long_tail": 67, "malware": 33}
    assert set(result["ablation"]) == {"metadata", "files", "code", "strings", "rules", "text"}
    assert set(result["base_learners"]) == {"random_forest", "gradient_boosting", "text_linear"}
    assert result["rules_only"]["recall"] == pytest.approx(
        sum(1 for r in rows[200:] if r["rules_high"]) / 33, abs=1e-3
    )
    # "not clean" (malicious or suspicious) includes every malicious verdict
    review, verdict = result["not_clean"], result["verdict"]
    assert review["tp"] >= verdict["tp"] and review["fp"] >= verdict["fp"]
    assert review["strata"]["long_tail"]["n"] == 67
    assert review["recall"] >= result["rules_only"]["recall"]  # a high finding is never clean
    for name in ("pr_curve.png", "confusion.png", "calibration.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "metrics.json").read_text())["cutoff"] == "2024-07-01"
    report = (tmp_path / "report.md").read_text()
    assert "Ablation" in report and "| not clean" in report


def test_seed_spread_refits_with_other_seeds_and_keeps_seed_zero_as_the_main_figures(
    tmp_path: Path,
) -> None:
    rows = synthetic_rows(240)
    for i, r in enumerate(rows):
        r["sample"]["date"] = "2024-03-01" if i < 160 else "2024-09-01"
        r["sample"]["name"] = f"pkg{i}"
        r["fingerprint"] = list(minhash(line_shingles([f"unique_line_{i} = {i}"])))
        r["categories"] = []
        r["rules_high"] = False
    one = evaluate(copy.deepcopy(rows), tmp_path / "a", ablation=False, log=lambda m: None)
    three = evaluate(
        copy.deepcopy(rows), tmp_path / "b", ablation=False, log=lambda m: None, seeds=3
    )
    assert "seed_spread" not in one
    sp = three["seed_spread"]
    assert [s["seed"] for s in sp["per_seed"]] == [0, 1, 2]
    # seed 0 is the main fit: the same verdict as a one-seed run, reported with its threshold
    assert three["verdict"] == one["verdict"]
    assert sp["per_seed"][0]["f1"] == one["verdict"]["f1"]
    assert sp["per_seed"][0]["threshold"] == pytest.approx(one["thresholds"]["malicious"], abs=1e-6)
    assert sp["f1"][0] <= one["verdict"]["f1"] <= sp["f1"][1]
    n_mal = three["sizes"]["test"]["malware"]
    assert sp["malware_flagged_by_all"] <= sp["malware_flagged_by_any"] <= n_mal
    assert sp["benign_flagged_by_all"] <= sp["benign_flagged_by_any"]
    assert 0 <= sp["benign_score_change"]["mean"] <= sp["benign_score_change"]["max"] <= 1
    report = (tmp_path / "b" / "report.md").read_text()
    assert "## Seed spread" in report and "| 2 |" in report
    assert "NaN" not in (tmp_path / "b" / "metrics.json").read_text()  # plain JSON


def test_joint_thresholds_respect_one_false_positive_budget() -> None:
    import numpy as np

    from pkgvet.ml.train import flag, joint_thresholds

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(600, int), np.zeros(1000, int)]
    p = np.r_[rng.uniform(0.4, 1.0, 600), rng.beta(1, 8, 1000)]
    high = np.r_[rng.random(600) < 0.7, rng.random(1000) < 0.03]
    alone, with_rules = joint_thresholds(p, y, high, 0.005)
    assert 0.5 <= alone <= 1.0 and 0.2 <= with_rules <= alone
    th = {"malicious": alone, "malicious_with_rules": with_rules}
    flagged = flag(p, high, th)
    assert (flagged & (y == 0)).sum() <= 5
    # using the rules never flags fewer malicious rows than the model alone at the same budget
    assert (flagged & (y == 1)).sum() >= ((p >= alone) & (y == 1)).sum()


def test_a_validation_run_can_hold_out_benign_groups_by_name() -> None:
    rows = [_row(0, 1, "2024-05-02", "evil-a", CAMPAIGN)]
    rows += [_row(1, 1, "2024-08-10", "fresh", ["later = 1"])]  # after `until`: never seen
    for i in range(2, 202):
        rows.append(_row(i, 0, "2023-01-01", f"lib{i}", [f"def f{i}(): return {i}"]))
    rows.append(_row(202, 0, "2024-06-01", "lib2", ["def late(): return 0"]))  # lib2's release
    rows.append(_row(203, 0, "2023-01-01", "tuned", ["def k(): return 4"], "scan-manifest"))
    split = time_split(rows, "2024-03-01", until="2024-07-01", benign_holdout=0.3)

    def benign(idx: list[int]) -> set[str]:
        return {rows[i]["sample"]["name"] for i in idx if rows[i]["sample"]["label"] == 0}

    benign_test, benign_train = benign(split.test), benign(split.train)
    assert 0 in split.test and 1 not in split.test + split.train  # malware: still by date
    assert not benign_test & benign_train  # a project's releases stay on one side
    assert 40 <= len(benign_test) <= 80  # about 30% of 200 projects, whatever their date
    assert 203 not in split.test  # tuning data never tests
    again = time_split(copy.deepcopy(rows), "2024-03-01", until="2024-07-01", benign_holdout=0.3)
    assert again.test == split.test  # stable across runs
    with pytest.raises(ValueError, match="validation"):
        time_split(rows, "2024-03-01", benign_holdout=0.3)
