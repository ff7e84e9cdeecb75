"""``python -m pkgvet``."""

from pkgvet.cli import main

main()
