"""``pkgvet train`` and ``pkgvet evaluate``: build the trained detector from the shared malware
set plus pinned benign manifests, and measure it on a time-ordered, campaign-grouped split.

Both need the ``train`` extra (numpy, scipy, scikit-learn, matplotlib); they import it only when
run, so ``pkgvet scan`` never pays for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from pkgvet.commands.scan import UsageFailure
from pkgvet.errors import PkgvetError

DEFAULT_MALWARE = Path("../shared/datasets/pypi-malregistry")
DEFAULT_BENIGN = (
    Path("data/benign/train-manifest.tsv"),
    Path("data/benign/scan-manifest.tsv"),
    Path("data/benign/longtail-manifest.tsv"),
)
EVAL_BENIGN = (*DEFAULT_BENIGN, Path("data/benign/holdout-manifest.tsv"))
F = TypeVar("F", bound=Callable[..., Any])


def _need_extra() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise UsageFailure("training needs the `train` extra: pip install 'pkgvet[train]'") from exc


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def load_rows(
    malware: Path,
    benign: tuple[Path, ...],
    jobs: int,
    labels: tuple[Path, ...] = (),
    label_files: tuple[Path, ...] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Feature rows of every sample (cached) and a description of the data for the card."""
    from pkgvet.ml.dataset import (
        DatasetError,
        benign_samples,
        compute_features,
        labelled_samples,
        malware_samples,
        prefer_labels,
    )

    try:
        samples = malware_samples(malware)
    except DatasetError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    data: dict[str, Any] = {
        "malware": {
            "path": str(malware),
            "manifest_sha256": _file_sha256(malware / "MANIFEST.tsv"),
            "packages": len(samples),
        },
        "benign": [],
    }
    for manifest in benign:
        if not manifest.is_file():
            raise UsageFailure(f"{manifest}: benign manifest not found")
        found, missing = benign_samples(manifest)
        if missing:
            raise UsageFailure(
                f"{len(missing)} files of {manifest} are not in the cache (first: {missing[0]}); "
                f"fetch them with: pkgvet collect --from-manifest {manifest}"
            )
        samples += found
        data["benign"].append(
            {"manifest": manifest.name, "sha256": _file_sha256(manifest), "releases": len(found)}
        )
    for path in labels:
        if not path.is_file():
            raise UsageFailure(f"{path}: labels file not found")
        try:
            found, missing = labelled_samples(path, label_files)
        except PkgvetError as exc:
            raise UsageFailure(exc.diagnostics()) from exc
        if missing:
            raise UsageFailure(
                f"{len(missing)} files of {path} are neither in --label-files nor in the "
                f"collector's cache (first: {missing[0]}); point --label-files at the service's "
                "blob directory"
            )
        samples += found
        data.setdefault("labels", []).append(
            {
                "file": path.name,
                "sha256": _file_sha256(path),
                "malicious": sum(s.label for s in found),
                "benign": sum(1 - s.label for s in found),
            }
        )
    with _progress("features") as update:
        rows = compute_features(samples, jobs=jobs, progress=update)
    if labels:
        rows = prefer_labels(rows, {p.stem for p in labels})
    errors = sum(1 for r in rows if r.get("dense") is None)
    click.echo(f"{len(rows)} samples, {errors} could not be scanned (left out)", err=True)
    return rows, data


def _data_options(benign: tuple[Path, ...], out: str, out_help: str) -> Callable[[F], F]:
    """The options ``train`` and ``evaluate`` share: where the data is and where output goes."""

    def decorate(fn: F) -> F:
        options = [
            click.option(
                "--malware",
                type=click.Path(file_okay=False, path_type=Path),
                default=DEFAULT_MALWARE,
                show_default=True,
                help="The pypi-malregistry dataset (name/version/file tree with MANIFEST.tsv).",
            ),
            click.option(
                "--benign",
                type=click.Path(dir_okay=False, path_type=Path),
                multiple=True,
                default=benign,
                show_default=True,
                help="Pinned benign manifests (repeatable); files come from the collector's cache.",
            ),
            click.option(
                "-o",
                "--out",
                type=click.Path(file_okay=False, path_type=Path),
                default=Path(out),
                show_default=True,
                help=out_help,
            ),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@click.command("train")
@_data_options(DEFAULT_BENIGN, "build/model", "Where to write model.json.gz and model-card.md.")
@click.option(
    "--install",
    is_flag=True,
    help="Also install the model into this pkgvet (package data + pinned hash).",
)
@click.option("--jobs", type=int, default=0, help="Processes for feature extraction (0: all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="Triage decisions (`pkgvet serve labels export`): confirmed malicious and marked false "
    "positives join the training data; a reviewer's label overrides the file's other label.",
)
@click.option(
    "--label-files",
    type=click.Path(file_okay=False, path_type=Path),
    multiple=True,
    help="Where the labelled files are (a service's blob directory); the collector's cache is "
    "searched too.",
)
@click.option(
    "--evaluation",
    type=click.Path(dir_okay=False, path_type=Path),
    help="metrics.json of `pkgvet evaluate`, whose headline figures go into the model card.",
)
def train_command(
    malware: Path,
    benign: tuple[Path, ...],
    out: Path,
    install: bool,
    jobs: int,
    seed: int,
    labels: tuple[Path, ...],
    label_files: tuple[Path, ...],
    evaluation: Path | None,
) -> None:
    """Train the stacking ensemble on every sample and write the model and its card.

    The same data and seed give the same model file, byte for byte. The model is gzip JSON,
    which cannot run code when loaded; scans check its sha256 before use.
    """
    _need_extra()
    from pkgvet.ml.evaluate import campaign_groups, metrics
    from pkgvet.ml.train import export_stack, fit_stack, flag, matrices, rules_high

    rows, data = load_rows(malware, benign, jobs, labels, label_files)
    d = matrices(rows)
    click.echo(f"fitting on {len(d.y)} packages ({int(d.y.sum())} malicious)…", err=True)
    stack = fit_stack(d, campaign_groups(d.rows), seed=seed)
    oof = metrics(d.y, flag(stack.oof, rules_high(d), stack.thresholds))
    card = _card(rows, data, oof, stack.thresholds, seed)
    if evaluation is not None:
        card["evaluation"] = _headline(json.loads(evaluation.read_text()))
    blob = export_stack(stack, card)
    digest = hashlib.sha256(blob).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.json.gz").write_bytes(blob)
    (out / "model-card.md").write_text(card_markdown(card, digest, len(blob)))
    click.echo(f"model {digest[:12]} ({len(blob) / 1e6:.1f} MB) written to {out}", err=True)
    click.echo(f"out-of-fold at the malicious threshold: {json.dumps(oof)}", err=True)
    if install:
        _install(blob, digest, card)


def _card(
    rows: list[dict[str, Any]],
    data: dict[str, Any],
    oof: dict[str, Any],
    thresholds: dict[str, float],
    seed: int,
) -> dict[str, Any]:
    import sklearn

    from pkgvet.ml.features import TEXT_DIM, dense_names, schema_hash

    dates = [  # the card reads "malware that entered the dataset up to": malware dates only
        r["sample"]["date"]
        for r in rows
        if r["sample"]["label"] == 1 and r["sample"]["date"] != "0000-00-00"
    ]
    return {
        "data": data,
        "newest_sample": max(dates) if dates else None,
        "feature_schema_sha256": schema_hash(),
        "dense_features": len(dense_names()),
        "text_dim": TEXT_DIM,
        "learners": ["random_forest", "gradient_boosting", "text_linear", "meta: logistic"],
        "out_of_fold": oof,
        "thresholds": thresholds,
        "seed": seed,
        "scikit_learn": sklearn.__version__,
    }


def _headline(m: dict[str, Any]) -> dict[str, Any]:
    keep = ("precision", "recall", "f1", "fpr", "strata")
    return {
        "cutoff": m["cutoff"],
        "sizes": m["sizes"],
        "verdict": {k: m["verdict"][k] for k in keep},
        "rules_only": {k: m["rules_only"][k] for k in keep},
    }


def _evaluation_md(card: dict[str, Any]) -> str:
    e = card.get("evaluation")
    if not e:
        return "- **Time-split evaluation:** not attached (`pkgvet train --evaluation`)."
    s = e["verdict"]
    strata = ", ".join(
        f"{k} {v['fp']}/{v['n']} ({100 * v['fpr']:.2f}%)" for k, v in sorted(s["strata"].items())
    )
    return (
        f"- **Time-split evaluation** (train before {e['cutoff']}, test on campaigns first seen "
        f"from then on; the same recipe, fitted on the training side only): precision "
        f"{s['precision']}, recall {s['recall']}, F1 {s['f1']}; false positives {strata}. "
        f"Rules alone on the same test: F1 {e['rules_only']['f1']}."
    )


def card_markdown(card: dict[str, Any], digest: str, size: int) -> str:
    data = card["data"]
    benign = "\n".join(
        f"  - `{b['manifest']}` (sha256 `{b['sha256'][:16]}…`): {b['releases']} releases"
        for b in data["benign"]
    )
    benign += "".join(
        f"\n  - triage labels `{t['file']}` (sha256 `{t['sha256'][:16]}…`): {t['malicious']} "
        f"confirmed malicious, {t['benign']} false positives"
        for t in data.get("labels", ())
    )
    o = card["out_of_fold"]
    return f"""# pkgvet model card

- **Model file:** `model.json.gz`, sha256 `{digest}`, {size / 1e6:.2f} MB (gzip-compressed
  JSON: trees as arrays and linear weights; loading it cannot run code).
- **Architecture:** stacking ensemble of a random forest and gradient-boosted trees over
  {card["dense_features"]} dense features (metadata, files, code API families per trigger
  point, strings, rule findings) and a logistic regression over {card["text_dim"]} hashed text
  tokens (imports, called names, words in string literals, URL hosts); a logistic meta-learner
  on their out-of-fold outputs, which also calibrates the score.
- **Feature schema:** sha256 `{card["feature_schema_sha256"]}` (refused if it differs).
- **Training data:**
  - malware: `{data["malware"]["path"]}`, MANIFEST.tsv sha256
    `{data["malware"]["manifest_sha256"][:16]}…`, {data["malware"]["packages"]} packages;
{benign}
  - newest sample: {card["newest_sample"]}; seed {card["seed"]}; scikit-learn
    {card["scikit_learn"]} (training only; scans need neither it nor numpy).
- **Thresholds** (out-of-fold, for a false-positive budget of 0.25% malicious / 2%
  suspicious): malicious ≥ {card["thresholds"]["malicious"]:.4f} (model alone) or ≥
  {card["thresholds"]["malicious_with_rules"]:.4f} with a high rule finding; suspicious ≥
  {card["thresholds"]["suspicious"]:.4f}.
- **Out-of-fold (campaign-grouped 5-fold, all data, in-sample campaigns):** precision
  {o["precision"]}, recall {o["recall"]}, F1 {o["f1"]}, FPR {o["fpr"]} ({o["fp"]} of
  {o["fp"] + o["tn"]} benign).
{_evaluation_md(card)}
- **The figures that count** are those of `pkgvet evaluate` (time-ordered, campaign-grouped
  split; see docs/model.md): they measure campaigns the model never saw.
- **Limits:** trained on malware that entered the dataset up to {card["newest_sample"]}; the
  benign side is PyPI sdists (wheels only where no sdist exists) of popular and long-tail
  projects. Expect lower recall on novel techniques; the rules still report what they see.
"""


def _install(blob: bytes, digest: str, card: dict[str, Any]) -> None:
    import pkgvet.ml
    from pkgvet.ml.model import SHIPPED, load_model, shipped_model_available

    pkg_dir = Path(pkgvet.ml.__file__).resolve().parent.parent
    (pkg_dir / SHIPPED).write_bytes(blob)
    (pkg_dir / "data" / "model-card.md").write_text(card_markdown(card, digest, len(blob)))
    (pkg_dir / "ml" / "pinned.py").write_text(
        '"""The sha256 of the shipped model file, written by ``pkgvet train --install``. A model\n'
        'file whose hash differs is refused at load."""\n\n'
        f'MODEL_SHA256 = "{digest}"\n'
    )
    load_model.cache_clear()
    shipped_model_available.cache_clear()
    click.echo(f"installed into {pkg_dir} (pinned sha256 {digest[:12]})", err=True)


@click.command("evaluate")
@_data_options(
    EVAL_BENIGN, "build/evaluation", "Where to write metrics.json, report.md and the PNG plots."
)
@click.option(
    "--cutoff",
    default="2024-07-01",
    show_default=True,
    help="Train on samples dated before, test on samples from this date.",
)
@click.option(
    "--until",
    default=None,
    help="Leave out everything dated from this day on: a validation run inside the training "
    "period, for choosing settings without looking at the test.",
)
@click.option(
    "--benign-holdout",
    type=click.FloatRange(0.0, 0.9),
    default=0.0,
    show_default=True,
    help="With --until: test this fraction of the benign releases uploaded before --until (a "
    "stable, name-grouped part, whatever their date) and train on the rest, so a validation "
    "run has enough benign releases to read a false-positive rate.",
)
@click.option(
    "--ablation/--no-ablation",
    default=True,
    show_default=True,
    help="Refit the stack without each feature group (six more fits).",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Fit the stack with this many seeds (0, 1, …; folds and learners) and report how far "
    "F1, false positives and single scores move between the fits: differences between two "
    "settings smaller than that spread are noise. The main figures stay those of seed 0.",
)
@click.option("--jobs", type=int, default=0, help="Processes for feature extraction (0: all).")
def evaluate_command(
    malware: Path,
    benign: tuple[Path, ...],
    out: Path,
    cutoff: str,
    until: str | None,
    benign_holdout: float,
    ablation: bool,
    seeds: int,
    jobs: int,
) -> None:
    """Evaluate on a time-ordered, campaign-grouped split.

    Malware added before --cutoff and benign releases uploaded before it train; the test holds
    the later samples of campaigns (near-identical code) that started from the cut-off on.
    Prints precision, recall, F1, the false-positive rate per benign stratum, each base learner,
    the rules alone and the ablation; writes report.md, metrics.json and PNG plots.
    """
    _need_extra()
    from pkgvet.ml.evaluate import evaluate, report_markdown

    if benign_holdout and until is None:
        raise click.UsageError("--benign-holdout is for validation runs: give --until as well")
    rows, _data = load_rows(malware, benign, jobs)
    result = evaluate(
        rows,
        out,
        cutoff=cutoff,
        ablation=ablation,
        until=until,
        benign_holdout=benign_holdout,
        seeds=seeds,
        log=lambda m: click.echo(m, err=True),
    )
    click.echo(report_markdown(result))
    click.echo(f"written to {out}", err=True)
