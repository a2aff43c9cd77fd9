"""Search: by uploaded photo, by catalogue item, and the items' thumbnails."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile

from ..app import App, get_state, item_json
from ..taste import MINE

router = APIRouter()


@router.get("/api/systems", summary="The search systems (model/metric) this app serves; 'mine' once yours is ready")
def systems(request: Request, state: App = Depends(get_state)) -> dict[str, Any]:
    mine = [MINE] if state.tastes.system_of(state.session_id(request)) else []
    return {"systems": state.systems + mine, "items": len(state.workspace.catalogue)}


@router.post("/api/search", summary="Search the catalogue with an uploaded photo")
async def search_upload(request: Request,
                        file: Annotated[UploadFile, File(description="the photo (JPEG, PNG, WebP, ...)")],
                        system: Annotated[str, Form()] = "",
                        k: Annotated[int, Form()] = 12,
                        box: Annotated[str, Form(description="x1,y1,x2,y2 in pixels, 'auto' (find the item; "
                                                             "the default) or 'none' (the whole photo)")] = "",
                        state: App = Depends(get_state)) -> dict[str, Any]:
    from ...images import parse_box

    model, metric = state.check_system(system, request)
    state.check_k(k)
    data = await file.read(state.settings.max_upload_bytes + 1)
    if len(data) > state.settings.max_upload_bytes:
        raise HTTPException(413, f"the upload is larger than {state.settings.max_upload_bytes:,} bytes")
    mode = box.strip() or "auto"
    crop = mode if mode in ("auto", "none") else parse_box(mode)
    # decoded (content sniffed, never trusted from the name) and searched in the worker pool
    result = await state.pool.run(state.engine.search_image, data, model, metric, k, box=crop)
    query = {key: result.query[key] for key in ("box", "box_source", "size")}
    query["candidates"] = result.query.get("candidates", [])
    if "searched_with" in result.query:  # the model's photo model answered (an asymmetric model)
        query["searched_with"] = result.query["searched_with"]
    return {"system": f"{model}/{metric.value}", "query": query, "results": [item_json(m) for m in result.results]}


@router.get("/api/search/item", summary="Search from a catalogue item (excluded from its own results)")
async def search_item(request: Request, item_id: str, system: str = Query(""), k: int = 12,
                      state: App = Depends(get_state)) -> dict[str, Any]:
    model, metric = state.check_system(system, request)
    state.check_k(k)
    state.lookups.record(state.voter_keys(request), item_id)
    result = await state.light_pool.run(state.engine.search_item, item_id, model, metric, k)
    item = state.workspace.catalogue.get(item_id)
    return {"system": f"{model}/{metric.value}", "query": item_json(item_id=item.id, category=item.category),
            "results": [item_json(m) for m in result.results]}


@router.get("/items/{item_id:path}/image", summary="An item's image (cropped to its box), as a thumbnail",
            response_class=Response, responses={200: {"content": {"image/png": {}}, "description": "PNG"}})
async def item_image(item_id: str, full: bool = False, state: App = Depends(get_state)) -> Response:
    data = await state.light_pool.run(state.thumbnail_png, item_id, full)
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})
