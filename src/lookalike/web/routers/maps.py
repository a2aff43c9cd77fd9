"""The catalogue map: its points and thumbnail atlas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from ..app import App, get_state

router = APIRouter()


@router.get("/api/map/{model}", summary="The saved 2-D map of a model's feature space")
def map_data(model: str, state: App = Depends(get_state)) -> dict[str, Any]:
    from ...mapping import load_map

    return load_map(state.workspace, model)


@router.get("/api/map/{model}/atlas.png", summary="The map's thumbnail atlas",
            response_class=Response, responses={200: {"content": {"image/png": {}}, "description": "PNG"}})
def map_atlas(model: str, state: App = Depends(get_state)) -> Response:
    from ...mapping import map_file

    return Response(map_file(state.workspace, model, "atlas.png").read_bytes(), media_type="image/png")
