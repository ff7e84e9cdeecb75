"""Report formats, in a registry keyed by name (``--format``)."""
