"""The honest evaluation: a split grouped by campaign and ordered by time.

- **Campaigns**: packages whose code is near-identical (MinHash of their source lines, estimated
  Jaccard ≥ 0.7), and releases sharing a project name, form one group.
- **Time**: malware entered the dataset, benign releases were uploaded. A group belongs to the
  period of its *first* sample. Training takes the samples dated before the cut-off in groups
  that started before it; the test takes the samples from the cut-off on in groups that started
  from it on. Later samples of campaigns already seen in training are not in the test (they are
  reported apart, as "known campaigns"): a model that has seen a campaign's clones finds their
  siblings trivially.
- Benign manifests that were used to tune the rules (``scan-manifest``) only ever train.
- Choices of the model (learners, their settings, thresholds) are made on *validation* runs
  inside the training period (``--cutoff 2024-05-01 --until 2024-07-01``), never on the test;
  ``--benign-holdout 0.3`` gives them a benign test part large enough to read a false-positive
  rate (a name-grouped 30% of the benign releases uploaded before ``--until``).

Reported: precision, recall, F1 and the false-positive rate per benign stratum (for the malicious
verdict, and for any verdict but clean: what a person would review), recall per month
and per behaviour category, the rules-only verdict on the same split, each base learner against
the stack, an ablation by feature group, and PR, confusion and calibration plots.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pkgvet.ml import campaigns, plots
from pkgvet.ml.dataset import UNKNOWN_DATE
from pkgvet.ml.train import (
    FEATURE_GROUPS,
    LEARNERS,
    MALICIOUS_FPR,
    Data,
    Stack,
    fit_stack,
    flag,
    matrices,
    rules_high,
    subset,
    threshold_for_fpr,
)

CUTOFF = "2024-07-01"
TRAIN_ONLY_SOURCES = frozenset({"scan-manifest"})


@dataclass(slots=True)
class Split:
    train: list[int]
    test: list[int]
    known: list[int]  # later samples of campaigns that started before the cut-off
    undated: list[int]
    groups: Any  # group id per row


def campaign_groups(rows: Sequence[dict[str, Any]]) -> list[int]:
    """A group id per row: near-identical code, or the same project name."""
    sigs = [tuple(r.get("fingerprint") or ()) or (campaigns.MAX_HASH,) * 64 for r in rows]
    code = campaigns.group(sigs)
    sets = campaigns.DisjointSets(len(rows))
    first_by_name: dict[tuple[int, str], int] = {}
    for i, r in enumerate(rows):
        sets.union(i, code[i])
        key = (r["sample"]["label"], _canon(r["sample"]["name"]))
        sets.union(i, first_by_name.setdefault(key, i))
    return sets.roots()


def _canon(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def time_split(
    rows: Sequence[dict[str, Any]],
    cutoff: str = CUTOFF,
    until: str | None = None,
    benign_holdout: float = 0.0,
) -> Split:
    """The split at ``cutoff``; with ``until``, everything dated from that day on is left out.

    ``benign_holdout`` (validation runs only): inside the training period few benign releases
    fall after a validation cut-off (126 after 2024-05-01), too few to see a false-positive rate
    of a quarter percent. With a fraction here, the benign groups dated before ``until`` are
    split by a stable hash of a name in the group instead of by date: that fraction tests
    whatever its upload date, the rest trains. Malware is still split by date and campaign."""
    if benign_holdout and until is None:
        raise ValueError("a benign holdout is for validation runs (give `until`)")
    groups = campaign_groups(rows)
    start: dict[int, str] = {}
    for g, r in zip(groups, rows, strict=True):
        d = r["sample"]["date"]
        if d != UNKNOWN_DATE and (g not in start or d < start[g]):
            start[g] = d
    split = Split([], [], [], [], np.asarray(groups))
    for i, (g, r) in enumerate(zip(groups, rows, strict=True)):
        d = r["sample"]["date"]
        if d == UNKNOWN_DATE:
            split.undated.append(i)
        elif until is not None and d >= until:
            continue  # a validation run: the real test period stays unseen
        elif benign_holdout and r["sample"]["label"] == 0:
            if not _held_out(rows[g]["sample"]["name"], benign_holdout):
                split.train.append(i)
            elif r["sample"]["source"] not in TRAIN_ONLY_SOURCES:  # tuning data never tests
                split.test.append(i)
        elif d < cutoff:
            split.train.append(i)
        elif r["sample"]["source"] in TRAIN_ONLY_SOURCES:
            continue
        elif start[g] < cutoff:
            split.known.append(i)
        else:
            split.test.append(i)
    return split


def _held_out(name: str, fraction: float) -> bool:
    """Whether a benign group (named by one of its rows) is in a validation holdout: a stable
    hash, the same in every process and run."""
    return zlib.crc32(_canon(name).encode()) % 1000 < round(fraction * 1000)


def metrics(y: Any, flagged: Any) -> dict[str, Any]:
    y = np.asarray(y).astype(bool)
    f = np.asarray(flagged).astype(bool)
    tp = int((y & f).sum())
    fp = int((~y & f).sum())
    fn = int((y & ~f).sum())
    tn = int((~y & ~f).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fpr, 5),
    }


def _pr_curve(y: Any, p: Any) -> tuple[list[float], list[float]]:
    from sklearn.metrics import precision_recall_curve

    prec, rec, _ = precision_recall_curve(y, p)
    return rec.tolist(), prec.tolist()


def _strata(data: Data, flagged: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    strata = np.asarray([r["sample"]["stratum"] for r in data.rows])
    for s in sorted(set(strata) - {"malware"}):
        mask = strata == s
        n = int(mask.sum())
        fp = int(np.asarray(flagged)[mask].sum())
        out[s] = {"n": n, "fp": fp, "fpr": round(fp / n, 5) if n else 0.0}
    return out


def _recall_by(
    data: Data, flagged: Any, key: Callable[[dict[str, Any]], list[str]]
) -> dict[str, Any]:
    hit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for r, f in zip(data.rows, flagged, strict=True):
        if r["sample"]["label"] != 1:
            continue
        for k in key(r):
            total[k] += 1
            hit[k] += bool(f)
    return {k: {"n": total[k], "recall": round(hit[k] / total[k], 4)} for k in sorted(total)}


def _operating(stack: Stack, test: Data, learner: str | None = None) -> dict[str, Any]:
    """Metrics at the threshold chosen on the training folds (never on the test)."""
    if learner is None:
        p_train, p_test = stack.oof, stack.predict(test)
        t = stack.thresholds["malicious"]
    else:
        p_train, p_test = stack.oof_base[learner], stack.base_proba(test)[learner]
        t = threshold_for_fpr(p_train, stack.train_y, MALICIOUS_FPR, floor=0.5)
    flagged = p_test >= t
    m = metrics(test.y, flagged)
    m["threshold"] = round(float(t), 6)
    m["strata"] = _strata(test, flagged)
    return m


def evaluate(
    rows: Sequence[dict[str, Any]],
    out_dir: Path,
    cutoff: str = CUTOFF,
    ablation: bool = True,
    log: Callable[[str], None] = print,
    n_folds: int = 5,
    until: str | None = None,
    benign_holdout: float = 0.0,
    seeds: int = 1,
) -> dict[str, Any]:
    """Run the whole evaluation, write ``metrics.json``, ``report.md`` and the plots. With
    ``seeds`` above 1 the stack is fitted again with the seeds 1, 2, … (folds and learners) and
    the spread of the verdict between the fits is reported (:func:`_seed_spread`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = matrices(rows)
    split = time_split(data.rows, cutoff, until, benign_holdout)
    train, test = subset(data, split.train), subset(data, split.test)
    groups = split.groups[np.asarray(split.train)]
    log(
        f"split at {cutoff}: train {len(train.y)} ({int(train.y.sum())} malicious), "
        f"test {len(test.y)} ({int(test.y.sum())} malicious), known-campaign later samples "
        f"{len(split.known)}, undated {len(split.undated)}"
    )
    log(f"fitting the stack ({n_folds} campaign-grouped folds)…")
    stack = fit_stack(train, groups, n_folds=n_folds)
    p_test = stack.predict(test)
    critical = _critical(test)
    high = rules_high(test)
    flagged = flag(p_test, high, stack.thresholds) | critical  # the shipped verdict
    result: dict[str, Any] = {
        "cutoff": cutoff,
        "until": until,
        "benign_holdout": benign_holdout,
        "sizes": {
            "train": _counts(train),
            "test": _counts(test),
            "known_campaign_later": len(split.known),
            "undated": len(split.undated),
            "errors_left_out": len(rows) - len(data.rows),
        },
        "thresholds": stack.thresholds,
        "stack": _operating(stack, test),
    }
    result["verdict"] = metrics(test.y, flagged) | {"strata": _strata(test, flagged)}
    # what a person would review: a malicious or a suspicious verdict (``scoring.verdict``)
    review = flagged | (p_test >= stack.thresholds["suspicious"]) | high
    result["not_clean"] = metrics(test.y, review) | {"strata": _strata(test, review)}
    result["rules_only"] = metrics(test.y, high) | {"strata": _strata(test, high)}
    result["base_learners"] = {n: _operating(stack, test, n) for n in LEARNERS}
    result["recall_by_month"] = _recall_by(test, flagged, lambda r: [r["sample"]["date"][:7]])
    result["recall_by_category"] = _recall_by(
        test, flagged, lambda r: r["categories"] or ["(no rule category)"]
    )
    if split.known:
        known = subset(data, split.known)
        kf = flag(stack.predict(known), rules_high(known), stack.thresholds) | _critical(known)
        result["known_campaigns"] = metrics(known.y, kf)
    inert = _inert(test)
    result["missed"] = {
        "total": int((test.y.astype(bool) & ~flagged).sum()),
        "without_any_behaviour": int((test.y.astype(bool) & ~flagged & inert).sum()),
        "test_malware_without_any_behaviour": int((test.y.astype(bool) & inert).sum()),
        "recall_on_malware_with_behaviour": metrics(test.y[~inert], flagged[~inert])["recall"],
    }
    if seeds > 1:
        first = (stack.thresholds["malicious"], p_test, flagged)
        fit = partial(fit_stack, train, groups, n_folds=n_folds)
        result["seed_spread"] = _seed_spread(test, high, critical, first, fit, seeds, log)
    _write_predictions(out_dir / "predictions.csv", test, p_test, flagged)
    result["calibration"] = _calibration(test.y, p_test, out_dir)
    if ablation:
        result["ablation"] = {}
        for g in FEATURE_GROUPS:
            log(f"ablation: without {g}…")
            if g == "text":
                s = fit_stack(train, groups, learners=LEARNERS[:2], n_folds=n_folds)
            else:
                s = fit_stack(train, groups, drop=frozenset({g}), n_folds=n_folds)
            result["ablation"][g] = _operating(s, test)
    _plots(stack, test, p_test, flagged, high, result, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (out_dir / "report.md").write_text(report_markdown(result))
    return result


def _seed_spread(
    test: Data,
    high: Any,
    critical: Any,
    first: tuple[float, Any, Any],
    fit: Callable[..., Stack],
    seeds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """How much of the verdict is the draw of one fit: the stack fitted again (``fit(seed=…)``)
    with the seeds 1 … ``seeds``-1 (fold assignment and learners) on the same training rows,
    next to ``first``, the main fit's malicious threshold, test scores and verdicts. The
    threshold, set by the few highest out-of-fold benign scores, moves between seeds, and single
    scores with it; two settings whose figures differ by less than this spread are not told
    apart by one fit."""
    fits = [first]
    for seed in range(1, seeds):
        log(f"seed spread: fitting with seed {seed}…")
        stack = fit(seed=seed)
        p = stack.predict(test)
        fits.append((stack.thresholds["malicious"], p, flag(p, high, stack.thresholds) | critical))
    thresholds, scores, verdicts = zip(*fits, strict=True)
    per_seed = []
    for seed, (threshold, flagged) in enumerate(zip(thresholds, verdicts, strict=True)):
        m = metrics(test.y, flagged)
        per_seed.append(
            {"seed": seed, "threshold": round(float(threshold), 6)}
            | {k: m[k] for k in ("f1", "precision", "recall", "fp", "fn")}
        )
    p, f = np.asarray(scores), np.asarray(verdicts, dtype=bool)
    mal, ben = test.y == 1, test.y == 0
    change = p.max(axis=0) - p.min(axis=0)  # each sample's largest difference between two fits
    return {
        "seeds": seeds,
        "per_seed": per_seed,
        "f1": [min(s["f1"] for s in per_seed), max(s["f1"] for s in per_seed)],
        "fp": [min(s["fp"] for s in per_seed), max(s["fp"] for s in per_seed)],
        "malware_flagged_by_all": int(f[:, mal].all(axis=0).sum()),
        "malware_flagged_by_any": int(f[:, mal].any(axis=0).sum()),
        "benign_flagged_by_all": int(f[:, ben].all(axis=0).sum()),
        "benign_flagged_by_any": int(f[:, ben].any(axis=0).sum()),
        "benign_score_change": {
            "mean": round(float(change[ben].mean()), 4) if ben.any() else 0.0,
            "max": round(float(change[ben].max()), 4) if ben.any() else 0.0,
        },
    }


def _critical(d: Data) -> Any:
    """Rows with a critical rule finding (the verdict is malicious whatever the model says)."""
    from pkgvet.ml.features import dense_names
    from pkgvet.models import Severity

    cols = [i for i, n in enumerate(dense_names()) if n.startswith("r_PV")]
    return (d.X[:, cols] == Severity.CRITICAL.rank + 1).any(axis=1)


def _inert(d: Data) -> Any:
    """Rows showing no behaviour at all: no API family of interest in any file and no rule
    finding of medium or higher. Malicious packages like this (placeholders of a campaign, or
    a payload outside Python) cannot be told from benign ones by their content."""
    from pkgvet.ml.features import dense_names

    names = dense_names()
    cols = [
        i
        for i, n in enumerate(names)
        if n.startswith("c_files_") and not n.endswith(("_decode", "_fingerprint"))
    ]
    seen = (d.X[:, cols] > 0).any(axis=1)
    seen |= d.X[:, names.index("r_high")] > 0
    seen |= d.X[:, names.index("r_medium")] > 0
    return ~seen


def _write_predictions(path: Path, d: Data, p: Any, flagged: Any) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(
            [
                "source",
                "id",
                "label",
                "stratum",
                "date",
                "probability",
                "flagged",
                "rules_high",
                "categories",
            ]
        )
        for r, pi, f in zip(d.rows, p, flagged, strict=True):
            s = r["sample"]
            w.writerow(
                [
                    s["source"],
                    s["id"],
                    s["label"],
                    s["stratum"],
                    s["date"],
                    f"{pi:.6f}",
                    int(f),
                    int(r["rules_high"]),
                    ",".join(r["categories"]),
                ]
            )


def _counts(d: Data) -> dict[str, int]:
    c = Counter(r["sample"]["stratum"] for r in d.rows)
    return dict(sorted(c.items()))


def _calibration(y: Any, p: Any, out_dir: Path) -> dict[str, Any]:
    bins = np.linspace(0, 1, 11)
    idx = np.clip(np.digitize(p, bins) - 1, 0, 9)
    prob_true, prob_pred, ece = [], [], 0.0
    for b in range(10):
        m = idx == b
        if m.any():
            prob_true.append(float(y[m].mean()))
            prob_pred.append(float(p[m].mean()))
            ece += m.mean() * abs(y[m].mean() - p[m].mean())
    plots.calibration_png(
        out_dir / "calibration.png", prob_true, prob_pred, "Calibration on the time-split test"
    )
    return {"brier": round(float(np.mean((p - y) ** 2)), 5), "ece": round(float(ece), 5)}


def _plots(
    stack: Stack,
    test: Data,
    p_test: Any,
    flagged: Any,
    rules_flag: Any,
    result: dict[str, Any],
    out_dir: Path,
) -> None:
    curves = {"stack": _pr_curve(test.y, p_test)}
    for name, p in stack.base_proba(test).items():
        curves[name] = _pr_curve(test.y, p)
    points = {
        "verdict": (result["verdict"]["recall"], result["verdict"]["precision"]),
        "rules only": (result["rules_only"]["recall"], result["rules_only"]["precision"]),
    }
    plots.pr_curve_png(
        out_dir / "pr_curve.png",
        curves,
        f"Precision-recall, time-split test (cut-off {result['cutoff']})",
        points=points,
    )
    m = result["verdict"]
    plots.confusion_png(
        out_dir / "confusion.png", m["tn"], m["fp"], m["fn"], m["tp"], "Verdict on the test split"
    )


def _row(name: str, m: dict[str, Any]) -> str:
    strata = m.get("strata", {})
    cells = " | ".join(
        f"{strata[s]['fp']}/{strata[s]['n']} ({100 * strata[s]['fpr']:.2f}%)"
        for s in ("long_tail", "popular")
        if s in strata
    )
    return (
        f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | "
        f"{m['fp']} | {cells} |"
    )


def _validation_line(r: dict[str, Any]) -> list[str]:
    if not r.get("until"):
        return []
    line = f"Validation run: everything dated from {r['until']} on is left out"
    if r.get("benign_holdout"):
        line += (
            f"; benign releases tested: a name-grouped {r['benign_holdout']:.0%} of those "
            "uploaded before that day, whatever their date"
        )
    return [line + "."]


def _seed_lines(r: dict[str, Any]) -> list[str]:
    sp = r.get("seed_spread")
    if not sp:
        return []
    lines = ["", f"## Seed spread: the verdict fitted with {sp['seeds']} seeds", ""]
    lines += [
        "| seed | malicious threshold | precision | recall | F1 | FP |",
        "|---|---|---|---|---|---|",
    ]
    for s in sp["per_seed"]:
        lines.append(
            f"| {s['seed']} | {s['threshold']:.3f} | {s['precision']:.4f} | "
            f"{s['recall']:.4f} | {s['f1']:.4f} | {s['fp']} |"
        )
    change = sp["benign_score_change"]
    lines += [
        "",
        f"F1 {sp['f1'][0]:.4f}-{sp['f1'][1]:.4f}, false positives {sp['fp'][0]}-{sp['fp'][1]}; "
        f"malware flagged by every seed {sp['malware_flagged_by_all']}, by some seed "
        f"{sp['malware_flagged_by_any']}; benign flagged by every seed "
        f"{sp['benign_flagged_by_all']}, by some seed {sp['benign_flagged_by_any']}; a benign "
        f"score differs between fits by {change['mean']} on average, by up to {change['max']}. "
        "Two settings whose figures differ by less than this are not told apart by one fit.",
    ]
    return lines


def report_markdown(r: dict[str, Any]) -> str:
    head = (
        "| model | precision | recall | F1 | FP | FPR long tail | FPR popular |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = [
        f"# pkgvet evaluation (time-ordered, campaign-grouped; cut-off {r['cutoff']})",
        "",
        f"Train: {r['sizes']['train']}; test: {r['sizes']['test']}; later samples of known "
        f"campaigns (not in the test): {r['sizes']['known_campaign_later']}; undated: "
        f"{r['sizes']['undated']}; scan errors left out: {r['sizes']['errors_left_out']}.",
        f"Thresholds (chosen on training folds): {r['thresholds']}.",
        *_validation_line(r),
        "",
        "## Stack, base learners and the rules alone",
        "",
        head,
        _row("**verdict** (model, model + high rule finding, or critical finding)", r["verdict"]),
        _row("not clean (a malicious or a suspicious verdict: for review)", r["not_clean"]),
        _row("stack alone (probability ≥ malicious threshold)", r["stack"]),
        *(_row(n, m) for n, m in r["base_learners"].items()),
        _row("rules only (high finding)", r["rules_only"]),
    ]
    if "ablation" in r:
        lines += ["", "## Ablation: the stack without one feature group", "", head]
        lines += [_row(f"without {g}", m) for g, m in r["ablation"].items()]
    lines += ["", "## Recall per month the malware entered the dataset", ""]
    lines += ["| month | n | recall |", "|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['recall']:.4f} |" for k, v in r["recall_by_month"].items()]
    lines += ["", "## Recall per behaviour category (from the rule findings)", ""]
    lines += ["| category | n | recall |", "|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['recall']:.4f} |" for k, v in r["recall_by_category"].items()]
    if "known_campaigns" in r:
        k = r["known_campaigns"]
        lines += [
            "",
            f"Later samples of campaigns seen in training: recall {k['recall']:.4f} "
            f"({k['tp']}/{k['tp'] + k['fn']}).",
        ]
    lines += _seed_lines(r)
    miss = r["missed"]
    lines += [
        "",
        f"Missed malware: {miss['total']}, of which {miss['without_any_behaviour']} show no "
        "behaviour at all (no API family of interest in any file, no rule finding of medium or "
        f"higher); {miss['test_malware_without_any_behaviour']} test malware samples are like "
        "that. Recall on the test malware that shows some behaviour: "
        f"{miss['recall_on_malware_with_behaviour']:.4f}.",
    ]
    c = r["calibration"]
    lines += ["", f"Calibration on the test: Brier {c['brier']}, ECE {c['ece']}.", ""]
    lines += ["![PR](pr_curve.png) ![confusion](confusion.png) ![calibration](calibration.png)", ""]
    return "\n".join(lines)
