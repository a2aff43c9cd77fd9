"""The web app (``lookalike serve``): search by photo, the map, Dope or Nope and its leaderboard."""

from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
