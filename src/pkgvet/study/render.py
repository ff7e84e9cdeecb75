"""Writing a study: ``DIR/*.csv`` (one per table), ``DIR/summary.json``, the plots as
``DIR/*.png`` and ``DIR/index.html``, one self-contained page (plots inlined as base64 PNG).

Every string from the dataset (names, endpoints, rule evidence) is HTML-escaped; endpoints are
defanged before they get here, and the page has no links, scripts or external resources.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pkgvet.ml.plots import pyplot, save_png
from pkgvet.study import paper
from pkgvet.study.aggregate import Study
from pkgvet.study.facts import BEHAVIOUR_LABELS, BEHAVIOURS, TRIGGER_LABELS, TRIGGERS

_DPI = 110
_OURS = "#2a6f97"
_CAPS = "#8ecae6"
_PAPER = "#e76f51"


def require_matplotlib() -> None:
    """Raise :class:`RuntimeError` with an install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "pkgvet study draws its plots with matplotlib, which is not installed: "
            "pip install 'pkgvet[study]'"
        ) from exc


def write_study(study: Study, out: Path, title: str = "pkgvet study") -> list[Path]:
    """Write every output of ``study`` into ``out``; returns the files written."""
    require_matplotlib()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, rows in study.tables.items():
        p = out / f"{name}.csv"
        write_csv(p, rows)
        written.append(p)
    p = out / "summary.json"
    p.write_text(json.dumps(study.summary, indent=2, ensure_ascii=False) + "\n", "utf-8")
    written.append(p)
    plots = draw_plots(study, out)
    written.extend(plots.values())
    page = out / "index.html"
    page.write_text(html_page(study, plots, title), "utf-8")
    written.append(page)
    return written


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys or ["empty"])
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r.get(k) is None else r.get(k) for k in keys})


# -- plots -------------------------------------------------------------------------------------


def draw_plots(study: Study, out: Path) -> dict[str, Path]:
    plots: dict[str, Path] = {}
    for name, fn in (
        ("behaviours", _plot_behaviours),
        ("triggers", _plot_triggers),
        ("anti_detection", _plot_techniques),
        ("code_attributes", _plot_attributes),
        ("timeline", _plot_timeline),
        ("campaigns", _plot_campaigns),
        ("endpoints", _plot_endpoints),
        ("attack_vectors", _plot_vectors),
    ):
        path = out / f"{name}.png"
        fn(study, path)
        plots[name] = path
    return plots


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) else 0.0


def _plot_behaviours(study: Study, path: Path) -> None:
    plt = pyplot()
    rows = study.tables["behaviours"]
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    ys = list(range(len(rows)))
    h = 0.27
    ours = [_num(r["pct_of_analysed"]) for r in rows]
    caps = [_num(r["capability_view_pct"]) for r in rows]
    pub = [_num(r["paper_pct"]) for r in rows]
    ax.barh([y - h for y in ys], ours, h, label="pkgvet findings", color=_OURS)
    ax.barh(ys, caps, h, label="pkgvet capability view", color=_CAPS)
    ax.barh([y + h for y in ys], pub, h, label="Guo et al. 2023", color=_PAPER)
    for y, v in zip(ys, ours, strict=True):
        ax.text(v + 0.8, y - h, f"{v:.1f}%", va="center", fontsize=8)
    for y, v in zip(ys, pub, strict=True):
        ax.text(v + 0.8, y + h, f"{v:.1f}%", va="center", fontsize=8)
    ax.set_yticks(ys, [r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("% of packages")
    ax.set_title("Malicious behaviours per package")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    save_png(fig, path, dpi=_DPI)


def _plot_triggers(study: Study, path: Path) -> None:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    tr = study.tables["triggers"]
    xs = list(range(len(tr)))
    w = 0.38
    ours = [_num(r["pct_of_located"]) for r in tr]
    pub = [_num(r["paper_pct"]) for r in tr]
    a1.bar([x - w / 2 for x in xs], ours, w, label="pkgvet", color=_OURS)
    a1.bar([x + w / 2 for x in xs], pub, w, label="Guo et al. 2023", color=_PAPER)
    for x, v in zip(xs, ours, strict=True):
        a1.text(x - w / 2, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    for x, v in zip(xs, pub, strict=True):
        a1.text(x + w / 2, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    a1.set_xticks(xs, [r["label"] for r in tr])
    a1.set_ylim(0, 105)
    a1.set_ylabel("% of packages with located code")
    a1.set_title("Trigger point")
    a1.legend(fontsize=8)
    loc = study.tables["locations"]
    vals = [_num(r["pct_of_located"]) for r in loc]
    a2.bar(range(len(loc)), vals, 0.6, color=_OURS)
    for x, v in enumerate(vals):
        a2.text(x, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    a2.set_xticks(range(len(loc)), [r["label"] for r in loc])
    a2.set_ylim(0, 105)
    a2.set_title("Where the malicious code sits")
    for a in (a1, a2):
        a.grid(True, axis="y", alpha=0.3)
    save_png(fig, path, dpi=_DPI)


def _plot_techniques(study: Study, path: Path) -> None:
    plt = pyplot()
    rows = study.tables["anti_detection"]
    fig, ax = plt.subplots(figsize=(8.0, 3.8))
    ys = list(range(len(rows)))
    vals = [_num(r["pct_of_analysed"]) for r in rows]
    ax.barh(ys, vals, 0.6, color=_OURS)
    for y, r, v in zip(ys, rows, vals, strict=True):
        text = f"{v:.2f}%" if r["measured"] else "not measured"
        ax.text(
            v + 0.5, y, text, va="center", fontsize=8, color="black" if r["measured"] else "grey"
        )
        if r.get("paper_pct") is not None:
            ax.plot([r["paper_pct"]], [y], marker="D", color=_PAPER, label="Guo et al. 2023")
    ax.set_yticks(ys, [r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, max([*vals, paper.OBFUSCATION, 10.0]) * 1.25)
    ax.set_xlabel("% of packages")
    ax.set_title("Anti-detection techniques")
    if any(r.get("paper_pct") is not None for r in rows):
        ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    save_png(fig, path, dpi=_DPI)


def _plot_attributes(study: Study, path: Path) -> None:
    plt = pyplot()
    import math

    rows = study.tables["packages"]
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.0))

    def col(key: str) -> list[float]:
        return [float(r[key]) for r in rows if r.get(key) is not None and r.get("error") == ""]

    def log_hist(ax: Any, values: list[float], label: str) -> None:
        vals = [math.log10(v + 1) for v in values]
        if vals:
            ax.hist(vals, bins=30, color=_OURS)
        ax.set_xlabel(f"log10({label} + 1)")
        ax.set_ylabel("packages")

    log_hist(axes[0][0], col("loc"), "lines of code")
    axes[0][0].set_title("Lines of Python code")
    log_hist(axes[0][1], col("files"), "files")
    axes[0][1].set_title("Files per package")
    depths = col("depth")
    if depths:
        top = int(max(depths))
        axes[1][0].hist(depths, bins=range(0, min(top, 15) + 2), color=_OURS, align="left")
    axes[1][0].set_title("Directory depth")
    axes[1][0].set_xlabel("deepest file (directories below the root)")
    dens = [
        float(r["density"])
        for r in rows
        if r.get("density") is not None and r.get("malicious_lines")
    ]
    if dens:
        axes[1][1].hist(dens, bins=20, range=(0, 1), color=_OURS)
    axes[1][1].set_title("Malicious-code density (located code)")
    axes[1][1].set_xlabel("malicious lines / all lines")
    for row in axes:
        for a in row:
            a.grid(True, alpha=0.3)
    save_png(fig, path, dpi=_DPI)


def _months(rows: list[dict[str, Any]]) -> list[date]:
    return [date(int(r["month"][:4]), int(r["month"][5:7]), 1) for r in rows]


def _plot_timeline(study: Study, path: Path) -> None:
    plt = pyplot()
    rows = [r for r in study.tables["timeline"] if len(str(r["month"])) == 7]
    fig, ax = plt.subplots(figsize=(9.0, 4.2))
    if rows:
        xs = _months(rows)
        ax.bar(xs, [r["packages"] for r in rows], width=25, color="#dddddd", label="packages")
        for b, color in zip(
            BEHAVIOURS, ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51"), strict=True
        ):
            ax.plot(
                xs, [r[b] for r in rows], marker="o", ms=3, color=color, label=BEHAVIOUR_LABELS[b]
            )
        ax.plot(xs, [r["in_campaign"] for r in rows], ls="--", color="black", label="in a campaign")
        fig.autofmt_xdate()
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.text(0.5, 0.5, "no dates in this dataset", ha="center", transform=ax.transAxes)
    ax.set_ylabel("packages per month (dataset date)")
    ax.set_title("Packages and behaviours over time")
    ax.grid(True, alpha=0.3)
    save_png(fig, path, dpi=_DPI)


def _plot_campaigns(study: Study, path: Path) -> None:
    plt = pyplot()
    rows = [r for r in study.tables["campaigns"] if r.get("first_date")][:20]
    fig, ax = plt.subplots(figsize=(9.0, 5.0))
    if rows:
        for y, r in enumerate(rows):
            a = date.fromisoformat(r["first_date"])
            b = date.fromisoformat(r["last_date"])
            ax.plot([a, b], [y, y], color=_OURS, lw=3, solid_capstyle="round")
            ax.scatter([a], [y], s=12 + 2 * min(r["packages"], 200), color=_OURS, alpha=0.6)
            ax.text(b, y, f"  {r['packages']}", va="center", fontsize=7)
        ax.set_yticks(
            range(len(rows)),
            [_short(f"#{r['campaign']} {r['example_names']}") for r in rows],
            fontsize=7,
        )
        ax.invert_yaxis()
        fig.autofmt_xdate()
    else:
        ax.text(0.5, 0.5, "no dated campaigns", ha="center", transform=ax.transAxes)
    ax.set_title("Largest campaigns (near-identical code): first to last sample, with size")
    ax.grid(True, axis="x", alpha=0.3)
    save_png(fig, path, dpi=_DPI)


def _short(text: str, n: int = 42) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _plot_endpoints(study: Study, path: Path) -> None:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.0, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    top = study.tables["endpoints"][:15]
    if top:
        a1.barh(range(len(top)), [r["packages"] for r in top], color=_OURS)
        a1.set_yticks(
            range(len(top)), [_short(f"{r['endpoint']} ({r['kind']})", 48) for r in top], fontsize=7
        )
        a1.invert_yaxis()
    a1.set_xlabel("packages")
    a1.set_title("Most used payload endpoints (defanged)")
    rows = [r for r in study.tables["timeline"] if len(str(r["month"])) == 7]
    if rows:
        a2.bar(
            _months(rows),
            [r["new_endpoints"] for r in rows],
            width=25,
            color=_PAPER,
            label="new endpoints",
        )
        a2.plot(
            _months(rows),
            [r["new_campaigns"] for r in rows],
            marker="o",
            ms=3,
            color="black",
            label="new campaigns",
        )
        a2.legend(fontsize=7)
        for lab in a2.get_xticklabels():
            lab.set_rotation(30)
    a2.set_title("First seen per month")
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
    save_png(fig, path, dpi=_DPI)


def _plot_vectors(study: Study, path: Path) -> None:
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.0, 4.2))
    top = study.tables["typosquat_targets"][:15]
    if top:
        a1.barh(range(len(top)), [r["packages"] for r in top], color=_OURS)
        a1.set_yticks(range(len(top)), [r["target"] for r in top], fontsize=8)
        a1.invert_yaxis()
    a1.set_xlabel("packages imitating it")
    a1.set_title("Typosquatting targets")
    dep = study.tables["dependency_confusion_versions"][:12]
    if dep:
        a2.barh(range(len(dep)), [r["packages"] for r in dep], color=_PAPER)
        a2.set_yticks(range(len(dep)), [_short(str(r["version"]), 20) for r in dep], fontsize=8)
        a2.invert_yaxis()
    a2.set_xlabel("packages")
    a2.set_title("Dependency-confusion versions")
    for a in (a1, a2):
        a.grid(True, axis="x", alpha=0.3)
    save_png(fig, path, dpi=_DPI)


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.86em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.kpi{display:inline-block;border:1px solid #ccd;border-radius:6px;padding:.5em .9em;margin:.3em;
background:#f7f9fb}.kpi b{font-size:1.3em;display:block}
.note{color:#555;font-size:.9em}
"""


def _fmt(v: Any) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(rows: Sequence[dict[str, Any]], cols: Sequence[tuple[str, str]], limit: int = 30) -> str:
    if not rows:
        return '<p class="note">(none)</p>'
    head = "".join(f"<th>{html.escape(label)}</th>" for _k, label in cols)
    body = []
    for r in rows[:limit]:
        cells = []
        for k, _label in cols:
            v = r.get(k)
            cls = ' class="n"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="note">{len(rows) - limit:,} more rows in the CSV.</p>'
        if len(rows) > limit
        else ""
    )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _largest(s: dict[str, Any]) -> str:
    largest = (s.get("campaigns") or {}).get("largest") or []
    if not largest or not s.get("packages"):
        return "–"
    n = int(largest[0]["packages"])
    return f"{n:,} ({100.0 * n / int(s['packages']):.1f}%)"


def _cohort_note(s: dict[str, Any]) -> str:
    text = (
        "Capability view: the five behaviours read off the APIs the code calls rather than off "
        "rule findings (see docs/study.md). One per campaign: each campaign of near-identical "
        "packages counted once (as the share of its members), every other package as itself."
    )
    co = s.get("cohorts")
    if co:
        text += (
            " First month / later: the same figures for the "
            f"{co['first_month_packages']:,} samples of the dataset's first month "
            f"({html.escape(str(co['first_month']))}) and the {co['later_packages']:,} added "
            "later."
        )
    return f"<p class='note'>{text}</p>"


def html_page(study: Study, plots: dict[str, Path], title: str) -> str:
    s = study.summary
    t = study.tables
    esc = html.escape
    kpis = [
        ("packages", _fmt(s.get("packages"))),
        ("analysed", _fmt(s.get("analysed"))),
        ("flagged malicious by pkgvet", f"{_fmt(s.get('flagged_malicious_pct'))}%"),
        ("two or more behaviours", f"{_fmt(s.get('multi_behaviour_pct'))}%"),
        ("campaigns", _fmt((s.get("campaigns") or {}).get("count"))),
        ("packages in the largest campaign", _largest(s)),
        ("distinct endpoints", _fmt((s.get("endpoints") or {}).get("distinct"))),
    ]
    dr = s.get("date_range")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>Dataset: <code>{esc(str(s.get('dataset', '')))}</code>"
        + (f", samples dated {esc(dr[0])} to {esc(dr[1])}" if dr else "")
        + f". Compared with {esc(paper.CITATION)}. Percentages are of the analysed packages "
        "unless stated; endpoints are defanged.</p>",
        "<div>"
        + "".join(f"<span class='kpi'><b>{esc(v)}</b>{esc(k)}</span>" for k, v in kpis)
        + "</div>",
        "<h2>Our figures beside the paper's</h2>",
        _cohort_note(s),
        _table(
            t["comparison"],
            [
                ("metric", "metric"),
                ("ours_pct", "pkgvet %"),
                ("paper_pct", "Guo et al. %"),
                ("difference_pp", "difference (pp)"),
                ("capability_view_pct", "capability view %"),
                ("first_month_pct", "first month %"),
                ("later_pct", "later %"),
                ("one_per_campaign_pct", "one per campaign %"),
                ("why", "why they differ"),
            ],
        ),
        "<h2>Behaviours</h2>",
        _img(plots["behaviours"], "behaviours"),
        _table(
            t["behaviours"],
            [
                ("label", "behaviour"),
                ("packages", "packages"),
                ("pct_of_analysed", "% of analysed"),
                ("pct_of_with_behaviour", "% of with a behaviour"),
                ("capability_view_pct", "capability view %"),
                ("paper_pct", "Guo et al. %"),
            ],
        ),
        f"<p>{_fmt(s.get('with_behaviour_pct'))}% of the analysed packages show at least one of "
        f"the five behaviours; {_fmt(s.get('multi_behaviour_pct'))}% show two or more "
        f"({_fmt(s.get('multi_behaviour_pct_of_with_behaviour'))}% of those with one; "
        f"capability view: {_fmt(s.get('capability_view_multi_behaviour_pct'))}%).</p>",
        _table(
            t["behaviour_combinations"],
            [("combination", "behaviours"), ("packages", "packages"), ("pct_of_analysed", "%")],
            12,
        ),
        "<h2>Trigger point and location</h2>",
        _img(plots["triggers"], "triggers"),
        _table(
            t["triggers"],
            [
                ("label", "trigger"),
                ("packages", "packages"),
                ("pct_of_located", "%"),
                ("paper_pct", "Guo et al. %"),
            ],
        ),
        _table(
            t["locations"],
            [("label", "location"), ("packages", "packages"), ("pct_of_located", "%")],
        ),
        f"<p class='note'>Of {_fmt(s.get('located'))} packages ({_fmt(s.get('located_pct'))}% of "
        "the analysed) where a finding locates malicious code: the trigger and file of the "
        "highest finding, the earliest trigger when tied.</p>",
        "<h2>Anti-detection techniques</h2>",
        _img(plots["anti_detection"], "anti-detection techniques"),
        _table(
            t["anti_detection"],
            [
                ("label", "technique"),
                ("packages", "packages"),
                ("pct_of_analysed", "%"),
                ("signal", "rules"),
                ("how", "how it is measured"),
                ("paper_pct", "Guo et al. %"),
            ],
        ),
        "<h2>Attack vectors</h2>",
        _img(plots["attack_vectors"], "attack vectors"),
        _table(
            t["attack_vectors"],
            [
                ("vector", "vector"),
                ("packages", "packages"),
                ("pct_of_analysed", "%"),
                ("distinct_targets", "distinct targets / versions"),
                ("how", "how"),
            ],
        ),
        _table(
            t["typosquat_targets"],
            [
                ("target", "imitated project"),
                ("packages", "packages"),
                ("example_names", "examples"),
            ],
            15,
        ),
        "<h2>Code attributes</h2>",
        _img(plots["code_attributes"], "code attributes"),
        _table(
            t["code_attributes"],
            [
                ("attribute", "attribute"),
                ("n", "packages"),
                ("mean", "mean"),
                ("median", "median"),
                ("p90", "90th pct"),
                ("max", "max"),
            ],
        ),
        "<p class='note'>Malicious-code density = lines that findings of severity medium or more "
        "(not metadata) point at, plus the lines of statically decoded payloads those findings "
        "sit in (each payload once), over all non-blank Python lines plus those payload lines. "
        "<code>density_of_located</code> is over the packages with at least one such line.</p>",
        "<h2>Payload endpoints and campaigns</h2>",
        _img(plots["endpoints"], "endpoints"),
        _table(
            t["endpoints"],
            [
                ("endpoint", "endpoint (defanged)"),
                ("kind", "kind"),
                ("packages", "packages"),
                ("campaigns", "campaigns"),
                ("first_date", "first"),
                ("last_date", "last"),
                ("example_names", "examples"),
            ],
            20,
        ),
        _img(plots["campaigns"], "campaigns"),
        f"<p>{_fmt((s.get('campaigns') or {}).get('count'))} campaigns (groups of two or more "
        f"packages whose code lines have an estimated Jaccard similarity of 0.7 or more) hold "
        f"{_fmt((s.get('campaigns') or {}).get('pct_in_campaigns'))}% of the packages.</p>",
        _table(
            t["campaigns"],
            [
                ("campaign", "#"),
                ("packages", "packages"),
                ("distinct_names", "names"),
                ("first_date", "first"),
                ("last_date", "last"),
                ("behaviours", "behaviours"),
                ("trigger", "trigger"),
                ("endpoints", "endpoints"),
                ("example_names", "examples"),
            ],
            20,
        ),
        "<h2>Over time</h2>",
        _img(plots["timeline"], "timeline"),
        _table(
            t["timeline"],
            [
                ("month", "month"),
                ("packages", "packages"),
                *[(b, BEHAVIOUR_LABELS[b]) for b in BEHAVIOURS],
                ("typosquatting", "typosquats"),
                ("dependency_confusion", "dep. confusion"),
                ("new_campaigns", "new campaigns"),
                ("new_endpoints", "new endpoints"),
            ],
            40,
        ),
        "<p class='note'>Files next to this page: one CSV per table "
        "(<code>packages.csv</code> has one row per package), <code>summary.json</code> and "
        "the plots as PNG. Generated by pkgvet study; nothing in the dataset was executed.</p>",
        "</body></html>",
    ]
    _ = TRIGGER_LABELS, TRIGGERS
    return "\n".join(parts)
