"""The web app's routers, one per area (FastAPI "bigger applications"); state comes through ``Depends(get_state)``."""
