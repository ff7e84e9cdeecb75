"""``pkgvet scan``: scan archives, directories and dataset trees."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import click
from click.core import ParameterSource

from pkgvet.archive import is_archive_name
from pkgvet.commands.model_options import check_model, model_file_options
from pkgvet.config import Limits, ScanConfig
from pkgvet.environment import Installed, PthFile, environment_jobs, scan_installed
from pkgvet.errors import PkgvetError, SourceError
from pkgvet.known import check_installed, scan_with_known
from pkgvet.models import ScanResult, Severity, Verdict
from pkgvet.pipeline import error_result, iter_targets
from pkgvet.remote import RemoteError, Spec, parse_spec
from pkgvet.report.base import get_format
from pkgvet.settings import Settings, SettingsError, default_config, load_config, load_suppressions
from pkgvet.suppress import apply_suppressions

if TYPE_CHECKING:
    from pkgvet.collect.index import IndexClient
    from pkgvet.known import KnownStore

_SEVERITIES = [s.value for s in Severity]
_T = TypeVar("_T")


class UsageFailure(click.ClickException):
    """A failure before any scan (missing target, nothing to scan): exit code 2, since 1
    means "findings"."""

    exit_code = 2


def _split(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.strip().upper() for item in values for v in item.split(",") if v.strip())


@click.command("scan")
@click.argument("targets", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "text", "summary", "json", "jsonl", "markdown", "sarif"]),
    help="Report format; auto is text for one package, summary for many.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--fail-on",
    default="high",
    show_default=True,
    type=click.Choice(_SEVERITIES),
    help="Exit 1 when a finding of this severity or worse is found (a malicious verdict of "
    "the model always exits 1).",
)
@click.option(
    "--min-severity",
    default="low",
    show_default=True,
    type=click.Choice(_SEVERITIES),
    help="Hide findings below this severity.",
)
@click.option(
    "--select",
    multiple=True,
    metavar="RULES",
    help="Only these rule ids or prefixes (comma-separated, repeatable).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="RULES",
    help="Skip these rule ids or prefixes (comma-separated, repeatable).",
)
@click.option(
    "--password",
    default="infected",
    show_default=True,
    help="Password for encrypted zips (the malware-dataset convention).",
)
@click.option(
    "--time-budget",
    default=120.0,
    show_default=True,
    type=float,
    help="Seconds allowed per package before it is reported as an error.",
)
@click.option(
    "-r",
    "--requirement",
    "requirements",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Scan the packages a requirements file, lock file (pylock.toml, poetry.lock, "
    "uv.lock: only the locked files' sha256) or pyproject.toml names (pins, --hash, -r "
    "includes, extras, markers; repeatable). Ranges are errors: pkgvet runs no resolver.",
)
@click.option(
    "--targets-are-requirements",
    "as_requirements",
    is_flag=True,
    help="Read every TARGET as a requirements, lock or pyproject.toml file, as -r does (for "
    "tools that pass file names, such as pre-commit).",
)
@click.option(
    "--index-url",
    metavar="URL",
    help="Index for targets given as NAME or NAME==VERSION, also over the index a -r file "
    "names (default: the file's index, else $PIP_INDEX_URL, else PyPI). Only its JSON API "
    "is used; nothing is installed or built.",
)
@click.option(
    "--dist",
    type=click.Choice(["best", "sdist", "wheel", "all"]),
    default="best",
    show_default=True,
    help="Which files of a named release to scan: best is the sdist, else a pure wheel.",
)
@click.option(
    "--model/--no-model",
    "use_model",
    default=True,
    show_default=True,
    help="Score with the trained detector (verdict and score from model plus rules); "
    "--no-model gives the rules-only verdict.",
)
@model_file_options
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on standard error (default: when it is a terminal and "
    "several packages are scanned).",
)
@click.option(
    "--env",
    "env",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[PATH]",
    help="Scan an installed environment: every *.dist-info's RECORD files and every .pth "
    "file, read as bytes (nothing is imported). PATH is a virtualenv or a site-packages "
    "directory; without PATH, the running interpreter's.",
)
@click.option(
    "--known/--no-known",
    "use_known",
    default=True,
    show_default=True,
    help="Look every package up in the known-malicious store (OSV MAL- advisories imported "
    "with 'pkgvet known import') before analysing it: a match is PV000, critical. Costs "
    "nothing when there is no store.",
)
@click.option(
    "--known-store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The known-malicious store (default: $PKGVET_CACHE_DIR/known.sqlite).",
)
@click.option(
    "--compare-previous",
    is_flag=True,
    help="For packages fetched by NAME or NAME==VERSION, also fetch the previous release and "
    "add what changed (install hooks, capabilities, payloads, metadata; PD rules).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read options and suppressions from this pyproject.toml ([tool.pkgvet]) or "
    "standalone pkgvet.toml (default: [tool.pkgvet] of ./pyproject.toml, if any). Options "
    "given on the command line win.",
)
@click.option("--no-config", is_flag=True, help="Ignore ./pyproject.toml's [tool.pkgvet].")
@click.option(
    "--suppressions",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A TOML file of [[suppress]] entries (package, version, rule, path, reason): "
    "accepted findings and allowlisted packages (repeatable; see docs/ci.md).",
)
def scan_command(
    targets: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    fail_on: str,
    min_severity: str,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    password: str,
    time_budget: float,
    requirements: tuple[Path, ...],
    as_requirements: bool,
    index_url: str | None,
    dist: str,
    use_model: bool,
    model_file: Path | None,
    model_sha256: str | None,
    progress: bool | None,
    env: str | None,
    use_known: bool,
    known_store: Path | None,
    compare_previous: bool,
    config_file: Path | None,
    no_config: bool,
    suppressions: tuple[Path, ...],
) -> None:
    """Scan package archives, unpacked packages, or trees of many packages.

    TARGETS are .tar.gz/.zip/.whl/.egg files, unpacked package directories, single source
    files, or directories holding many packages (such as the name/version/file layout of the
    pypi-malregistry dataset): one result per package. A target that is not a path but a
    NAME or NAME==VERSION is fetched from the index (sha256-verified, cached) and scanned.
    """
    settings = _settings(config_file, no_config, suppressions)
    ctx, o = click.get_current_context(), settings.options
    fmt = _pick(ctx, "fmt", fmt, o.format)
    fail_on = _pick(ctx, "fail_on", fail_on, o.fail_on)
    min_severity = _pick(ctx, "min_severity", min_severity, o.min_severity)
    select = _pick(ctx, "select", select, o.select)
    ignore = _pick(ctx, "ignore", ignore, o.ignore)
    time_budget = _pick(ctx, "time_budget", time_budget, o.time_budget)
    index_url = _pick(ctx, "index_url", index_url, o.index_url)
    dist = _pick(ctx, "dist", dist, o.dist)
    use_model = _pick(ctx, "use_model", use_model, o.model)
    config = ScanConfig(
        limits=Limits(time_budget_s=time_budget),
        select=_split(select),
        ignore=_split(ignore),
        password=password.encode(),
        min_severity=Severity(min_severity),
        use_model=use_model,
        model_path=str(model_file) if model_file else None,
        model_sha256=model_sha256,
    )
    config = check_model(config)
    if as_requirements:
        missing = [str(t) for t in targets if not t.is_file()]
        if missing:
            raise UsageFailure(f"{', '.join(missing)}: no such file")
        targets, requirements = (), requirements + targets
    if not targets and not requirements and env is None:
        raise UsageFailure("give TARGETS to scan, -r REQUIREMENTS or --env [PATH]")
    paths = _jobs(targets) + _requirement_jobs(requirements, index_url) + _env_jobs(env)
    if not paths:
        raise UsageFailure("no packages found in the given targets")
    name = fmt if fmt != "auto" else ("text" if len(paths) == 1 else "summary")
    formatter = get_format(name)
    show_progress = progress if progress is not None else (sys.stderr.isatty() and len(paths) > 1)
    results: list[ScanResult] = []
    with ExitStack() as stack:
        out: TextIO = (
            stack.enter_context(output.open("w", encoding="utf-8")) if output else sys.stdout
        )
        remote = _Remote(index_url, dist, _known(use_known, known_store), compare_previous)
        for result in _run(paths, config, show_progress, remote):
            apply_suppressions(result, settings.suppressions)
            formatter.write_result(result, out)
            results.append(result)
        formatter.finish(results, out)
    sys.exit(exit_code(results, Severity(fail_on)))


def _settings(config_file: Path | None, no_config: bool, extra: tuple[Path, ...]) -> Settings:
    """Options and suppressions of --config (else ./pyproject.toml's [tool.pkgvet], unless
    --no-config), plus the entries of every --suppressions file."""
    if config_file is not None and no_config:
        raise UsageFailure("--config and --no-config exclude each other")
    try:
        if config_file is not None:
            settings = load_config(config_file)
        else:
            found = None if no_config else default_config()
            settings = load_config(found, required=False) if found else Settings()
        more = tuple(s for f in extra for s in load_suppressions(f))
    except SettingsError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    return dataclasses.replace(settings, suppressions=settings.suppressions + more)


def _pick(ctx: click.Context, name: str, given: _T, configured: _T | None) -> _T:
    """The command-line value when the option was given there, else the configured one."""
    source = ctx.get_parameter_source(name)
    explicit = source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    return given if configured is None or explicit else configured


def _known(use_known: bool, path: Path | None) -> KnownStore | None:
    """The known-malicious store, when enabled and present (one stat when absent); a named
    --known-store that is missing or unreadable is a usage error."""
    from pkgvet.known import KnownError, open_store_if_present

    if not use_known:
        return None
    try:
        store = open_store_if_present(path)
    except KnownError as exc:
        raise UsageFailure(exc.diagnostics()) from exc
    if store is None and path is not None:
        raise UsageFailure(f"--known-store {path}: no such store")
    return store


@dataclass(frozen=True, slots=True)
class Invalid:
    """An entry that cannot be scanned (a range, a URL, a bad line): an error result."""

    target: str
    error: str


# a local target, a name to fetch, a bad entry, an installed distribution or .pth (--env)
Job = Path | Spec | Invalid | Installed | PthFile


def _jobs(targets: tuple[Path, ...]) -> list[Job]:
    """Local targets expanded to packages; other targets read as NAME or NAME==VERSION."""
    jobs: list[Job] = []
    for t in targets:
        if t.exists():
            try:
                jobs.extend(iter_targets(t))
            except SourceError as exc:
                raise UsageFailure(exc.diagnostics()) from exc
            continue
        text = str(t)
        if "/" in text or "\\" in text or is_archive_name(text) or text.endswith(".py"):
            raise UsageFailure(f"{t}: no such file or directory")  # a path, not a name
        try:
            spec = parse_spec(text)
        except RemoteError as exc:
            raise UsageFailure(exc.diagnostics()) from exc
        if spec is None:
            raise UsageFailure(f"{t}: no such file or directory, and not a NAME==VERSION")
        jobs.append(spec)
    return jobs


def _env_jobs(env: str | None) -> list[Job]:
    """The installed distributions and .pth files of ``--env [PATH]``."""
    if env is None:
        return []
    try:
        return list(environment_jobs(Path(env) if env else None))
    except SourceError as exc:
        raise UsageFailure(exc.diagnostics()) from exc


def _requirement_jobs(files: tuple[Path, ...], index_url: str | None) -> list[Job]:
    """The entries of requirements and lock files; each is fetched from the index its file
    names (a requirements file's ``--index-url``, a lock's recorded index) unless
    ``index_url`` (the command's ``--index-url``) is given."""
    from pkgvet.lockfiles import parse_any
    from pkgvet.requirements import RequirementsError

    jobs: list[Job] = []
    for f in files:
        try:
            parsed = parse_any(f)
        except RequirementsError as exc:
            raise UsageFailure(exc.diagnostics()) from exc
        for line in parsed.skipped:
            click.echo(f"skipped {line}", err=True)
        named: set[str] = set()
        file_index = parsed.index_url  # a requirements file's --index-url, for every entry
        for e in parsed.entries:
            if e.problem is not None or e.name is None:
                jobs.append(Invalid(f"{e.text} ({e.origin})", e.problem or "not a requirement"))
                continue
            index = e.index_url or file_index
            if index is not None:
                named.add(index)
            jobs.append(Spec(e.name, e.version, e.hashes, None if index_url else index))
        others = sorted(named - {index_url})
        if index_url and others:
            click.echo(
                f"{f}: names the index {', '.join(others)}; fetching from --index-url "
                f"{index_url} instead",
                err=True,
            )
    return jobs


class _Remote:
    """Fetches named packages on first use (one index client for the whole run)."""

    def __init__(
        self,
        index_url: str | None,
        dist: str,
        known: KnownStore | None = None,
        compare_previous: bool = False,
    ) -> None:
        self.index_url = index_url
        self.dist = dist
        self.clients: dict[str | None, IndexClient] = {}  # one per index, made on first use
        self.known = known  # the known-malicious store, when there is one
        self.compare_previous = compare_previous

    def scan(self, spec: Spec, config: ScanConfig) -> Iterator[ScanResult]:
        from pkgvet.collect.index import IndexClient
        from pkgvet.remote import fetch

        index = spec.index_url or self.index_url  # the file's index, else the command's
        try:
            client = self.clients.get(index)
            if client is None:
                client = self.clients[index] = IndexClient(index)
            fetched = fetch(spec, client, self.dist)
        except PkgvetError as exc:  # this entry fails; the others are still scanned
            yield error_result(str(spec), "remote", exc.diagnostics())
            return
        for label, path in fetched:
            result = scan_with_known(path, config, self.known)
            result.target = label
            if self.compare_previous and not result.error:
                from pkgvet.remote import compare_with_previous

                compare_with_previous(result, spec, path, client, config)
            yield result


def _scan_job(job: Job, config: ScanConfig, remote: _Remote) -> Iterator[ScanResult]:
    if isinstance(job, Invalid):
        yield error_result(job.target, "remote", job.error)
    elif isinstance(job, Spec):
        yield from remote.scan(job, config)
    elif isinstance(job, Installed):
        yield check_installed(scan_installed(job, config), remote.known, config)
    elif isinstance(job, PthFile):
        yield scan_installed(job, config)
    else:
        yield scan_with_known(job, config, remote.known)


def _run(paths: list[Job], config: ScanConfig, show: bool, remote: _Remote) -> Iterator[ScanResult]:
    if not show:
        for p in paths:
            yield from _scan_job(p, config, remote)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[flagged]} flagged"),
    )
    # on standard error, never the report's stdout (rich defaults to stdout); on a non-terminal
    # rich draws nothing until the end, where the transient bar is dropped
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scan", total=len(paths), flagged=0)
        flagged = 0
        for p in paths:
            for r in _scan_job(p, config, remote):
                flagged += r.verdict.value == "malicious"
                yield r
            bar.update(task, advance=1, flagged=flagged)


def exit_code(results: list[ScanResult], fail_on: Severity) -> int:
    if any(r.error for r in results):
        return 2
    if any(
        (r.verdict is Verdict.MALICIOUS and r.model_probability is not None)  # the model's call
        or (r.max_severity is not None and r.max_severity >= fail_on)
        for r in results
    ):
        return 1
    return 0
