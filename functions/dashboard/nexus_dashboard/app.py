"""Dashboard ASGI app (FastAPI). Locally served by uvicorn; in AWS wrapped by Mangum.

Pages (``pages.py``) and their JSON twins (``api.py``) sit behind one auth dependency; only the
login form, the health check and static assets are open. ``/mcp`` (the prompt library over MCP,
``mcp_prompts.py``, imported on its first request) takes Nexus keys instead of the dashboard's key
or session. Errors come back in the caller's shape: JSON under ``/api/``, an HTML page elsewhere (a
missing session there sends the browser to log in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from nexus import env
from nexus.analysis import launch
from nexus.analysis.launch import Launcher
from nexus.secret_store import SecretStore

from nexus_dashboard import api, db, errors, oidc, openapi, pages, people, signin, throttle
from nexus_dashboard.auth import require_auth
from nexus_dashboard.mcp_mount import PATH as MCP_PATH
from nexus_dashboard.mcp_mount import LazyMcp
from nexus_dashboard.security import SecurityHeaders
from nexus_dashboard.settings import DashboardSettings

HERE = Path(__file__).parent


def create_app(
    conninfo: str | Callable[[], str],
    dashboard_key: str,
    secret_store: SecretStore | None = None,
    throttle_policy: throttle.Policy = throttle.DEFAULT,
    launcher: Launcher | None = None,
    require_keys: bool = True,
    access_refresh_s: float = 1.0,
    oidc_config: oidc.Config | None = None,
) -> FastAPI:
    """``require_keys``: whether /mcp needs a Nexus key (False only for the local stack on localhost);
    ``oidc_config``: sign-in through an OpenID Connect provider as well (``oidc.py``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = db.Pool(conninfo, max_size=8)
        yield
        app.state.pool.close()

    app = FastAPI(
        title="Nexus dashboard API",
        version="0.1.0",
        description="Everything the dashboard shows, as JSON. Send `Authorization: Bearer <key>`.",
        lifespan=lifespan,
        # The interactive docs load scripts from a CDN (blocked by the CSP) and would be open to all;
        # the OpenAPI document is served behind auth instead, with a plain reference page.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    app.state.dashboard_key = dashboard_key
    app.state.secret_store = secret_store
    app.state.throttle = throttle_policy
    app.state.oidc = oidc_config
    app.state.launcher = launcher or launch.from_env()

    errors.install(app)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    auth = [Depends(require_auth)]
    app.include_router(api.router, dependencies=auth)
    app.include_router(people.api, dependencies=auth)
    app.include_router(pages.router, dependencies=auth)
    app.include_router(people.pages, dependencies=auth)
    app.include_router(signin.router)
    # Its own auth (Nexus keys), no CSRF (no cookies are read there), every method the transport takes.
    app.add_route(
        MCP_PATH,
        LazyMcp(app, require_keys, access_refresh_s),  # type: ignore[arg-type]
        include_in_schema=False,
    )

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=auth)
    def openapi_json() -> dict[str, Any]:
        return app.openapi()

    @app.get("/health", include_in_schema=False)
    def health(request: Request) -> Response:
        """Open to all (load balancers, `nexus dev`): 200 only if the database answers."""
        try:
            with request.app.state.pool.connection() as conn:
                conn.execute("SELECT 1")
        except db.UNAVAILABLE as exc:
            reason = db.describe(exc)
            body = {
                "status": "unavailable",
                "database": reason,
                "error": {"status": 503, "message": f"database unavailable: {reason}"},
            }
            return JSONResponse(body, 503, {"Retry-After": str(db.RETRY_AFTER_S)})
        return JSONResponse({"status": "ok", "database": "ok"})

    return app


def create_from_env() -> FastAPI:
    """uvicorn factory: DATABASE_URL and NEXUS_DASHBOARD_KEY from the environment (required); keys
    are managed in the local stack's secret store under NEXUS_DATA_DIR (default .nexus/)."""
    from nexus.secret_store import LocalSecretStore

    settings = DashboardSettings()
    if not settings.database_url or not settings.dashboard_key:
        missing = [
            name
            for name, value in (
                (env.DATABASE_URL, settings.database_url),
                (env.DASHBOARD_KEY, settings.dashboard_key),
            )
            if not value
        ]
        raise SystemExit(f"dashboard: set {' and '.join(missing)}")
    store = LocalSecretStore.in_data_dir(settings.data_dir)
    return create_app(
        settings.database_url,
        settings.dashboard_key,
        store,
        require_keys=settings.require_keys,
        oidc_config=settings.oidc_config(settings.oidc_client_secret),
    )
