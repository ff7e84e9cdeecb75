"""Static deobfuscation: encoded payloads are decoded without running them, analysed like any
source, and reported at the line of the original file they came from; the fold engine stays
within its limits on hostile input.

Every source here is built as a string, written to ``tmp_path/setup.py`` and scanned as a
one-file package. The hidden code is ``import os; os.system("echo 1")``; nothing is executed.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import zlib
from pathlib import Path

import pytest

from pkgvet.analysis.context import FileContext, decode_blob
from pkgvet.config import Limits, ScanConfig
from pkgvet.models import Finding, ScanResult, Trigger
from pkgvet.pipeline import scan_target

CODE = 'import os; os.system("echo 1")'
CALL = 'os.system("echo 1")'
KiB = 1024


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def scan_source(tmp_path: Path, source: str, config: ScanConfig | None = None) -> ScanResult:
    (tmp_path / "setup.py").write_text(source, encoding="utf-8")
    result = scan_target(tmp_path, config)
    assert result.error is None, result.error
    failed = [s for s in result.skips if s.reason.startswith("rule ")]
    assert not failed, f"rules crashed: {failed}"
    return result


def line_of(source: str, needle: str) -> int:
    """1-based number of the first line of ``source`` containing ``needle``."""
    return next(n for n, text in enumerate(source.splitlines(), 1) if needle in text)


def findings(result: ScanResult, rule_id: str) -> list[Finding]:
    return [f for f in result.findings if f.rule_id == rule_id]


def show(result: ScanResult) -> str:
    return "\n".join(f"  {f.rule_id} {f.path}:{f.line} depth={f.decoded_depth} "
                     f"evidence={f.evidence[:70]!r}" for f in result.findings) or "  (none)"


def one(result: ScanResult, rule_id: str, line: int) -> Finding:
    """The single finding of ``rule_id`` at ``line`` of setup.py."""
    at = [f for f in findings(result, rule_id) if f.path == "setup.py" and f.line == line]
    assert len(at) == 1, f"expected one {rule_id} at setup.py:{line}:\n{show(result)}"
    return at[0]


# --------------------------------------------------------------------------------------------
# Encodings: the hidden os.system is found, at the exec line, with the decoded text


NESTED = b64(zlib.compress(b64(CODE).encode()))  # base64 of zlib of base64 of the code
HEX = CODE.encode().hex()
ENCODED_SOURCES = {
    "base64-zlib-base64": (
        "import base64\nimport zlib\n\n"
        f'exec(base64.b64decode(zlib.decompress(base64.b64decode("{NESTED}"))))\n'),
    "hex-codec": f'import codecs\n\nexec(codecs.decode("{HEX}", "hex"))\n',
    "binascii-unhexlify": f'import binascii\n\nexec(binascii.unhexlify("{HEX}"))\n',
    "bytes-fromhex": f'x = 1\nexec(bytes.fromhex("{HEX}").decode())\n',
    "rot13-codecs": ("import codecs\n\n"
                     f'exec(codecs.decode({codecs.encode(CODE, "rot13")!r}, "rot13"))\n'),
    "chr-list": (
        "import sys\n\n"
        f'exec("".join(chr(x) for x in {[ord(c) for c in CODE]!r}))\n'),
    "module-constant": (
        f'import base64\n\nPAYLOAD = "{b64(CODE)}"\n\n\nexec(base64.b64decode(PAYLOAD))\n'),
}


@pytest.mark.parametrize("name", sorted(ENCODED_SOURCES))
def test_hidden_call_is_reported_at_the_exec_line(name: str, tmp_path: Path) -> None:
    source = ENCODED_SOURCES[name]
    line = line_of(source, "exec(")
    result = scan_source(tmp_path, source)
    f = one(result, "PV101", line)  # os.system, found inside the decoded payload
    assert f.decoded_depth == 1
    assert CALL in f.evidence
    assert f.snippet.startswith("exec(")  # the snippet is the original line
    payload = one(result, "PV601", line)
    assert payload.decoded_depth == 1
    assert CODE in payload.evidence


@pytest.mark.parametrize("name", sorted(ENCODED_SOURCES))
def test_exec_of_decoded_data_shows_the_payload(name: str, tmp_path: Path) -> None:
    # "chr-list" is a regression: PV201 did not fire for exec of a chr()-list join (its exec
    # site was not via a decoder) and PV204 (low) reported it instead.
    source = ENCODED_SOURCES[name]
    result = scan_source(tmp_path, source)
    f = one(result, "PV201", line_of(source, "exec("))
    assert f.evidence == CODE
    assert f.decoded_depth == 0  # the exec itself is in the file


def test_module_constant_is_reported_at_the_exec_not_the_constant(tmp_path: Path) -> None:
    long_code = CODE + "\n" + "\n".join(f"print({i})" for i in range(20))
    source = f'import base64\n\nPAYLOAD = "{b64(long_code)}"\n\n\nexec(base64.b64decode(PAYLOAD))\n'
    assert len(b64(long_code)) >= 120  # long enough to be decoded as a blob on its own, too
    result = scan_source(tmp_path, source)
    exec_line = line_of(source, "exec(")
    payloads = findings(result, "PV601")
    assert [(f.line, f.decoded_depth) for f in payloads] == [(exec_line, 1)], show(result)
    assert one(result, "PV101", exec_line).decoded_depth == 1


def test_computed_import_name(tmp_path: Path) -> None:
    source = 'import sys\n__import__("o" + "s").system("echo 1")\n'
    result = scan_source(tmp_path, source)
    assert "os.system" in one(result, "PV101", 2).message
    f = one(result, "PV605", 2)
    assert f.evidence == "os"


def test_computed_getattr_name(tmp_path: Path) -> None:
    source = 'import sys\ngetattr(__import__("os"), "sys" + "tem")("echo 1")\n'
    result = scan_source(tmp_path, source)
    assert "os.system" in one(result, "PV101", 2).message
    assert one(result, "PV605", 2).evidence == "system"


REVERSED = f"import sys\n\nexec({CODE[::-1]!r}[::-1])\n"


def test_reversed_string_exec_is_flagged(tmp_path: Path) -> None:
    result = scan_source(tmp_path, REVERSED)
    assert one(result, "PV201", 3).decoded_depth == 0


def test_reversed_string_is_decoded(tmp_path: Path) -> None:
    # Regression: `[::-1]` never folded (the step is UnaryOp(USub, Constant(1))), so the
    # reversed payload was never decoded or analysed.
    result = scan_source(tmp_path, REVERSED)
    assert one(result, "PV201", 3).evidence == CODE
    assert one(result, "PV101", 3).decoded_depth == 1


def test_layered_execs_are_peeled_to_the_original_line(tmp_path: Path) -> None:
    source = CODE
    for _ in range(3):
        source = f'import base64\nexec(base64.b64decode("{b64(source)}"))\n'
    source = "# three exec layers\n" + source
    result = scan_source(tmp_path, source)
    assert {f.decoded_depth for f in findings(result, "PV601")} == {1, 2, 3}
    assert all(f.line == 3 for f in findings(result, "PV601")), show(result)
    f = one(result, "PV101", 3)
    assert f.decoded_depth == 3
    assert CALL in f.evidence


def test_encoded_literal_without_exec_is_decoded_at_its_line(tmp_path: Path) -> None:
    code = CODE + "\n" + "\n".join(f"print({i * 7919 % 1000})" for i in range(40))
    blob = b64(zlib.compress(code.encode()))
    assert len(blob) >= 120
    source = f'import sys\n\nDATA = "{blob}"\n'
    result = scan_source(tmp_path, source)
    f = one(result, "PV601", 3)
    assert f.decoded_depth == 1 and CODE in f.evidence
    assert one(result, "PV101", 3).decoded_depth == 1


# --------------------------------------------------------------------------------------------
# Limits of the fold engine


def test_decompression_bomb_is_not_expanded(tmp_path: Path) -> None:
    bomb = b64(zlib.compress(bytes(50 * 1024 * 1024), 9))  # 50 MiB of zeros, ~70 kB of text
    limits = Limits()
    text = decode_blob(bomb, limits.max_decoded_bytes)  # literal blobs are cut at the limit
    assert text is None or len(text) <= limits.max_decoded_bytes
    source = f'import base64\nimport zlib\nexec(zlib.decompress(base64.b64decode("{bomb}")))\n'
    result = scan_source(tmp_path, source)
    assert result.stats["decoded_payloads"] == 0
    f = one(result, "PV201", 3)  # still flagged, with the decoders as evidence
    assert f.evidence == "base64.b64decode, zlib.decompress"
    fc = FileContext("setup.py", "setup.py", source, Trigger.INSTALL, limits)
    assert fc.exec_sites and fc.exec_sites[0].payload is None
    assert not fc.children


@pytest.mark.parametrize(("size", "expanded"), [(16 * KiB, True), (128 * KiB, False)])
def test_max_decoded_bytes_bounds_exec_payloads(size: int, expanded: bool,
                                                tmp_path: Path) -> None:
    code = ("print(1)\n" * (size // 9 + 1))[:size]
    packed = b64(zlib.compress(code.encode()))
    source = f'import base64\nimport zlib\nexec(zlib.decompress(base64.b64decode("{packed}")))\n'
    limits = Limits(max_decoded_bytes=64 * KiB)
    fc = FileContext("setup.py", "setup.py", source, Trigger.INSTALL, limits)
    # The exec argument folds only within the limit; the literal itself is also decoded as a
    # blob, cut at the limit. Either way no decoded text is longer than the limit.
    assert fc.exec_sites[0].payload == (code if expanded else None)
    assert fc.children
    assert all(len(c.text) <= limits.max_decoded_bytes for c in fc.walk() if c.depth)
    result = scan_source(tmp_path, source, ScanConfig(limits=limits))
    evidence = one(result, "PV201", 3).evidence  # the payload (clipped) or the decoders
    assert evidence.startswith(code[:300]) if expanded else (
        evidence == "base64.b64decode, zlib.decompress")


def test_blob_decoding_never_exceeds_max_decoded_bytes() -> None:
    blob = b64(zlib.compress(b"print(1)\n" * (100 * KiB)))
    text = decode_blob(blob, 64 * KiB)
    assert text is not None and len(text) <= 64 * KiB


def test_string_multiplication_is_bounded(tmp_path: Path) -> None:
    result = scan_source(tmp_path, 'import sys\nexec("print(1)\\n" * 10**9)\n')
    assert result.stats["decoded_payloads"] == 0


def test_decode_depth_is_bounded(tmp_path: Path) -> None:
    source = CODE
    for _ in range(20):
        source = f'import base64\nexec(base64.b64decode("{b64(source)}"))\n'
    result = scan_source(tmp_path, source)
    depth = Limits().max_decode_depth
    assert max(f.decoded_depth for f in result.findings) == depth
    assert result.stats["decoded_payloads"] == depth
    assert not findings(result, "PV101")  # the code sits below the last layer decoded


NESTED_200 = {
    "decoder-calls": "import base64\nexec(" + "base64.b64decode(" * 200 + '"eA=="' + ")" * 200
                     + ")\n",
    "decoder-calls-199": "import base64\nexec(" + "base64.b64decode(" * 198 + '"eA=="'
                         + ")" * 198 + ")\n",
    "concatenation": "exec(" + " + ".join(['"a"'] * 200) + ")\n",
    "lists": "exec(" + "[" * 198 + "]" * 198 + ")\n",
    "getattr": "import os\n" + "getattr(" * 150 + "os" + ', "x")' * 150 + '("echo 1")\n',
    "import": "__import__(" * 150 + '"os"' + ").x" * 150 + "\n",
    "not": "x = " + "not " * 200 + "1\n",
    "unary": "x = " + "-" * 200 + "1\n",
    "attributes": "import os\nos" + ".a" * 200 + "()\n",
    "call-chain": "import os\nos.system" + "()" * 200 + "\n",
    "reversals": 'exec("a"' + "[::-1]" * 200 + ")\n",
    "chr-generators": "exec(" + "''.join(chr(x) for x in " * 100 + "[120]" + ")" * 100 + ")\n",
    "lambda": "f = " + "lambda: " * 200 + "1\n",
    "long-chain": "exec(" + " + ".join(['"a"'] * 5000) + ")\n",
}


@pytest.mark.parametrize("name", sorted(NESTED_200))
def test_deeply_nested_expressions_do_not_crash(name: str, tmp_path: Path) -> None:
    result = scan_source(tmp_path, NESTED_200[name])
    assert result.verdict.value != "error"


# --------------------------------------------------------------------------------------------
# The fold budget


def _fold_constant(source: str, name: str = "X") -> object:
    fc = FileContext("x.py", "x.py", source, Trigger.RUNTIME, Limits())
    node = fc.constants[name]
    assert isinstance(node, ast.expr)
    return fc.folder.fold(node)


def test_fold_step_budget_stops_long_comprehensions() -> None:
    source = 'import codecs\nX = "".join([codecs.decode(c, "rot13") for c in "a" * 30000])\n'
    assert _fold_constant(source) is None  # 30,000 items x 3 steps > max_steps (20,000)


def test_fold_of_a_small_comprehension_succeeds() -> None:
    source = 'import codecs\nX = "".join([codecs.decode(c, "rot13") for c in "ab" * 100])\n'
    assert _fold_constant(source) == "no" * 100


def test_fold_step_budget_survives_reentrant_name_resolution() -> None:
    # Regression: Folder.fold() reset its step budget on entry, and FileContext.qualname()
    # folds re-entrantly for getattr/__import__ callees, so getattr(codecs, 'decode') in a
    # comprehension reset the budget on every item and max_steps was never reached.
    source = ('import codecs\n'
              'X = "".join([getattr(codecs, "decode")(c, "rot13") for c in "a" * 30000])\n')
    assert _fold_constant(source) is None


def test_hex_and_codecs_helpers_agree() -> None:
    # guards the fixtures above: the encodings really are what the tests claim
    assert binascii.unhexlify(HEX).decode() == CODE
    assert codecs.decode(codecs.encode(CODE, "rot13"), "rot13") == CODE
    assert base64.b64decode(zlib.decompress(base64.b64decode(NESTED))).decode() == CODE
