"""The triage pages of ``pkgvet serve``: a queue of flagged releases, a release page with the
verdict, reasons, highlighted findings, decoded payloads and similar releases, and the buttons
that record a reviewer's decision (exported as training labels, see
:mod:`pkgvet.service.labels`).

Package text is hostile. Every value reaches HTML through Jinja2 with autoescape on, code is
highlighted by Pygments (which escapes what it emits), nothing from a package is ever marked
safe, and every page is sent with a strict Content-Security-Policy (no inline script or style,
no third-party origin), ``nosniff`` and ``frame-ancestors 'none'``.

Pages are open to read, like the API's reads. Writes need a session: the login form takes an
API token (checked against the store's hashed tokens) and sets a signed ``HttpOnly``,
``SameSite=Strict`` cookie (``Secure`` over HTTPS) that names the token, never holds it, and
ends when the token is revoked. Every form that writes carries a CSRF token bound to the
session (an HMAC of the session's nonce), and a cross-origin ``Origin`` header is refused as
well. The labels export needs a session or ``Authorization: Bearer TOKEN`` (for scripts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer

from pkgvet.service import db as sdb
from pkgvet.service.labels import label_rows, render_labels

router = APIRouter()

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
COOKIE = "pkgvet_session"
SESSION_SECONDS = 12 * 3600
MAX_FORM_BYTES = 64 * 1024
MAX_NOTE = 4000
QUEUE_PAGE = 50
VERDICT_FILTERS = ("flagged", "malicious", "suspicious", "clean", "error", "any")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


# -- plumbing ------------------------------------------------------------------------------


def _store(request: Request) -> sdb.ServiceStore:
    store: sdb.ServiceStore = request.app.state.store
    return store


def _secret(request: Request) -> bytes:
    """The key that signs session cookies: the settings' ``session_secret`` when set, else a
    random key made once per application (sessions then end when the server restarts)."""
    state = request.app.state
    key: bytes | None = getattr(state, "ui_session_key", None)
    if key is None:
        settings = getattr(state, "settings", None)
        configured = getattr(settings, "session_secret", None)
        key = (
            hashlib.sha256(b"pkgvet-ui-session\0" + str(configured).encode()).digest()
            if configured
            else secrets.token_bytes(32)
        )
        state.ui_session_key = key
    return key


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["score"] = lambda v: "–" if v is None else f"{float(v):.2f}"
    return env


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "–"


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in reviewer: the API token they logged in with, and the form token."""

    token_id: int
    actor: str
    expires: int
    csrf: str


def _sign(key: bytes, payload: bytes) -> str:
    mac = hmac.new(key, payload, hashlib.sha256).digest()
    return _b64(payload) + "." + _b64(mac)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _csrf_for(key: bytes, nonce: str) -> str:
    return _b64(hmac.new(key, b"csrf\0" + nonce.encode(), hashlib.sha256).digest())


def _session(request: Request) -> Session | None:
    """The request's valid session: signature, expiry, and a token that is still active."""
    raw = request.cookies.get(COOKIE)
    if not raw or "." not in raw or len(raw) > 1024:
        return None
    key = _secret(request)
    body, _, mac = raw.partition(".")
    try:
        payload = _unb64(body)
        given = _unb64(mac)
    except ValueError:
        return None
    if not hmac.compare_digest(hmac.new(key, payload, hashlib.sha256).digest(), given):
        return None
    try:
        doc = json.loads(payload)
        tid, nonce, expires = int(doc["t"]), str(doc["n"]), int(doc["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires < time.time():
        return None
    with _store(request).engine.connect() as conn:
        row = conn.execute(
            sa.select(sdb.api_tokens.c.name, sdb.api_tokens.c.revoked_at).where(
                sdb.api_tokens.c.id == tid
            )
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    return Session(tid, f"token:{row.name}", expires, _csrf_for(key, nonce))


def _token_record(request: Request, token: str) -> sdb.Token | None:
    token = token.strip()
    if not token or len(token) > 512:
        return None
    record = _store(request).token_by_hash(hashlib.sha256(token.encode()).hexdigest())
    return record if record is not None and record.active else None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str] | None:
    """A urlencoded form body (the only kind these pages post), capped in size."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[-1] for k, v in parsed.items()}


def _safe_next(target: str | None) -> str:
    """Only a local path under /ui/ (never another origin or scheme)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


# -- login ---------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/login", include_in_schema=False)
def login_page(request: Request) -> HTMLResponse:
    target = _safe_next(request.query_params.get("next"))
    return _render("login.html", next=target, error=None, session=None)


@router.post("/ui/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await _form(request)
    if form is None or not _same_origin(request):
        return _render("login.html", 400, next="/ui/", error="Bad request.", session=None)
    target = _safe_next(form.get("next"))
    record = _token_record(request, form.get("token", ""))
    if record is None:
        return _render(
            "login.html", 403, next=target, error="Unknown or revoked token.", session=None
        )
    payload = json.dumps(
        {"t": record.id, "n": secrets.token_urlsafe(16), "e": int(time.time()) + SESSION_SECONDS},
        separators=(",", ":"),
    ).encode()
    response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        COOKIE,
        _sign(_secret(request), payload),
        max_age=SESSION_SECONDS,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/ui/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    session = _session(request)
    form = await _form(request)
    if session is not None and form is not None and _csrf_ok(session, form):
        response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/")
        return response
    return _render("error.html", 403, message="Bad or missing CSRF token.", session=session)


def _csrf_ok(session: Session, form: dict[str, str]) -> bool:
    return hmac.compare_digest(form.get("csrf", ""), session.csrf)


# -- the queue -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    name: str
    version: str | None
    filename: str
    first_seen: datetime
    verdict: str | None
    score: float | None
    categories: list[str]
    decision: str | None


@dataclass(frozen=True, slots=True)
class QueueFilter:
    verdict: str = "flagged"
    category: str = ""
    min_score: float | None = None
    since: date | None = None
    undecided: bool = False
    page: int = 1

    def query(self, page: int) -> str:
        """The query string of this filter on another page."""
        values = {
            "verdict": self.verdict,
            "category": self.category,
            "min_score": "" if self.min_score is None else f"{self.min_score:g}",
            "since": self.since.isoformat() if self.since else "",
            "undecided": "1" if self.undecided else "",
            "page": str(page),
        }
        return urlencode({k: v for k, v in values.items() if v})


def _parse_filter(params: dict[str, str]) -> tuple[QueueFilter, list[str]]:
    errors: list[str] = []
    verdict = params.get("verdict", "flagged") or "flagged"
    if verdict not in VERDICT_FILTERS:
        errors.append("unknown verdict filter")
        verdict = "flagged"
    category = params.get("category", "")
    if category and category not in _categories():
        errors.append("unknown category")
        category = ""
    min_score: float | None = None
    if params.get("min_score"):
        try:
            min_score = max(0.0, min(1.0, float(params["min_score"])))
        except ValueError:
            errors.append("minimum score must be a number")
    since: date | None = None
    if params.get("since"):
        try:
            since = date.fromisoformat(params["since"])
        except ValueError:
            errors.append("date must be YYYY-MM-DD")
    try:
        page = max(1, min(10_000, int(params.get("page") or 1)))
    except ValueError:
        page = 1
    undecided = params.get("undecided", "") not in ("", "0")
    return QueueFilter(verdict, category, min_score, since, undecided, page), errors


@lru_cache(maxsize=1)
def _categories() -> tuple[str, ...]:
    from pkgvet.models import Category

    return tuple(c.value for c in Category)


def queue(
    store: sdb.ServiceStore, f: QueueFilter, limit: int = QUEUE_PAGE
) -> tuple[int, list[QueueItem]]:
    """Releases matching the filter, highest score first, with each one's latest decision.
    ``flagged`` means a malicious or suspicious latest scan."""
    r, s, d = sdb.releases, sdb.scans, sdb.decisions
    latest = (
        sa.select(d.c.release_id, sa.func.max(d.c.id).label("did"))
        .group_by(d.c.release_id)
        .subquery()
    )
    ld = d.alias("ld")
    j = (
        r.outerjoin(s, r.c.latest_scan_id == s.c.id)
        .outerjoin(latest, latest.c.release_id == r.c.id)
        .outerjoin(ld, ld.c.id == latest.c.did)
    )
    conds: list[Any] = []
    if f.verdict == "flagged":
        conds.append(s.c.verdict.in_(("malicious", "suspicious")))
    elif f.verdict != "any":
        conds.append(s.c.verdict == f.verdict)
    if f.category:
        conds.append(s.c.categories.like(f'%"{f.category}"%'))
    if f.min_score is not None:
        conds.append(s.c.score >= f.min_score)
    if f.since is not None:
        conds.append(r.c.first_seen >= datetime.combine(f.since, dtime(), tzinfo=UTC))
    if f.undecided:
        conds.append(latest.c.did.is_(None))
    with store.engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(j).where(*conds)
        total = int(conn.execute(count).scalar_one())
        rows = conn.execute(
            sa.select(
                r.c.id,
                r.c.name,
                r.c.version,
                r.c.filename,
                r.c.first_seen,
                s.c.verdict,
                s.c.score,
                s.c.categories,
                ld.c.label,
            )
            .select_from(j)
            .where(*conds)
            .order_by(sa.func.coalesce(s.c.score, -1.0).desc(), r.c.id.desc())
            .limit(limit)
            .offset((f.page - 1) * limit)
        ).all()
    items = [
        QueueItem(
            int(row.id),
            row.name,
            row.version,
            row.filename,
            _aware(row.first_seen),
            row.verdict,
            row.score,
            _json_list(row.categories),
            row.label,
        )
        for row in rows
    ]
    return total, items


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


@router.get("/ui/", include_in_schema=False)
def queue_page(request: Request) -> Response:
    session = _session(request)
    flt, errors = _parse_filter(dict(request.query_params))
    total, items = queue(_store(request), flt)
    pages = max(1, -(-total // QUEUE_PAGE))
    return _render(
        "queue.html",
        session=session,
        f=flt,
        errors=errors,
        items=items,
        total=total,
        pages=pages,
        verdicts=VERDICT_FILTERS,
        categories=_categories(),
    )


# -- a release -----------------------------------------------------------------------------


_FORMATTER = HtmlFormatter(nowrap=True)
_DECODING_CATEGORIES = ("obfuscation", "code_execution")


def code(text: str, *, python: bool = True) -> Markup:
    """``text`` highlighted as HTML. Pygments escapes every token it emits; nothing of
    ``text`` is ever passed through raw."""
    text = text[:20_000]
    lexer = PythonLexer() if python else TextLexer()
    return Markup(highlight(text, lexer, _FORMATTER).rstrip("\n"))


@dataclass(frozen=True, slots=True)
class FindingView:
    row: sdb.FindingRow
    snippet_html: Markup
    evidence_html: Markup | None
    is_payload: bool


def _finding_view(f: sdb.FindingRow) -> FindingView:
    payload = bool(f.evidence) and (f.decoded_depth > 0 or f.category in _DECODING_CATEGORIES)
    evidence = code(f.evidence, python=payload) if f.evidence else None
    return FindingView(f, code(f.snippet or ""), evidence, payload)


@router.get("/ui/releases/{release_id}", include_in_schema=False)
def release_page(request: Request, release_id: int, decided: str = "") -> Response:
    session = _session(request)
    store = _store(request)
    view = store.get_release(release_id)
    if view is None:
        return _render("error.html", 404, message="No such release.", session=session)
    scan = view.scan
    found = [_finding_view(f) for f in (scan.findings or [])] if scan else []
    payloads: list[FindingView] = []
    shown: set[str] = set()
    for fv in found:
        if fv.is_payload and fv.row.evidence not in shown:
            shown.add(fv.row.evidence)
            payloads.append(fv)
    result = (scan.result or {}).get("results", [{}])[0] if scan and scan.result else {}
    return _render(
        "release.html",
        session=session,
        release=view.release,
        scan=scan,
        result=result,
        reasons=[str(x) for x in result.get("reasons") or []],
        package=result.get("package") or {},
        findings=found,
        payloads=payloads,
        similar=store.similar_releases(release_id, limit=20),
        decisions=list(reversed(store.decisions_of(release_id))),
        history=[h for h in store.package_history(view.release.name) if h.release.id != release_id][
            :20
        ],
        decided=decided in ("malicious", "false_positive"),
        max_note=MAX_NOTE,
    )


@router.post("/ui/releases/{release_id}/decision", include_in_schema=False)
async def decide(request: Request, release_id: int) -> Response:
    session = _session(request)
    if session is None:
        return _render("error.html", 401, message="Log in to record decisions.", session=None)
    form = await _form(request)
    if form is None or not _same_origin(request) or not _csrf_ok(session, form):
        return _render("error.html", 403, message="Bad or missing CSRF token.", session=session)
    label = form.get("label", "")
    if label not in sdb.DECISION_LABELS:
        return _render("error.html", 400, message="Unknown decision.", session=session)
    note = form.get("note", "").strip()[:MAX_NOTE]
    try:
        d = _store(request).record_decision(release_id, label, note, session.actor)
    except KeyError:
        return _render("error.html", 404, message="No such release.", session=session)
    return RedirectResponse(
        f"/ui/releases/{release_id}?decided={d.label}", status_code=303, headers=SECURITY_HEADERS
    )


# -- labels export ---------------------------------------------------------------------------


@router.get("/ui/labels.tsv", include_in_schema=False)
def export_labels(request: Request) -> Response:
    """The labels TSV (:mod:`pkgvet.service.labels`); a session or a bearer token."""
    authorized = _session(request) is not None
    auth = request.headers.get("authorization", "")
    if not authorized and auth.lower().startswith("bearer "):
        authorized = _token_record(request, auth[7:]) is not None
    if not authorized:
        return PlainTextResponse("authentication required\n", 401, headers=SECURITY_HEADERS)
    text = render_labels(label_rows(_store(request)))
    return Response(
        text,
        media_type="text/tab-separated-values; charset=utf-8",
        headers={**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="labels.tsv"'},
    )


# -- static files --------------------------------------------------------------------------


@router.get("/ui/static/pygments.css", include_in_schema=False)
def pygments_css() -> Response:
    return Response(
        _FORMATTER.get_style_defs(".hl"),
        media_type="text/css; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"},
    )


@router.get("/ui/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    suffix = Path(name).suffix
    path = STATIC / name
    if "/" in name or name.startswith(".") or suffix not in _STATIC_TYPES or not path.is_file():
        return PlainTextResponse("not found\n", 404, headers=SECURITY_HEADERS)
    return Response(
        path.read_bytes(),
        media_type=_STATIC_TYPES[suffix],
        headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"},
    )
