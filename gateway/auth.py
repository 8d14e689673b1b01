"""Who is calling, and whether to let them in: credentials, sessions, sign-in, role checks, browser safety.

A caller is a :class:`promptops.users.User`, found from

- ``Authorization: Bearer <token>``: a token of the users file (``promptops users add``), or
  ``PROMPTOPS_ADMIN_TOKEN`` (every role, recorded as ``author_name``/``author_email``), or
- the ``promptops_session`` cookie that ``/signin`` sets: a random id (256 bits) mapped in this
  process's memory to the token it was opened with. Nothing about the person is in the cookie, so
  there is nothing to sign or forge; sessions end after ``SESSION_TTL_S`` or when the server
  restarts. The token is checked against the users file on every use, so removing a person
  (``promptops users remove``) ends their sessions at once.

Every write needs a credential and a role, on every bind address (:func:`require`). Reads and
generation need one only with ``read_access = token`` (the default off loopback), which
:class:`Guard` enforces before anything else runs, together with the browser defences: a Host
allow-list (DNS rebinding), an Origin/Referer check on state-changing requests (cross-site request
forgery) and security headers. See docs/security.md.
"""

from __future__ import annotations

import hmac
import html
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import errors
from gateway.errors import Unauthorized
from gateway.settings import GatewaySettings, host_name
from promptops.config.users import ROLES, User, Users
from promptops.errors import Forbidden, PromptOpsError

COOKIE = "promptops_session"
SESSION_TTL_S = 7 * 24 * 3600
MAX_SESSIONS = 10_000
SIGN_IN_FIX = ("send 'Authorization: Bearer <token>' (`promptops users add NAME --email E --role ROLE` prints one) "
               "or sign in with the link `promptops serve` printed")


class ForeignHost(PromptOpsError):
    """The Host header names a site this gateway does not serve (DNS rebinding): 400."""


class CrossOrigin(Forbidden):
    """A state-changing request from another site, or a cookie-carrying one that does not say where from: 403."""


class Sessions:
    """Browser sessions: random id -> (token, expiry), in memory, bounded (the oldest go first)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, limit: int = MAX_SESSIONS) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._lock = threading.Lock()  # the UI's handlers run in worker threads
        self._open: dict[str, tuple[str, float]] = {}

    def open(self, token: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._open) >= self.limit:
                self._open.pop(next(iter(self._open)))
            self._open[sid] = (token, time.monotonic() + self.ttl_s)
        return sid

    def token(self, sid: str) -> str | None:
        """The token a live session was opened with (None: unknown or expired)."""
        entry = self._open.get(sid)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            self.close(sid)
            return None
        return entry[0]

    def close(self, sid: str) -> None:
        with self._lock:
            self._open.pop(sid, None)


def session_id(cookie_header: str | bytes | None) -> str | None:
    """The `promptops_session` value in a Cookie header."""
    if not cookie_header:
        return None
    text = cookie_header.decode("latin-1") if isinstance(cookie_header, bytes) else cookie_header
    for part in text.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE and value:
            return value.strip('"')
    return None


def bearer(authorization: str | bytes | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header ("" for another scheme)."""
    if not authorization:
        return None
    text = authorization.decode("latin-1") if isinstance(authorization, bytes) else authorization
    scheme, _, token = text.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Auth:
    """The gateway's view of its users: tokens (users file + admin token) and browser sessions."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.users = Users(settings.users_file)
        self.sessions = Sessions()
        self._admin = settings.admin_token.encode() if settings.admin_token else None
        self._admin_user = User(settings.author_name, settings.author_email, frozenset(ROLES))

    def from_token(self, token: str | None) -> User | None:
        """The person a token belongs to (None: unknown)."""
        if not token:
            return None
        if self._admin is not None and hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._admin):
            return self._admin_user
        return self.users.authenticate(token)

    def caller(self, authorization: str | bytes | None, cookie: str | bytes | None) -> User | None:
        """The person behind a request's headers: the Bearer token wins over the session cookie."""
        token = bearer(authorization)
        if token is not None:
            return self.from_token(token)
        sid = session_id(cookie)
        return self.from_token(self.sessions.token(sid)) if sid else None

    def caller_of(self, request: Request) -> User | None:
        """The person behind `request` (resolved once: the Guard may have done it already)."""
        if "promptops.user" in request.scope:
            return request.scope["promptops.user"]
        user = self.caller(request.headers.get("authorization"), request.headers.get("cookie"))
        request.scope["promptops.user"] = user
        return user

    def unauthorized(self, action: str, presented: bool) -> Unauthorized:
        if presented:
            return Unauthorized("the credential is not valid: an unknown or removed token, or a session that ended",
                                fix="sign in again with the link `promptops serve` printed, or ask for a new token "
                                    "(`promptops users add NAME --email E --role ROLE`)")
        return Unauthorized(f"signing in is needed to {action}", fix=SIGN_IN_FIX)


def presented(request: Request) -> bool:
    """True when the request carries a credential of any kind (valid or not)."""
    return "authorization" in request.headers or session_id(request.headers.get("cookie")) is not None


def require(settings: GatewaySettings, auth: Auth, request: Request, role: str, action: str) -> User:
    """The caller, when they hold `role`: Forbidden on a read-only clone, Unauthorized (401) without a
    valid credential, Forbidden (403) without the role. Shared by the API routes."""
    read_only(settings)
    user = auth.caller_of(request)
    if user is None:
        raise auth.unauthorized(action, presented(request))
    user.require(role, action)
    return user


def read_only(settings: GatewaySettings) -> None:
    """Forbidden when the gateway serves a read-only clone (nothing to sign in for: it never writes)."""
    if settings.read_only:
        raise Forbidden("this gateway serves a read-only clone of the prompt repository",
                        fix="save, approve and move labels in the source repository; the gateway fetches it")


def ui_caller(auth: Auth, request: Any) -> User | None:
    """The person signed in to the browser behind a Gradio event (`gr.Request`), from its session cookie."""
    raw = getattr(request, "request", None) if request is not None else None
    if raw is not None:
        return auth.caller(None, raw.headers.get("cookie"))
    cookies = getattr(request, "kwargs", {}).get("cookies") or {}
    sid = cookies.get(COOKIE) if isinstance(cookies, dict) else None
    return auth.from_token(auth.sessions.token(sid)) if sid else None


# -- sign-in ------------------------------------------------------------------------------------------

router = APIRouter(tags=["auth"], include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>promptops: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}}
input{{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}}
button{{margin-top:.8rem;padding:.5rem 1.2rem;font:inherit}}
.note{{color:#a33}}</style></head>
<body><h1>promptops</h1>{note}
<p>Open the sign-in link that <code>promptops serve</code> printed, or paste a token
(<code>promptops users add NAME --email E --role ROLE</code> prints one).</p>
<form method="post" action="/signin"><label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="off" value="{token}" autofocus>
<button type="submit">Sign in</button></form></body></html>
"""


def sign_in_page(note: str = "", token: str = "", status: int = 200) -> HTMLResponse:
    """The sign-in form (also what a browser gets at `/` when reads need a credential)."""
    body = PAGE.format(note=f'<p class="note">{html.escape(note)}</p>' if note else "", token=html.escape(token))
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _signed_in(request: Request, auth: Auth, token: str) -> Response:
    if auth.from_token(token) is None:
        return sign_in_page("That token is not valid: ask for a new one, or use the newest link "
                            "`promptops serve` printed.", status=401)
    sid = auth.sessions.open(token)
    response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
    secure = "; Secure" if request.url.scheme == "https" else ""
    response.headers.append("set-cookie", f"{COOKIE}={sid}; Path=/; Max-Age={SESSION_TTL_S}; HttpOnly; "
                                          f"SameSite=Strict{secure}")
    return response


@router.get("/signin")
def get_signin(request: Request, token: str | None = None) -> Response:
    """The sign-in link: a valid `?token=` opens a session (cookie) and redirects to `/`, so the
    token leaves the address bar. A link followed from another site (another port of this host
    included) only pre-fills the form, whose POST the Origin check then guards: nobody can sign a
    browser in to someone else's account behind the person's back (login CSRF)."""
    if not token:
        return sign_in_page()
    if request.headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):  # another site or port
        return sign_in_page("Confirm: sign in with the token of the link you followed?", token=token)
    return _signed_in(request, request.app.state.auth, token)


@router.post("/signin")
async def post_signin(request: Request) -> Response:
    """The sign-in form (`token=...`, form-encoded)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    return _signed_in(request, request.app.state.auth, (form.get("token") or [""])[0].strip())


@router.post("/signout")
def post_signout(request: Request) -> Response:
    """End this browser's session and drop its cookie."""
    sid = session_id(request.headers.get("cookie"))
    if sid:
        request.app.state.auth.sessions.close(sid)
    response = RedirectResponse("/", status_code=303)
    response.headers.append("set-cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
    return response


# -- the guard: every request, before routing ---------------------------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable without a credential when reads need one: probes, signing in, and the webhook (it signs its body).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/signin", "/signout", "/v1/store/refresh"})
# Gradio 6 needs inline scripts and styles (its config is an inline script), data:/blob: images and fonts.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; connect-src 'self'; "
       "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's /docs and /redoc load Swagger UI / ReDoc from jsDelivr and a favicon from fastapi.tiangolo.com.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
            "font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; object-src 'none'; "
            "base-uri 'self'; frame-ancestors 'none'")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
           (b"x-frame-options", b"DENY")]
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_CSP, _DOCS_CSP = CSP.encode(), DOCS_CSP.encode()


def _origin_of(url: bytes) -> bytes:
    """`http://host:7070/path?q` -> `http://host:7070` (lower case)."""
    scheme, sep, rest = url.partition(b"://")
    if not sep:
        return b""
    for stop in (b"/", b"?", b"#"):
        rest = rest.partition(stop)[0]
    return scheme.lower() + b"://" + rest.lower()


UPSTREAM = "promptops.upstream_s"  # scope keys a route sets: time spent waiting on Triton, time to first token
TTFT = "promptops.ttft_s"


def server_timing(scope: Scope, elapsed_s: float) -> bytes:
    """The standard `Server-Timing` value: `gateway;dur=` the gateway's own time up to the response start
    (the wait on Triton taken out), and `ttft;dur=` the model's time to first token where one was waited for."""
    upstream, ttft = scope.get(UPSTREAM, 0.0), scope.get(TTFT)
    value = b"gateway;dur=%.3f" % ((elapsed_s - upstream) * 1000)
    return value + b", ttft;dur=%.3f" % (ttft * 1000) if ttft is not None else value


class Guard:
    """Plain ASGI middleware (the hot path pays one pass over the request headers):

    1. a Host header outside `allowed_hosts` -> 400 (a DNS-rebinding page is another site that
       resolves to this machine: its requests name that site in Host);
    2. POST/PUT/PATCH/DELETE (Gradio's queue included) and WebSocket handshakes: a present Origin
       (else Referer) must be this gateway's own scheme://host or a trusted origin -> else 403;
       a request whose credential is the session cookie and says neither is refused too; Bearer
       clients without Origin (curl, SDKs) pass — a browser cannot attach that header cross-site;
    3. with `read_access = token`, no valid credential -> 401 (at `/` the sign-in page);
    4. security headers on every response: nosniff, Referrer-Policy, X-Frame-Options, a CSP.
    """

    def __init__(self, app: ASGIApp, settings: GatewaySettings, auth: Auth,
                 redact: errors.Redact | None = None) -> None:
        self.app = app
        self.auth = auth
        self.hosts = settings.host_allow_list
        self.trusted = {o.encode() for o in settings.trusted_origin_set}
        self.reads_closed = settings.reads_need_credential
        self.redact = redact
        self._good_hosts: set[bytes] = set()  # Host values already allowed (bounded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return await self.app(scope, receive, send)
        host = origin = referer = cookie = authorization = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
            elif key == b"origin":
                origin = value
            elif key == b"referer":
                referer = value
            elif key == b"cookie":
                cookie = value
            elif key == b"authorization":
                authorization = value
        path = scope["path"]
        started = time.perf_counter()

        async def secured(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"server-timing", server_timing(scope, time.perf_counter() - started)))
                headers += HEADERS
                headers.append((b"content-security-policy", _DOCS_CSP if path in DOCS_PATHS else _CSP))
                message["headers"] = headers
            await send(message)

        try:
            refusal = self._check(scope, kind, host, origin, referer, cookie, authorization)
        except PromptOpsError as exc:  # a damaged users file: say so instead of a bare 500
            refusal = exc
        if refusal is None:
            return await self.app(scope, receive, secured)
        if kind == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if isinstance(refusal, Unauthorized) and path == "/" and scope["method"] == "GET":
            response: Response = sign_in_page(status=401)
        else:
            response = errors.error_response(refusal, redact=self.redact)
        await response(scope, receive, secured)

    def _check(self, scope: Scope, kind: str, host: bytes | None, origin: bytes | None, referer: bytes | None,
               cookie: bytes | None, authorization: bytes | None) -> PromptOpsError | None:
        if self.hosts is not None and (host is None or host not in self._good_hosts):
            name = host_name(host.decode("latin-1")) if host else ""
            if name not in self.hosts:
                return ForeignHost(f"this gateway does not answer for the host {name or '(none)'!r}",
                                   fix="open it as http://127.0.0.1:PORT, or add the name to PROMPTOPS_ALLOWED_HOSTS")
            if len(self._good_hosts) < 64:
                self._good_hosts.add(host)  # type: ignore[arg-type]
        if kind == "websocket" or scope["method"] not in SAFE_METHODS:
            refusal = self._check_origin(scope, host, origin, referer, cookie, authorization)
            if refusal is not None:
                return refusal
        if self.reads_closed and scope["path"] not in PUBLIC_PATHS and scope.get("method") != "OPTIONS":
            user = self.auth.caller(authorization, cookie)
            if user is None:
                return self.auth.unauthorized("read or generate on this gateway",
                                              authorization is not None or session_id(cookie) is not None)
            scope["promptops.user"] = user
        return None

    def _check_origin(self, scope: Scope, host: bytes | None, origin: bytes | None, referer: bytes | None,
                      cookie: bytes | None, authorization: bytes | None) -> CrossOrigin | None:
        claimed = origin.lower() if origin is not None else _origin_of(referer) if referer is not None else None
        if claimed is None:
            if authorization is None and session_id(cookie) is not None:
                return CrossOrigin("a request signed in by cookie must say where it comes from (Origin or Referer)",
                                   fix="send it from the gateway's own pages, or use 'Authorization: Bearer <token>'")
            return None
        scheme = scope.get("scheme", "http")
        own = {"ws": "http", "wss": "https"}.get(scheme, scheme).encode() + b"://" + (host or b"").lower()
        if claimed == own or claimed in self.trusted:
            return None
        return CrossOrigin(f"a {scope.get('method', 'WebSocket')} from another site "
                           f"({claimed.decode('latin-1')[:100]}) is refused",
                           fix="send it from the gateway's own pages, or add the origin to PROMPTOPS_TRUSTED_ORIGINS")
