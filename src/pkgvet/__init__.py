"""pkgvet: static vetting of Python packages for malicious code.

The package never installs, builds, imports or runs the code it scans: archives are read as
bytes in memory and analysed statically.
"""

from pkgvet.models import Finding, ScanResult, Severity
from pkgvet.pipeline import scan_path

__version__ = "0.1.0"

__all__ = ["Finding", "ScanResult", "Severity", "__version__", "scan_path"]
