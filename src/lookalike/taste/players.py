"""Simulated players: a hidden, consistent taste that plays Dope or Nope through the HTTP API.

A player sees what a person sees (the two item images the app serves, and their categories) and
swipes by a rule of its own, written here and independent of ``appearance``:

- ``category``: a match is dope when it is the same kind of thing;
- ``shade``: same kind of thing, and as light or dark (mean grey of the item within ``tolerance``);
- ``cut``: same kind of thing, and the same cut: boxy or fitted (how much of its bounding box the item
  fills, above or below the catalogue's median);
- ``style``: same kind of thing, and the same sub-style (which of ``styles`` prototype silhouettes per
  category the item's 12 x 12 thumbnail is nearest; prototypes by k-means on a catalogue sample): a taste
  that differs from category to category, the hardest here;
- ``random``: a coin flip per pair (learning from it must change nothing).

``approval(player, system)`` is the share of a system's top matches the player would swipe right on,
for query items the player never voted on.
"""

from __future__ import annotations

import hashlib
import io
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

#: how a player fetches an item's image by its id (from the app, or from the catalogue)
Look = Callable[[str], Image.Image]


def _grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), np.float32) / 255.0


def _item_mask(grey: np.ndarray) -> np.ndarray:
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    mask = np.abs(grey - np.median(border)) > 0.1
    return mask if mask.any() else np.ones_like(mask)


@dataclass
class Player(ABC):
    """A hidden taste. Subclasses implement ``likes`` on two (image, category) views."""

    name: str
    _seen: dict[str, Any] = field(default_factory=dict, repr=False)

    def view(self, item_id: str, category: str, look: Look) -> Any:
        if item_id not in self._seen:
            self._seen[item_id] = self.perceive(look(item_id), category)
        return self._seen[item_id]

    def perceive(self, img: Image.Image, category: str) -> Any:
        return category

    @abstractmethod
    def likes(self, query: Any, match: Any) -> bool:
        """Whether a match seen as ``match`` pleases for a query seen as ``query``."""

    def judge(self, query_id: str, query_category: str, match_id: str, match_category: str, look: Look) -> bool:
        return self.likes(self.view(query_id, query_category, look), self.view(match_id, match_category, look))


class CategoryPlayer(Player):
    def __init__(self):
        super().__init__("category")

    def likes(self, query, match) -> bool:
        return query == match


class ShadePlayer(Player):
    """Same category, and the item's mean grey within ``tolerance`` (0..1) of the query's."""

    def __init__(self, tolerance: float = 0.06):
        super().__init__("shade")
        self.tolerance = tolerance

    def perceive(self, img, category):
        grey = _grey(img)
        return category, float(grey[_item_mask(grey)].mean())

    def likes(self, query, match) -> bool:
        return query[0] == match[0] and abs(query[1] - match[1]) <= self.tolerance


class StylePlayer(Player):
    """Same category, and the same of ``styles`` sub-styles (nearest prototype silhouette of the category)."""

    def __init__(self, samples: dict[str, list[Image.Image]], styles: int = 3, seed: int = 0):
        super().__init__("style")
        self.prototypes = {c: _kmeans(np.stack([self._thumb(i) for i in imgs]), styles, seed)
                           for c, imgs in samples.items()}

    @staticmethod
    def _thumb(img: Image.Image) -> np.ndarray:
        grey = _grey(img)
        mask = _item_mask(grey)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8) * 255
        return np.asarray(Image.fromarray(crop).resize((12, 12), Image.Resampling.BILINEAR), np.float32).ravel() / 255

    def perceive(self, img, category):
        protos = self.prototypes.get(category)
        style = -1 if protos is None else int(((protos - self._thumb(img)) ** 2).sum(1).argmin())
        return category, style

    def likes(self, query, match) -> bool:
        return query == match


class CutPlayer(Player):
    """Same category, and the same cut: boxy (fills more of its bounding box than ``threshold``) or fitted."""

    def __init__(self, threshold: float):
        super().__init__("cut")
        self.threshold = threshold

    @staticmethod
    def fill(img: Image.Image) -> float:
        mask = _item_mask(_grey(img))
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        return float(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].mean())

    def perceive(self, img, category):
        return category, self.fill(img) > self.threshold

    def likes(self, query, match) -> bool:
        return query == match


class RandomPlayer(Player):
    """Dope or nope by a coin, the same coin for the same pair of images (equal matches get equal verdicts)."""

    def __init__(self, seed: int = 0, p: float = 0.5):
        super().__init__("random")
        self.seed = seed
        self.p = p

    def perceive(self, img, category):
        return hashlib.sha256(img.tobytes()).hexdigest()

    def likes(self, query, match) -> bool:
        digest = hashlib.sha256(f"{self.seed}/{query}/{match}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.p


def _kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), min(k, len(x)), replace=False)]
    for _ in range(iterations):
        nearest = ((x[:, None] - centres[None]) ** 2).sum(2).argmin(1)
        centres = np.stack([x[nearest == j].mean(0) if (nearest == j).any() else centres[j]
                            for j in range(len(centres))])
    return centres


def make_player(kind: str, ws=None, *, seed: int = 0, sample_per_category: int = 200) -> Player:
    """One of ``PLAYERS``; ``style`` and ``cut`` need the workspace (to know the catalogue's styles and cuts)."""
    if kind == "category":
        return CategoryPlayer()
    if kind == "shade":
        return ShadePlayer()
    if kind == "random":
        return RandomPlayer(seed)
    if kind in ("style", "cut"):
        from ..images import load_image

        by_category: dict[str, list] = {}
        for item in ws.catalogue.items():
            by_category.setdefault(item.category, []).append(item)
        rng = random.Random(seed)
        samples = {c: [load_image(ws.catalogue.resolve(i.path), i.box)
                       for i in rng.sample(items, min(len(items), sample_per_category))]
                   for c, items in by_category.items()}
        if kind == "cut":
            return CutPlayer(float(np.median([CutPlayer.fill(img) for imgs in samples.values() for img in imgs])))
        return StylePlayer(samples, seed=seed)
    raise ValueError(f"unknown player {kind!r}; choose one of {', '.join(PLAYERS)}")


PLAYERS = ("shade", "cut", "style", "category", "random")


def http_look(client) -> Look:
    """Item images as the app serves them (``client``: a TestClient or an httpx.Client on a base URL)."""
    def look(item_id: str) -> Image.Image:
        from urllib.parse import quote

        response = client.get(f"/items/{quote(item_id, safe='')}/image")
        response.raise_for_status()
        return Image.open(io.BytesIO(response.content)).convert("RGB")

    return look


def catalogue_look(ws) -> Look:
    """Item images from the catalogue, as the app serves them (cropped to their box, thumbnail size)."""
    from ..images import item_thumbnail

    return lambda item_id: item_thumbnail(ws.catalogue, item_id)


def play(client, player: Player, rounds: int) -> list[dict[str, Any]]:
    """``rounds`` game rounds through the HTTP API; returns what was shown and voted."""
    look = http_look(client)
    out = []
    for _ in range(rounds):
        response = client.get("/api/game/pair")
        response.raise_for_status()
        pair = response.json()
        q, m = pair["query"], pair["match"]
        verdict = "dope" if player.judge(q["item_id"], q["category"], m["item_id"], m["category"], look) else "nope"
        vote = client.post("/api/game/vote", json={"token": pair["token"], "verdict": verdict})
        vote.raise_for_status()
        out.append({"query": q["item_id"], "match": m["item_id"], "verdict": verdict, "system": vote.json()["system"]})
    return out


def approval(engine, ws, player: Player, model: str, metric: str, queries: list[str]) -> float:
    """Share of ``model/metric``'s top matches of ``queries`` that ``player`` likes (judged on catalogue images)."""
    look = catalogue_look(ws)
    found = engine.search_vectors(ws.feature_store(model).vectors_for(queries), model, metric, 1, exclude=queries)
    categories = {item.id: item.category for item in ws.catalogue.get_many(queries).values()}
    return float(np.mean([player.judge(q, categories[q], row[0].item_id, row[0].category, look)
                          for q, row in zip(queries, found)]))


def unseen_queries(ws, model: str, voted: list[dict[str, Any]], count: int, seed: int = 0) -> list[str]:
    """``count`` seeded items of ``model``'s store that no vote showed (as query or match)."""
    seen = {v["query"] for v in voted} | {v["match"] for v in voted}
    ids = [i for i in ws.feature_store(model).ids() if i not in seen]
    return random.Random(seed).sample(ids, min(count, len(ids)))
