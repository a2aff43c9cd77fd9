"""The HTML pages (server-rendered; their data reaches app.js as a JSON block)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ..app import App, get_state, page
from ..taste import MINE

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def search_page(request: Request, state: App = Depends(get_state)) -> HTMLResponse:
    mine = [MINE] if state.tastes.system_of(state.session_id(request)) else []
    return page("search", "Search", systems=mine + state.systems)


@router.get("/game", response_class=HTMLResponse)
def game_page() -> HTMLResponse:
    return page("game", "Dope or Nope")


@router.get("/duel", response_class=HTMLResponse)
def duel_page() -> HTMLResponse:
    return page("duel", "Head to head")


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page() -> HTMLResponse:
    return page("leaderboard", "Leaderboard")


@router.get("/map", response_class=HTMLResponse)
def map_page(state: App = Depends(get_state)) -> HTMLResponse:
    from ...mapping import list_maps

    return page("map", "Catalogue map", maps=list_maps(state.workspace))
