"""The web app: search by photo, the catalogue map, Dope or Nope, and the leaderboard.

``create_app(workspace)`` builds a FastAPI app; ``lookalike serve`` runs it with uvicorn. Pages are
server-rendered HTML with a little plain JS; every asset is served by the app (no CDN). This module holds
the settings, the shared state (``App``, reached by routes through ``Depends(get_state)``), the error
handling and the session middleware; the routes live in ``routers/`` (pages, search, game, board, maps)
and ``taste.py``.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ..errors import (ConfigError, FeatureStoreError, ImageError, ItemNotFoundError, LookalikeError,
                      UnknownNameError)
from ..metrics import Metric
from ..search import Match, SearchEngine, declared_metrics, learned_model
from ..workspace import Workspace
from .leaderboard import LeaderboardCache
from .security import BodyLimit, LookupLog, RateLimiter, Signer, load_secret
from ..votes import VoteError, VoteStore
from .work import PoolFull, WorkPool
from .taste import MINE, TasteJobs
from .taste import router as taste_router

HERE = Path(__file__).parent
SESSION_COOKIE = "lookalike_session"
#: Sent with every response: scripts and styles from the app only (no inline script), never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass
class Settings:
    """What the operator configures (``lookalike serve`` flags)."""

    db_url: str | None = None  # default: sqlite in the workspace
    secret: str | None = None
    systems: list[str] | None = None  # "model/metric"; default every extracted model x metric
    max_upload_bytes: int = 10 * 1024 * 1024
    max_body_bytes: int = 16 * 1024  # every other request body (votes are a few hundred bytes)
    votes_per_second: float = 5.0  # per session (token bucket)
    vote_burst: int = 20
    address_votes_per_minute: float = 60.0  # per client address, whatever its sessions (a fast human swipes 1/s)
    address_vote_burst: int = 60
    pairs_per_second: float = 5.0  # pairs issued, per session and (x4) per address
    pair_burst: int = 30
    proxy_header: str | None = None  # e.g. X-Forwarded-For, only behind a proxy you trust: its last entry
    flag_lookups: bool = True  # votes on items the voter looked up in public search stay out of the leaderboard
    max_bootstrap: int = 500  # leaderboard bootstrap resamples, at most
    secure_cookies: bool = False
    # threads for decoding, models, search: one core is left to the event loop and light work (measured:
    # docs/benchmarks.md, the web app under load)
    workers: int = field(default_factory=lambda: max(1, (os.cpu_count() or 1) - 1))
    queue: int = 8  # requests that may wait for a worker; beyond that, 503 with Retry-After
    light_workers: int = field(default_factory=lambda: min(2, max(1, (os.cpu_count() or 1) - 1)))  # pairs, item
    # searches, thumbnails
    light_queue: int = 64
    api_docs: bool = False  # /docs and /redoc load Swagger UI / ReDoc from a CDN: off unless asked for
    admin_token: str | None = None  # the full vote export (with session ids); default $LOOKALIKE_ADMIN_TOKEN
    # Learning from votes: a share of game pairs shows a lower-ranked match (rank 2..explore_depth), so votes say
    # what else would have pleased; the leaderboard counts top matches only (docs/web.md)
    explore: float = 0.5
    explore_depth: int = 30
    taste_votes: int = 50  # votes a player needs before "learn my taste"
    taste_base: str | None = None  # MODEL/METRIC a personal taste starts from; default the first served system of
    # a model that is neither appearance nor learned from votes
    mine_share: float = 0.5  # of a player's pairs, once their own model is ready


class ErrorOut(BaseModel):
    """Every error: one message that says what was wrong."""

    detail: str


#: The errors any route may answer with, documented once for the whole API (same body for all).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text} for code, text in (
        (400, "bad request"), (403, "not allowed (forged, stolen or foreign token; wrong admin token)"),
        (404, "no such item, model or map"), (409, "not possible in this state (e.g. no features yet)"),
        (410, "the pair expired"), (413, "the body is too large"),
        (422, "invalid input: parameters, image, box"), (429, "too many requests; slow down"),
        (503, "the server is busy (Retry-After)"))}


def parse_system(system: str) -> tuple[str, Metric]:
    model, sep, metric = system.rpartition("/")
    if not sep or not model:
        raise ConfigError(f"a search system is MODEL/METRIC, e.g. pixels/l2; got {system!r}")
    return model, Metric.parse(metric)


class App:
    """State shared by the routes: workspace, search engine, vote store, signers."""

    def __init__(self, workspace: Workspace, settings: Settings):
        if not (0 <= settings.explore <= 1 and 0 <= settings.mine_share <= 1) or settings.explore_depth < 2 \
                or settings.taste_votes < 2:
            raise ConfigError(f"explore and mine_share must lie in [0, 1], explore_depth and taste_votes be at least 2; "
                              f"got {settings.explore}, {settings.mine_share}, {settings.explore_depth}, "
                              f"{settings.taste_votes}")
        if min(settings.workers, settings.light_workers) < 1 or min(settings.queue, settings.light_queue) < 0:
            raise ConfigError(f"workers must be at least 1 and queue at least 0, got {settings.workers} and "
                              f"{settings.queue} (light work: {settings.light_workers} and {settings.light_queue})")
        self.workspace = workspace
        self.settings = settings
        self.engine = SearchEngine(workspace)  # thread-safe: searches run in parallel in the worker pool
        self.pool = WorkPool(settings.workers, settings.queue)  # photos: decoding, localising, embedding
        # light work (pairs, searches from an item, thumbnails) never waits behind photos in the queue
        self.light_pool = WorkPool(settings.light_workers, settings.light_queue)
        db_url = settings.db_url or f"sqlite:///{(workspace.root / 'votes.sqlite').absolute()}"
        self.votes = VoteStore(db_url)
        secret = load_secret(settings.secret, workspace.root)
        self.sessions = Signer(secret, "session")
        self.tokens = Signer(secret, "pair")
        self.limiter = RateLimiter(settings.votes_per_second, settings.vote_burst)
        self.address_limiter = RateLimiter(settings.address_votes_per_minute / 60, settings.address_vote_burst)
        self.pair_limiter = RateLimiter(settings.pairs_per_second, settings.pair_burst)
        self.address_pair_limiter = RateLimiter(4 * settings.pairs_per_second, 4 * settings.pair_burst)
        self._purged = 0.0
        self.lookups = LookupLog()
        self.leaderboards = LeaderboardCache()
        self.systems = self._systems(settings.systems)
        self._ids: dict[str, list[str]] = {}
        self._features: dict[str, tuple[str, str]] = {}
        # a taste starts from a served deep model: not the appearance numbers (they are what a taste adds), not a
        # model already learned from votes
        deep = [s for s in self.systems if not s.startswith("appearance/")
                and learned_model(workspace, parse_system(s)[0]) is None]
        base = settings.taste_base or next(iter(deep or self.systems), None)
        if base is not None and base not in self.systems:
            raise ConfigError(f"taste base {base!r} is not a served system; choose one of: {', '.join(self.systems)}")
        self.tastes = TasteJobs(workspace, db_url, base, settings.taste_votes)

    def _systems(self, wanted: list[str] | None) -> list[str]:
        models = self.workspace.extracted_models()
        if wanted:
            for system in wanted:
                model, _ = parse_system(system)
                if model not in models:
                    raise ConfigError(f"system {system!r}: no {model!r} features in this workspace "
                                      f"(extracted: {', '.join(models) or 'none'})")
            return [f"{m}/{Metric.parse(x).value}" for m, x in (s.rsplit("/", 1) for s in wanted)]
        out = []
        for model in models:  # a learned model under its own metric only; one player's taste for them alone
            if not (learned_model(self.workspace, model) or {}).get("personal"):
                out += [f"{model}/{metric.value}" for metric in declared_metrics(self.workspace, model)]
        return out

    def session_id(self, request: Request) -> str:
        """The caller's anonymous session (a new one is being set on this response when it had none)."""
        return self.session_of(request) or request.scope.get("state", {}).get("session")

    def item_ids(self, model: str) -> list[str]:
        if model not in self._ids:
            self._ids[model] = self.workspace.feature_store(model).ids()
        return self._ids[model]

    def features_of(self, model: str) -> str:
        """Which features made a model's matches (the extractor fingerprint in its store's manifest, shortened)."""
        store = self.workspace.feature_store(model)
        stamp = store.fingerprint()  # a stat while the store is unchanged: the manifest is read again only then
        if self._features.get(model, ("",))[0] != stamp:
            self._features[model] = (stamp, store.manifest().get("extractor_fingerprint", "")[:16])
        return self._features[model][1]

    def nearest(self, item_id: str, system: str, k: int = 1) -> list[Match]:
        model, metric = parse_system(system)
        return self.engine.search_item(item_id, model, metric, k).results

    def client_address(self, request: Request) -> str:
        """The client's address: the socket peer's, or the last entry of the trusted proxy's header."""
        if self.settings.proxy_header:
            forwarded = request.headers.get(self.settings.proxy_header, "")
            last = forwarded.split(",")[-1].strip()
            if last:
                return last
        return request.client.host if request.client else "unknown"

    def purge_pairs(self) -> None:
        """Unused pairs past their time to live are deleted (at most once a minute)."""
        import time

        if time.monotonic() - self._purged > 60:
            self._purged = time.monotonic()
            self.votes.purge_expired()

    def session_of(self, request: Request) -> str | None:
        return self.sessions.unsign(request.cookies.get(SESSION_COOKIE))

    # -- what the routes check ---------------------------------------------------------------------
    def check_system(self, system: str, request: Request | None = None) -> tuple[str, Metric]:
        """``(model, metric)`` of a served system (``""``: the first; ``mine``: the caller's own taste)."""
        if system == MINE:
            own = self.tastes.system_of(self.session_id(request)) if request is not None else None
            if own is None:
                raise HTTPException(409, f"you have no taste model yet: vote on {self.settings.taste_votes} pairs "
                                         "in Dope or Nope, then learn your taste")
            return parse_system(own)
        if not self.systems:
            raise HTTPException(409, "no search systems: extract features first (lookalike extract --model NAME)")
        system = system or self.systems[0]
        if system not in self.systems:
            raise HTTPException(422, f"unknown system {system!r}; choose one of: {', '.join(self.systems)}")
        return parse_system(system)

    @staticmethod
    def check_k(k: int) -> int:
        if not 1 <= k <= 100:
            raise HTTPException(422, f"k must be between 1 and 100, got {k}")
        return k

    def random_query(self, model: str) -> str:
        ids = self.item_ids(model)
        if not ids:
            raise HTTPException(409, f"no items with {model} features")
        return random.choice(ids)

    def thumbnail_png(self, item_id: str, full: bool) -> bytes:
        from ..images import item_thumbnail

        buffer = io.BytesIO()
        item_thumbnail(self.workspace.catalogue, item_id, full=full).save(buffer, format="PNG")
        return buffer.getvalue()

    # -- votes: who is voting, how fast, on what ------------------------------------------------------
    def pair_id_from(self, token: str) -> str:
        pair_id = self.tokens.unsign(token)
        if pair_id is None:
            raise VoteError("invalid pair token", 403)
        return pair_id

    def voter_keys(self, request: Request) -> list[str]:
        keys = ["address:" + self.client_address(request)]
        session = self.session_of(request)
        return keys + ["session:" + session] if session else keys

    def flag_of(self, request: Request, pair_id: str) -> str | None:
        """``looked-up`` when the voter searched this pair's items before voting (see LookupLog)."""
        keys = self.voter_keys(request)
        if not self.settings.flag_lookups or not self.lookups.knows(keys):
            return None  # most voters never searched: no pair read
        items = self.votes.pair_items(pair_id)
        return "looked-up" if items and self.lookups.looked_up(keys, items) else None

    def rate_limit(self, session: str, request: Request) -> None:
        if not self.address_limiter.allow(self.client_address(request)):
            raise VoteError("too many votes from your address; slow down", 429)
        if not self.limiter.allow(session):
            raise VoteError("too many votes; slow down", 429)

    def pair_limit(self, session: str, request: Request) -> None:
        if not self.address_pair_limiter.allow(self.client_address(request)) or not self.pair_limiter.allow(session):
            raise VoteError("too many pairs requested; slow down", 429)
        self.purge_pairs()

    def public_session(self, session: str) -> str:
        """The same player keeps one pseudonym in public exports; session ids stay secret."""
        return self.sessions.sign(session).rsplit(".", 1)[1][:12]


def get_state(request: Request) -> App:
    """The app's shared state, for routes: ``state: App = Depends(get_state)``."""
    return request.app.state.lookalike


def item_json(match: Match | None = None, *, item_id: str | None = None, category: str | None = None,
              distance: float | None = None) -> dict[str, Any]:
    from urllib.parse import quote

    item_id = match.item_id if match else item_id
    out = {"item_id": item_id, "category": match.category if match else category,
           "image_url": f"/items/{quote(str(item_id), safe='')}/image"}
    if match is not None:
        out["distance"] = match.distance
    elif distance is not None:
        out["distance"] = distance
    return out


def page(name: str, title: str, **data: Any) -> HTMLResponse:
    """Fill ``templates/<name>.html`` into the base layout; ``data`` reaches app.js as a JSON block (never
    inline script: the Content-Security-Policy forbids it)."""
    body = (HERE / "templates" / f"{name}.html").read_text()
    base = (HERE / "templates" / "base.html").read_text()
    blob = json.dumps({"page": name, **data}).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return HTMLResponse(base.replace("{{title}}", html.escape(title)).replace("{{raw_page_data}}", blob)
                        .replace("{{body}}", body))


def create_app(workspace: Workspace, settings: Settings | None = None) -> FastAPI:
    """The Lookalike web app for one workspace."""
    state = App(workspace, settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        state.tastes.close()
        state.votes.close()

    docs = {} if state.settings.api_docs else {"docs_url": None, "redoc_url": None}  # Swagger UI needs a CDN
    app = FastAPI(title="Lookalike", version="1", lifespan=lifespan, responses=ERRORS, **docs, description="Visual item search: search by photo, the "
                  "catalogue map, and the Dope-or-Nope game that ranks search systems from people's votes.")
    app.state.lookalike = state
    # every body is limited, refused with 413 before it is read (uploads: the photo plus the form fields)
    app.add_middleware(BodyLimit, default=state.settings.max_body_bytes,
                       limits={"/api/search": state.settings.max_upload_bytes + 64 * 1024})
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(taste_router)

    # -- errors: a clear 4xx with a message, never a 500 for bad input ------------------------
    @app.exception_handler(LookalikeError)
    async def lookalike_error(_request: Request, exc: LookalikeError) -> JSONResponse:
        status = 404 if isinstance(exc, ItemNotFoundError) else 422 if isinstance(exc, (ImageError, ConfigError,
                                                                                       UnknownNameError)) else 400
        if isinstance(exc, FeatureStoreError):
            status = 409
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for error in exc.errors():
            where = ".".join(str(x) for x in error.get("loc", ()) if x not in ("body", "query", "path", "form"))
            parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(PoolFull)
    async def pool_full(_request: Request, exc: PoolFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(VoteError)
    async def vote_error(_request: Request, exc: VoteError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.middleware("http")
    async def anonymous_session(request: Request, call_next):
        session = state.session_of(request)
        new = None
        if session is None:
            new = secrets.token_urlsafe(16)
            request.scope.setdefault("state", {})["session"] = new
        response = await call_next(request)
        if new is not None:
            response.set_cookie(SESSION_COOKIE, state.sessions.sign(new), httponly=True, samesite="lax",
                                secure=state.settings.secure_cookies, max_age=60 * 60 * 24 * 365)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if new is not None or "set-cookie" in response.headers:  # tied to a session: never in a shared cache
            cache = response.headers.get("cache-control", "")
            response.headers["Cache-Control"] = "private" + (f", {cache}" if cache and "private" not in cache else "")
        return response


    from .routers import board, game, maps, pages, search

    for module in (pages, search, game, board, maps):
        app.include_router(module.router)
    return app
