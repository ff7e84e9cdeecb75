"""pkgvet: static vetting of Python packages for malicious code.

The package never installs, builds, imports or runs the code it scans: archives are read as
bytes in memory and analysed statically. The public API (``scan_path``, ``ScanResult``,
``Finding``, ``Severity``) is imported lazily so that ``pkgvet --version`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Finding", "ScanResult", "Severity", "__version__", "scan_path"]

if TYPE_CHECKING:
    from pkgvet.models import Finding, ScanResult, Severity
    from pkgvet.pipeline import scan_path


def __getattr__(name: str) -> Any:
    if name in ("Finding", "ScanResult", "Severity"):
        from pkgvet import models

        return getattr(models, name)
    if name == "scan_path":
        from pkgvet.pipeline import scan_path

        return scan_path
    raise AttributeError(f"module 'pkgvet' has no attribute {name!r}")
