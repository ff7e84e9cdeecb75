"""The Markdown summary (pull-request comments): counts, a row per non-clean package, clean
ones folded, and package-controlled text unable to break the table."""

from __future__ import annotations

import io

from pkgvet.models import ScanResult, Verdict
from pkgvet.report.base import get_format


def test_markdown_summary_orders_escapes_and_folds() -> None:
    bad = ScanResult(target="evil|pkg`x`.tar.gz", kind="sdist", verdict=Verdict.MALICIOUS)
    bad.score = 0.99
    bad.reasons = ["model probability 0.990", "PV201 exec of <decoded> data | more"]
    broken = ScanResult(target="gone==1.0", kind="remote", verdict=Verdict.ERROR, error="yanked")
    ok = ScanResult(target="fine-1.0.tar.gz", kind="sdist", verdict=Verdict.CLEAN)
    fmt = get_format("markdown")
    out = io.StringIO()
    for r in (ok, broken, bad):
        fmt.write_result(r, out)
    assert out.getvalue() == ""  # a whole-run document
    fmt.finish([ok, broken, bad], out)
    text = out.getvalue()
    assert "1 malicious" in text and "1 error" in text and "1 clean" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1].startswith("| evil\\|pkg\\`x\\`.tar.gz |")  # malicious first, escaped
    assert "\\<decoded\\> data \\| more" in rows[1]
    assert rows[2].startswith("| gone==1.0 |") and "yanked" in rows[2]
    assert all(line.count(" | ") == 4 for line in rows)  # no cell broke out of the table
    assert "<details><summary>1 clean</summary>" in text and "- fine-1.0.tar.gz" in text
