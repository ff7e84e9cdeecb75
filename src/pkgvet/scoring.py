"""The verdict: rule findings and the trained detector → malicious / suspicious / clean, a 0-1
score and the top reasons.

With the model (the default), the score is its calibrated probability, which already weighs the
rule findings as features. A package is malicious when the probability reaches the model's
``malicious`` threshold, or its lower ``malicious_with_rules`` threshold while a rule finding is
high, or a rule finding is critical; suspicious when it reaches the ``suspicious`` threshold or
a rule finding is high (rules and model disagree: a person should look); clean otherwise. The
two malicious thresholds share one false-positive budget on out-of-fold scores: the model alone
takes all of it, and the lower threshold only what that leaves (``ml.train.joint_thresholds``).

Without a model (``--no-model``), the rules-only score combines findings as independent evidence,
``1 - Π(1 - w)`` with a weight per severity and confidence; it orders packages well but is not a
probability, and the verdict follows the worst severity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pkgvet.models import Confidence, Finding, ScanResult, Severity, Verdict

if TYPE_CHECKING:
    from pkgvet.ml.model import ModelOutput

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


def apply_verdict(result: ScanResult, model: ModelOutput | None = None) -> None:
    """Set verdict, score and reasons of a result from its findings and the model's output."""
    if result.error:
        result.verdict = Verdict.ERROR
        result.score = 0.0
        return
    worst = result.max_severity
    if model is not None:
        th = model.thresholds
        p = model.probability
        result.score = p
        result.model_probability = p
        result.model_version = model.version
        high = worst is not None and worst >= Severity.HIGH
        if (
            p >= th.malicious
            or (high and p >= th.malicious_with_rules)
            or (worst is not None and worst >= Severity.CRITICAL)
        ):
            result.verdict = Verdict.MALICIOUS
        elif p >= th.suspicious or high:
            result.verdict = Verdict.SUSPICIOUS
        else:
            result.verdict = Verdict.CLEAN
    else:
        result.score = rule_score(result.findings)
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
    if model is not None:
        reasons.insert(0, f"model probability {model.probability:.3f} (model {model.version})")
        reasons.extend(f"model: {d}" for d in model.drivers)
    result.reasons = reasons
