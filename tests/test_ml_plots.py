"""PNG plots for training reports (pkgvet.ml.plots)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 200 and height > 200
    assert len(data) > 5_000
    assert data.rstrip(b"\x00")[-8:-4] == b"IEND"
    return width, height


def test_import_is_cheap() -> None:
    import pkgvet.ml.plots  # noqa: F401

    # matplotlib may be loaded by some other test already; then there is nothing to check
    if "matplotlib" not in sys.modules:
        assert "matplotlib.pyplot" not in sys.modules


def test_pr_curve(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pkgvet.ml.plots import pr_curve_png

    out = tmp_path / "pr.png"
    recall = [i / 50 for i in range(51)]
    curves = {
        "forest": (recall, [1.0 - 0.3 * r**3 for r in recall]),
        "rules": (recall, [0.9 - 0.5 * r**2 for r in recall]),
    }
    pr_curve_png(out, curves, "Precision-recall", points={"threshold 0.5": (0.8, 0.85)})
    _check_png(out)
    pr_curve_png(tmp_path / "empty.png", {}, "nothing")
    _check_png(tmp_path / "empty.png")
    with pytest.raises(ValueError):
        pr_curve_png(tmp_path / "bad.png", {"x": ([0.1, 0.2], [1.0])}, "bad")


def test_confusion(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pkgvet.ml.plots import confusion_png

    out = tmp_path / "cm.png"
    confusion_png(out, tn=9512, fp=37, fn=58, tp=1403, title="Test split")
    _check_png(out)
    confusion_png(str(tmp_path / "zero.png"), 0, 0, 0, 0, "empty")
    _check_png(tmp_path / "zero.png")


def test_calibration(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from pkgvet.ml.plots import calibration_png

    out = tmp_path / "cal.png"
    pred = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
    true = [0.02, 0.1, 0.22, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97]
    calibration_png(out, true, pred, "Reliability")
    _check_png(out)
    with pytest.raises(ValueError):
        calibration_png(tmp_path / "bad.png", [0.1], [0.1, 0.2], "bad")
