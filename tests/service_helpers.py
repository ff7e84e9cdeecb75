"""Helpers of the ``pkgvet serve`` tests and load test: a real server (``python -m pkgvet
serve``, uvicorn) on loopback in a subprocess, a throwaway PostgreSQL cluster built from
Debian's binaries, and small inert packages.

Every package built here is inert: ``setup.py`` calls ``os.system`` on an ``echo``, decodes a
base64 payload that is ``print(1)``, and names hosts under ``example.invalid``; nothing is
ever installed or run (the service reads archives as bytes).
"""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conftest import make_tar

PAYLOAD = base64.b64encode(b"print(1)").decode()
SAFETY_TIMEOUT = 180.0  # seconds: only so that a broken server cannot hang the suite


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def package(name: str, version: str, files: dict[str, str], *, salt: str = "") -> bytes:
    """A deterministic sdist (fixed member times, no gzip time stamp): the same arguments give
    the same bytes, so idempotency can be checked by resubmitting."""
    import gzip
    import io

    root = f"{name}-{version}/"
    members = {
        root + "PKG-INFO": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test {salt}\n"
        ).encode(),
    }
    members.update({root + p: t.encode() for p, t in files.items()})
    tar = make_tar(members, mode="w")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(tar)
    return buf.getvalue()


def dropper(name: str = "zzdropper", version: str = "1.0", salt: str = "") -> bytes:
    """An inert package shaped like a dropper: an install-time ``os.system`` and an ``exec``
    of a base64 payload (``print(1)``) in ``setup.py``."""
    setup = (
        "import base64\nimport os\nfrom setuptools import setup\n"
        "os.system('echo pkgvet-test-fixture http://example.invalid/x')\n"
        f"exec(base64.b64decode('{PAYLOAD}'))\n"
        f"setup(name='{name}', version='{version}')  # {salt}\n"
    )
    return package(name, version, {"setup.py": setup}, salt=salt)


def clean(name: str = "zzclean", version: str = "1.0", salt: str = "") -> bytes:
    """An inert benign package: a module with one function."""
    files = {
        "setup.py": f"from setuptools import setup\nsetup(name='{name}', version='{version}')\n",
        f"{name}/__init__.py": f"def hello(who):\n    return 'hello ' + who  # {salt}\n",
    }
    return package(name, version, files, salt=salt)


@dataclass
class Server:
    """``pkgvet serve`` in a subprocess on 127.0.0.1."""

    db: str
    workdir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.port = free_port()
        self.log = self.workdir / f"server-{self.port}.log"
        env = {**os.environ, "PKGVET_CACHE_DIR": str(self.workdir / "cache"), **self.env}
        cmd = [
            sys.executable,
            "-m",
            "pkgvet",
            "serve",
            "--db",
            self.db,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--blob-dir",
            str(self.workdir / "blobs"),
            "--log-level",
            "warning",
            *self.args,
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + SAFETY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/v1/health", timeout=5).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not start")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:  # the whole group: uvicorn and its workers, as a crash would
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def wait_scan(client: httpx.Client, scan_id: int, timeout: float = SAFETY_TIMEOUT) -> Any:
    """Poll a scan until it is done or an error (the timeout is a safety net only)."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/v1/scans/{scan_id}")
        r.raise_for_status()
        doc = r.json()
        if doc["status"] in ("done", "error"):
            return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"scan {scan_id} still {doc['status']}")
        time.sleep(0.1)


def wait_status(
    client: httpx.Client, scan_id: int, status: str, timeout: float = SAFETY_TIMEOUT
) -> None:
    """Poll a scan until it has ``status`` (the timeout is a safety net only)."""
    deadline = time.monotonic() + timeout
    while client.get(f"/api/v1/scans/{scan_id}").json()["status"] != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"scan {scan_id} never {status}")
        time.sleep(0.05)


def upload(
    client: httpx.Client, filename: str, data: bytes, *, force: bool = False
) -> httpx.Response:
    params = {"force": "true"} if force else {}
    return client.post("/api/v1/scans/upload", files={"file": (filename, data)}, params=params)


def make_token(db_url: str, name: str) -> str:
    from pkgvet.service.auth import create_token
    from pkgvet.service.db import ServiceStore

    with ServiceStore(db_url) as store:
        return create_token(store, name)


# -- PostgreSQL ----------------------------------------------------------------------------


def postgres_binaries() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` directory with initdb and pg_ctl, if installed."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    for initdb in reversed(found):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").is_file():
            return bindir
    return None


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off); yields the admin
    URL. As root, the cluster belongs to the ``postgres`` system user (initdb refuses root)."""
    bindir = postgres_binaries()
    if bindir is None:
        raise FileNotFoundError("no /usr/lib/postgresql/*/bin/initdb")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="pkgvet-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = free_port()
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
             "-t", "60", "-l", str(root / "log"), "start"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(admin_url: str) -> str:
    """A new empty database on the server of ``admin_url``; its URL."""
    import sqlalchemy as sa

    name = "pkgvet_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name
