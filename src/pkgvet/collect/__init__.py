"""Collect benign PyPI distributions for scanner evaluation.

Projects are sampled (popular, long tail or named), one file per project is
downloaded as bytes through the JSON API, verified against its sha256 and
stored in a content-addressed cache, and a TSV manifest records what was
collected.  Nothing downloaded is ever installed or executed.
"""

from pkgvet.collect.cli import (
    Outcome,
    RestoreOutcome,
    RunSummary,
    collect_command,
    pending_targets,
    restore_manifest,
    run_collection,
)
from pkgvet.collect.index import (
    BadResponseError,
    CacheError,
    CollectError,
    Download,
    FetchError,
    FetchTimeoutError,
    FileTooLargeError,
    HashMismatchError,
    HTTPStatusError,
    IndexClient,
    ManifestError,
    NoFilesError,
    PinMismatchError,
    ProjectNotFoundError,
    SpecError,
    VersionPolicy,
    cache_dir,
)
from pkgvet.collect.manifest import (
    ManifestRow,
    append_row,
    cached_path,
    iter_manifest,
    read_manifest,
    write_manifest,
)
from pkgvet.collect.sampling import Target, load_popular, select_targets

__all__ = [
    "BadResponseError",
    "CacheError",
    "CollectError",
    "Download",
    "FetchError",
    "FetchTimeoutError",
    "FileTooLargeError",
    "HTTPStatusError",
    "HashMismatchError",
    "IndexClient",
    "ManifestError",
    "ManifestRow",
    "NoFilesError",
    "Outcome",
    "PinMismatchError",
    "ProjectNotFoundError",
    "RestoreOutcome",
    "RunSummary",
    "SpecError",
    "Target",
    "VersionPolicy",
    "append_row",
    "cache_dir",
    "cached_path",
    "collect_command",
    "iter_manifest",
    "load_popular",
    "pending_targets",
    "read_manifest",
    "restore_manifest",
    "run_collection",
    "select_targets",
    "write_manifest",
]
