"""The leaderboard (approval with Wilson intervals, Bradley-Terry from duels) and the raw vote exports."""

from __future__ import annotations

import hmac
import os
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse

from ..app import App, get_state
from ..leaderboard import approval_svg

router = APIRouter()


@router.get("/api/leaderboard", summary="Systems ranked by approval (Wilson 95% CI) and by Bradley-Terry")
def leaderboard(bootstrap: int = Query(200, ge=0), state: App = Depends(get_state)) -> dict[str, Any]:
    # a thread of its own (not the search pool): cached per vote count, one fit at a time, bounded
    if bootstrap > state.settings.max_bootstrap:
        raise HTTPException(422, f"bootstrap must be at most {state.settings.max_bootstrap}, got {bootstrap}")
    return state.leaderboards.get(state.votes, state.systems, bootstrap)


@router.get("/api/leaderboard.svg", summary="Approval of each system with its 95% interval, as a picture",
            response_class=Response, responses={200: {"content": {"image/svg+xml": {}}, "description": "SVG"}})
def leaderboard_svg(state: App = Depends(get_state)) -> Response:
    board = state.leaderboards.get(state.votes, state.systems, 0)
    return Response(approval_svg(board["approval"]), media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


def download(text: str, media_type: str, filename: str) -> PlainTextResponse:
    return PlainTextResponse(text, media_type=media_type,
                             headers={"Content-Disposition": f"attachment; filename={filename}"})


@router.get("/api/votes.csv", summary="Every raw vote as CSV (sessions as pseudonyms)",
            response_class=Response, responses={200: {"content": {"text/csv": {}}, "description": "CSV"}})
def votes_csv(state: App = Depends(get_state)) -> PlainTextResponse:
    return download(state.votes.export_csv(state.public_session), "text/csv", "votes.csv")


@router.get("/api/votes.jsonl", summary="Every raw vote as JSON lines (sessions as pseudonyms)",
            response_class=Response,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"}})
def votes_jsonl(state: App = Depends(get_state)) -> PlainTextResponse:
    return download(state.votes.export_jsonl(state.public_session), "application/x-ndjson", "votes.jsonl")


@router.get("/api/admin/votes.jsonl", summary="Every raw vote with session ids (Authorization: Bearer TOKEN)",
            response_class=Response,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"}})
def admin_votes(request: Request, state: App = Depends(get_state)) -> PlainTextResponse:
    token = state.settings.admin_token or os.environ.get("LOOKALIKE_ADMIN_TOKEN")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise HTTPException(404, "no admin token is configured (--admin-token or $LOOKALIKE_ADMIN_TOKEN)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(403, "a valid admin token is needed: Authorization: Bearer TOKEN")
    return download(state.votes.export_jsonl(), "application/x-ndjson", "votes-full.jsonl")
