"""Rules-only verdict: findings → malicious / suspicious / clean, a 0-1 score and reasons.

The score combines findings as independent evidence, ``1 - Π(1 - w)``, with a weight per
severity and confidence. It orders packages well but is not a calibrated probability: the trained
detector (``pkgvet train``) replaces it when a model is available.
"""

from __future__ import annotations

from pkgvet.models import Confidence, Finding, ScanResult, Severity, Verdict

_WEIGHT = {
    Severity.INFO: 0.02,
    Severity.LOW: 0.08,
    Severity.MEDIUM: 0.25,
    Severity.HIGH: 0.7,
    Severity.CRITICAL: 0.9,
}
_CONF = {Confidence.LOW: 0.5, Confidence.MEDIUM: 0.8, Confidence.HIGH: 1.0}


def rule_score(findings: list[Finding]) -> float:
    keep = 1.0
    seen: set[tuple[str, str]] = set()
    for f in findings:
        key = (f.rule_id, f.path)
        if key in seen:  # one rule in one file counts once
            continue
        seen.add(key)
        keep *= 1.0 - _WEIGHT[f.severity] * _CONF[f.confidence]
    return round(1.0 - keep, 4)


def apply_verdict(result: ScanResult) -> None:
    """Set verdict, score and reasons of a result from its findings."""
    if result.error:
        result.verdict = Verdict.ERROR
        result.score = 0.0
        return
    result.score = rule_score(result.findings)
    worst = result.max_severity
    if worst is not None and worst >= Severity.HIGH:
        result.verdict = Verdict.MALICIOUS
    elif worst is not None and worst >= Severity.MEDIUM:
        result.verdict = Verdict.SUSPICIOUS
    else:
        result.verdict = Verdict.CLEAN
    ranked = sorted(result.findings, key=lambda f: (-f.severity.rank, f.rule_id))
    reasons: list[str] = []
    for f in ranked:
        text = f"{f.rule_id} {f.title} ({f.path}:{f.line})" if f.line else f"{f.rule_id} {f.title}"
        if text not in reasons:
            reasons.append(text)
        if len(reasons) == 5:
            break
    result.reasons = reasons
