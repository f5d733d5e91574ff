"""The dashboard under ``/ui``: login / logout, the pages of ``ui_pages.PAGES`` and the built bundle.

``mount_ui(app)`` mounts a small FastAPI app of its own at ``/ui`` (outside the API's schema and the API's
route walk): server-rendered page shells (Jinja2 templates in ``ui_templates/``) whose scripts, from the
esbuild bundle in ``web_dist/`` (``make web``), call ``/api/v1`` with the session cookie
(``lungcad.service.ui_session``).  Nothing is fetched from another origin: the Content-Security-Policy
allows this origin only.

A page needs a session (else a redirect to the login, back afterwards) whose role holds the page's actions
(else 403 with the reason); the navigation lists only the pages the role may open.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from lungcad import __version__
from lungcad.service import ui_data, ui_session
from lungcad.service.http_security import arrived_over_tls
from lungcad.service.security import Action, Principal
from lungcad.service.settings import ServiceSettings
from lungcad.service.ui_pages import PAGES, Page, home_for, nav_for

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "ui_templates"
BUNDLE = HERE / "web_dist"  # written by `make web` (web/build.mjs); git-ignored
PREFIX = "/ui"
# blob: for NiiVue's workers and image decoding; 'unsafe-inline' styles: NiiVue sizes its canvas inline
CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self' blob: data:; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def _safe_next(target: str | None) -> str | None:
    """Only a path of this dashboard (no scheme, no host, no ``//``): never an open redirect."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def mount_ui(app: FastAPI, settings: ServiceSettings) -> FastAPI:
    """Mount the dashboard at ``/ui`` on ``app`` (the API app, whose ``state.ctx`` it uses)."""
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="lungcad dashboard")
    env = _env()
    parent = app

    def ctx():  # noqa: ANN202 - the parent's ServiceContext (opened in its lifespan)
        return parent.state.ctx

    def store() -> ui_session.SessionStore:
        return ui_session.store_of(parent.state, ctx().settings)

    def current(request: Request) -> ui_session.UiSession | None:
        with ctx().sessions() as s:
            return store().read(s, request.cookies.get(ui_session.COOKIE))

    def render(template: str, status: int = 200, **values: object) -> HTMLResponse:
        html = env.get_template(template).render(
            version=__version__,
            static=f"{PREFIX}/static",
            bundle_built=(BUNDLE / "app.css").is_file(),
            **values,
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def page_values(session: ui_session.UiSession, page: Page | None) -> dict[str, object]:
        p: Principal = session.principal
        return {
            "page": page,
            "nav": nav_for(p),
            "principal": p,
            "csrf": session.csrf,
            "can": {a.value: p.can(a) for a in Action},
        }

    def login_redirect(request: Request) -> RedirectResponse:
        target = quote(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)

    def set_cookie(response: Response, request: Request, name: str, value: str, path: str, age: int) -> None:
        tls = arrived_over_tls(request.scope, ctx().settings.behind_proxy)
        response.set_cookie(name, value, max_age=age, path=path, httponly=True, samesite="strict", secure=tls)

    @ui.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        return RedirectResponse(home_for(session.principal), status_code=303)

    @ui.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str | None = None) -> Response:
        session = current(request)
        if session is not None:
            return RedirectResponse(_safe_next(next) or home_for(session.principal), status_code=303)
        token = secrets.token_urlsafe(32)
        response = render("login.html", next=_safe_next(next) or "", login_csrf=token, error=None)
        set_cookie(response, request, ui_session.LOGIN_CSRF_COOKIE, token, f"{PREFIX}/login", 3600)
        return response

    @ui.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=8)
        key = str(form.get("api_key", "")).strip()
        target = _safe_next(str(form.get("next", ""))) or ""
        expected = request.cookies.get(ui_session.LOGIN_CSRF_COOKIE, "")
        token = secrets.token_urlsafe(32)

        def refuse(status: int, error: str) -> Response:
            response = render("login.html", status, next=target, login_csrf=token, error=error)
            set_cookie(response, request, ui_session.LOGIN_CSRF_COOKIE, token, f"{PREFIX}/login", 3600)
            return response

        if not expected or not ui_session.csrf_ok(expected, str(form.get(ui_session.CSRF_FIELD, ""))):
            return refuse(403, "The login form expired. Please try again.")
        with ctx().sessions() as s:
            principal = ctx().keys.verify(s, key)
        if principal is None:
            return refuse(401, "This API key is unknown, revoked or expired. Ask an administrator for a key.")
        value, _csrf = store().issue(principal)
        response = RedirectResponse(target or home_for(principal), status_code=303)
        set_cookie(response, request, ui_session.COOKIE, value, "/", ui_session.MAX_AGE_S)
        response.delete_cookie(ui_session.LOGIN_CSRF_COOKIE, path=f"{PREFIX}/login")
        return response

    @ui.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = current(request)
        form = await request.form(max_files=0, max_fields=4)
        if session is not None:
            if not ui_session.csrf_ok(session.csrf, str(form.get(ui_session.CSRF_FIELD, ""))):
                return render(
                    "message.html", 403, title="Refused", message="The logout form lacked its token."
                )
            store().end(session.sid)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(ui_session.COOKIE, path="/")
        return response

    @ui.get("/none", include_in_schema=False)
    def no_pages(request: Request) -> Response:
        session = current(request)
        if session is None:
            return login_redirect(request)
        return render(
            "message.html",
            **page_values(session, None),
            title="No dashboard pages for this role",
            message=f"Role {session.principal.role.value!r} has API access only.",
        )

    def page_route(page: Page):  # noqa: ANN202 - a route handler
        def handler(request: Request) -> Response:
            session = current(request)
            if session is None:
                return login_redirect(request)
            if not page.allowed(session.principal):
                need = ", ".join(sorted(a.value for a in page.actions))
                return render(
                    "message.html",
                    403,
                    **page_values(session, None),
                    title="Not allowed",
                    message=f"Role {session.principal.role.value!r} may not open the {page.title} page "
                    f"(it needs {need}).",
                )
            return render(f"{page.name}.html", **page_values(session, page), params=request.path_params)

        handler.__name__ = f"page_{page.name}"
        return handler

    for page in PAGES:
        ui.add_api_route(page.path, page_route(page), methods=["GET"], include_in_schema=False)
    ui_data.register(ui, parent, current)  # /ui/data/...: JSON the batch, models and operations pages read
    # check_dir=False: without `make web` the pages say the bundle is missing instead of the app failing
    ui.mount("/static", StaticFiles(directory=BUNDLE, check_dir=False), name="static")
    app.mount(PREFIX, ui)
    app.state.ui_sessions = ui_session.SessionStore(settings)  # one per app: its logout denylist is shared
    return ui
