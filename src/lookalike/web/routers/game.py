"""Dope or Nope and head-to-head duels: pairs issued by the server, votes recorded once."""

from __future__ import annotations

import random
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from ..app import App, get_state, item_json, parse_system

router = APIRouter()


class VoteIn(BaseModel):
    token: str
    verdict: str


class DuelIn(BaseModel):
    token: str
    winner: str


def issued(state: App, pair_id: str, query: str, **matches) -> dict[str, Any]:
    """What the page gets for an issued pair: its signed token, the query item and the match(es), no system."""
    item = state.workspace.catalogue.get(query)
    return {"token": state.tokens.sign(pair_id), "query": item_json(item_id=query, category=item.category),
            **{side: item_json(item_id=m.item_id, category=m.category) for side, m in matches.items()}}


def voter(state: App, request: Request, token: str) -> tuple[str, str]:
    """``(session, pair id)`` of a vote, once its rate limits and token are checked."""
    session = state.session_id(request)
    state.rate_limit(session, request)
    return session, state.pair_id_from(token)


@router.get("/api/game/pair", summary="A blind pair: a random item and its nearest match under a hidden system")
async def game_pair(request: Request, state: App = Depends(get_state)) -> dict[str, Any]:
    return await serve_pair(state, request, make_game_pair)


async def serve_pair(state: App, request: Request, make) -> dict[str, Any]:
    """A new pair from ``make(state, session)``, once the session's pair limit is checked, off the event loop."""
    session = state.session_id(request)
    state.pair_limit(session, request)
    return await state.light_pool.run(make, state, session)


def make_game_pair(state: App, session: str) -> dict[str, Any]:
    state.check_system("")
    own = state.tastes.system_of(session)
    system = own if own and random.random() < state.settings.mine_share else random.choice(state.systems)
    model, _ = parse_system(system)
    query = state.random_query(model)
    # exploration: a lower-ranked match now and then, so that votes can say what else would have pleased
    explore = random.random() < state.settings.explore
    results = state.nearest(query, system, random.randint(2, state.settings.explore_depth) if explore else 1)
    match, rank = results[-1], len(results)
    pair = state.votes.issue("single", session, query, system, match.item_id, match_rank=rank,
                             features=state.features_of(model))
    return issued(state, pair.id, query, match=match)


@router.post("/api/game/vote", summary="Swipe right (dope) or left (nope) on an issued pair")
def game_vote(vote: VoteIn, request: Request, state: App = Depends(get_state)) -> dict[str, Any]:
    session, pair_id = voter(state, request, vote.token)
    pair = state.votes.vote(pair_id, session, vote.verdict, flag=state.flag_of(request, pair_id))
    return {"accepted": True, "system": pair.system_a, "verdict": vote.verdict}


@router.get("/api/duel/pair", summary="Head to head: two hidden systems' matches for the same item")
async def duel_pair(request: Request, state: App = Depends(get_state)) -> dict[str, Any]:
    return await serve_pair(state, request, make_duel_pair)


def make_duel_pair(state: App, session: str) -> dict[str, Any]:
    state.check_system("")
    if len(state.systems) < 2:
        raise HTTPException(409, "head-to-head needs at least two systems; extract features of another model "
                                 "or serve more metrics")
    for _attempt in range(32):  # systems often agree on an item: look for one where they do not
        a, b = random.sample(state.systems, 2)
        model_a, _ = parse_system(a)
        model_b, _ = parse_system(b)
        ids_b = set(state.item_ids(model_b)) if model_a != model_b else None
        query = state.random_query(model_a)
        if ids_b is not None and query not in ids_b:
            continue
        match_a, match_b = state.nearest(query, a)[0], state.nearest(query, b)[0]
        if match_a.item_id != match_b.item_id:
            break
    else:
        raise HTTPException(409, "could not find an item on which two systems disagree; try again")
    pair = state.votes.issue("duel", session, query, a, match_a.item_id, b, match_b.item_id,
                             features=f"{state.features_of(model_a)},{state.features_of(model_b)}")
    return issued(state, pair.id, query, a=match_a, b=match_b)


@router.post("/api/duel/vote", summary="Pick the better match of an issued duel ('a' or 'b')")
def duel_vote(vote: DuelIn, request: Request, state: App = Depends(get_state)) -> dict[str, Any]:
    session, pair_id = voter(state, request, vote.token)
    pair = state.votes.duel(pair_id, session, vote.winner, flag=state.flag_of(request, pair_id))
    return {"accepted": True, "a": pair.system_a, "b": pair.system_b, "winner": vote.winner}
