"""Evaluation plots for training reports, written as PNG files with matplotlib's Agg backend.

Training and study reports. matplotlib is imported inside each function (after selecting the
non-interactive Agg backend), so importing this module costs nothing and needs no display.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["calibration_png", "confusion_png", "pr_curve_png", "pyplot", "save_png"]

StrPath = str | os.PathLike[str]

_DPI = 120


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: StrPath, dpi: int = _DPI) -> None:
    """Lay ``fig`` out, write it to ``path`` as PNG and close it."""
    plt = pyplot()
    try:
        fig.tight_layout()
        fig.savefig(os.fspath(path), format="png", dpi=dpi)
    finally:
        plt.close(fig)


def _unit_axes(ax: Any, xlabel: str, ylabel: str, title: str, top: float) -> None:
    """Both axes from 0 to ``top`` (probabilities and rates), labelled, with a light grid."""
    ax.set_xlim(0.0, top)
    ax.set_ylim(0.0, top)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def pr_curve_png(
    path: StrPath,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    points: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """Precision-recall curves, ``label -> (recall, precision)``, with optional operating
    points ``label -> (recall, precision)`` marked, their values in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for label, (recall, precision) in curves.items():
        if len(recall) != len(precision):
            plt.close(fig)
            raise ValueError(f"curve {label!r}: recall and precision differ in length")
        ax.plot(list(recall), list(precision), label=label, linewidth=1.6)
    for label, (r, p) in (points or {}).items():
        # the values go in the legend: labels beside nearby points would overlap
        ax.plot(
            [r],
            [p],
            marker="o",
            linestyle="none",
            markersize=7,
            label=f"{label} (R={r:.3f}, P={p:.3f})",
        )
    _unit_axes(ax, "recall", "precision", title, 1.01)
    if curves or points:
        ax.legend(loc="lower left", fontsize=8)
    save_png(fig, path)


def confusion_png(path: StrPath, tn: int, fp: int, fn: int, tp: int, title: str) -> None:
    """A 2x2 confusion matrix heat map (rows: true class, columns: predicted class) with the
    count and the percentage of all samples in each cell."""
    plt = pyplot()
    cells = [[tn, fp], [fn, tp]]
    total = tn + fp + fn + tp
    peak = max(tn, fp, fn, tp, 1)
    labels = ["benign", "malicious"]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    im = ax.imshow(cells, cmap="Blues", vmin=0, vmax=peak)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for r in range(2):
        for c in range(2):
            count = cells[r][c]
            share = 100.0 * count / total if total else 0.0
            ax.text(
                c,
                r,
                f"{count:,}\n{share:.1f}%",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if count > peak / 2 else "black",
            )
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    save_png(fig, path)


def calibration_png(
    path: StrPath, prob_true: Sequence[float], prob_pred: Sequence[float], title: str
) -> None:
    """A reliability diagram: observed fraction of positives (``prob_true``) against the mean
    predicted probability (``prob_pred``) per bin, with the diagonal of perfect calibration."""
    if len(prob_true) != len(prob_pred):
        raise ValueError("prob_true and prob_pred differ in length")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(list(prob_pred), list(prob_true), marker="o", linewidth=1.6, label="model")
    _unit_axes(ax, "mean predicted probability", "fraction of positives", title, 1.0)
    ax.legend(loc="upper left", fontsize=8)
    save_png(fig, path)
