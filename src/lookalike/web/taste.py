"""Personal taste: after enough votes a player can have a model of their own ("mine").

``POST /api/taste/learn`` trains it in the background from that player's votes (``lookalike learn
--session``), one job at a time; ``GET /api/taste`` shows the progress. When it is ready, the player's
searches may use ``system=mine`` and a share of their game pairs come from it; nobody else sees it,
and the public leaderboard leaves it out.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from ..errors import LookalikeError
from ..taste.learn import learn, session_hash

MINE = "mine"


@dataclass
class TasteJob:
    state: str = "none"  # none, queued, training, ready, failed
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    system: str | None = None  # MODEL/METRIC of the ready model


class TasteJobs:
    """One background trainer for every player's taste; the ready models, found again after a restart."""

    def __init__(self, workspace, db_url: str, base_system: str | None, min_votes: int):
        self.workspace = workspace
        self.db_url = db_url
        self.base_system = base_system
        self.min_votes = min_votes
        self._lock = threading.Lock()
        self._jobs: dict[str, TasteJob] = {}  # by session hash
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="taste")
        for path in sorted(workspace.models_dir.glob("taste-*/model.json")):
            try:
                saved = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            sessions = saved.get("learned_from", {}).get("sessions", [])
            if saved.get("kind") == "learned" and saved.get("personal") and len(sessions) == 1:
                metric = "l1" if saved["config"]["base_metric"] == "l1" else "l2"
                self._jobs[sessions[0]] = TasteJob("ready", "done", 1.0, "", f"{saved['config']['name']}/{metric}")

    def status(self, session: str) -> TasteJob:
        with self._lock:
            return self._jobs.get(session_hash(session), TasteJob())

    def system_of(self, session: str | None) -> str | None:
        """The session's own ready system (``MODEL/METRIC``), if any."""
        if not session:
            return None
        job = self.status(session)
        return job.system if job.state == "ready" else None

    def start(self, session: str) -> TasteJob:
        key = session_hash(session)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state in ("queued", "training"):
                raise HTTPException(409, "your taste is already being learned; watch its progress")
            job = self._jobs[key] = TasteJob("queued", "waiting for the trainer", 0.0, "", job.system if job else None)
        self._executor.submit(self._run, session, job)
        return job

    def _run(self, session: str, job: TasteJob) -> None:
        from ..web.app import parse_system

        def progress(stage: str, fraction: float) -> None:
            job.state, job.stage, job.progress = "training", stage, fraction

        try:
            progress("reading votes", 0.02)
            model, metric = parse_system(self.base_system)
            name = f"taste-{session_hash(session)}"
            result = learn(self.workspace, model, metric, name, sessions=[session], db_url=self.db_url,
                           all_systems=True, min_votes=self.min_votes, overwrite=True, personal=True,
                           progress=progress)
            job.system = f"{name}/{'l1' if metric.value == 'l1' else 'l2'}"
            job.message = friendly_summary(result)
            job.state, job.stage, job.progress = "ready", "done", 1.0
        except LookalikeError as exc:
            job.state, job.message = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed job says why; the app goes on
            job.state, job.message = "failed", f"learning failed: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def friendly_summary(result) -> str:
    """What a player is told about their model."""
    votes = result.verdicts + result.duels
    if result.taste.is_base:
        return (f"Your {votes} votes so far agree with the base system, so your model ranks as it does; vote more "
                "and learn again.")
    top = sorted(((w, g) for g, w in result.group_weights.items() if g != "base" and w >= 0.05), reverse=True)[:3]
    weighs = ", ".join(f"{g} ({w:.0%})" for w, g in top) or "the base's own distance"
    return f"Learned from {votes} votes. Besides the base, it weighs most: {weighs}."


router = APIRouter()


def _status(request: Request) -> dict[str, Any]:
    state = request.app.state.lookalike
    session = state.session_id(request)
    job = state.tastes.status(session)
    votes = state.votes.count_votes(session)
    return {"votes": votes, "needed": state.settings.taste_votes, "state": job.state, "stage": job.stage,
            "progress": round(job.progress, 3), "message": job.message,
            "system": MINE if job.state == "ready" or (job.system and job.state != "failed") else None,
            "base": state.tastes.base_system}


@router.get("/api/taste", summary="Your taste model: votes so far, votes needed, training progress")
def taste_status(request: Request) -> dict[str, Any]:
    return _status(request)


@router.post("/api/taste/learn", status_code=202, summary="Learn your taste from your votes (in the background)")
def taste_learn(request: Request) -> dict[str, Any]:
    state = request.app.state.lookalike
    session = state.session_id(request)
    if not state.tastes.base_system:
        raise HTTPException(409, "no search systems to learn a taste on: extract features first")
    votes = state.votes.count_votes(session)
    if votes < state.settings.taste_votes:
        raise HTTPException(409, f"too few votes to learn your taste: you have {votes}, "
                                 f"{state.settings.taste_votes} are needed")
    state.tastes.start(session)
    return _status(request)
