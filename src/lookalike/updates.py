"""Catalogue maintenance at scale: the "similar items" feed, and taking items out everywhere.

``export_neighbours`` writes the k nearest items of every catalogue item through the stored index, in
batches (the feed shops load into their product pages). ``remove_items`` takes items out of the feature
stores, the indexes (in place, no rebuild) and the catalogue.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, ItemNotFoundError
from .metrics import Metric
from .search import SearchEngine
from .workspace import Workspace


def read_item_ids(path: str | Path) -> list[str]:
    """Item ids from a file: one per line, or a CSV whose header has an ``item_id`` or ``id`` column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read item ids from {path}: {exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    column = next((n for n, h in enumerate(header) if h.strip().lower() in ("item_id", "id")), None)
    if column is None or len(header) == 1 and header[0].strip().lower() not in ("item_id", "id"):
        return [line.strip() for line in lines]
    return [row[column].strip() for row in csv.reader(lines[1:]) if len(row) > column and row[column].strip()]


@dataclass
class NeighboursSummary:
    items: int
    k: int
    out: Path
    backend: str

    def line(self) -> str:
        return f"wrote the {self.k} nearest items of {self.items:,} items ({self.backend}) to {self.out}"


def export_neighbours(workspace: Workspace, model: str, metric: Metric | str, k: int, out: str | Path, *,
                      items: list[str] | None = None, batch_size: int = 1024, progress: bool | None = None,
                      engine: SearchEngine | None = None) -> NeighboursSummary:
    """Write ``{"item_id": ..., "neighbours": [{"item_id": ..., "distance": ...}, ...]}`` per item, one JSON
    line each, the item itself left out, through the stored index (its backend and parameters).

    ``items``: only these query items (every id must have vectors; otherwise nothing is written). The file
    appears complete or not at all.
    """
    from tqdm.auto import tqdm

    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    metric = Metric.parse(metric)
    engine = engine or SearchEngine(workspace)
    index = engine.get_index(model, metric)
    store = workspace.feature_store(model)
    live = [str(i) for i in index.ids[index.index.live_positions()]]
    if items is None:
        queries = live
    else:
        known = set(live)
        missing = [i for i in dict.fromkeys(items) if i not in known]
        if missing:
            raise ItemNotFoundError(f"{len(missing)} of the --items have no {model} vectors: "
                                    f"{', '.join(map(repr, missing[:10]))}; nothing was written")
        queries = list(dict.fromkeys(items))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh, \
            tqdm(total=len(queries), desc=f"neighbours {model} {metric.value}", unit="item",
                 disable=None if progress is None else not progress) as bar:
        for start in range(0, len(queries), batch_size):
            batch = queries[start : start + batch_size]
            hits = index.search(store.vectors_for(batch), k, model=model, exclude=batch)
            for item_id, row in zip(batch, hits):
                fh.write(json.dumps({"item_id": item_id, "neighbours": [
                    {"item_id": i, "distance": round(d, 6)} for i, d in row]}) + "\n")
            bar.update(len(batch))
    tmp.replace(out)
    return NeighboursSummary(len(queries), k, out, index.meta.backend)


@dataclass
class RemoveSummary:
    removed: int
    vectors: dict[str, int] = field(default_factory=dict)
    indexes: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"removed {self.removed} item(s) from the catalogue"]
        out += [f"  {model}: {n} vector(s) removed" for model, n in self.vectors.items()]
        out += [f"  index {name}: {summary}" for name, summary in self.indexes.items()]
        return out


def remove_items(workspace: Workspace, item_ids: list[str], *, log: Callable[[str], None] | None = None
                 ) -> RemoveSummary:
    """Take items out of every feature store, every stored index (in place) and the catalogue.

    Unknown ids are named and nothing changes. The catalogue goes last: if the run is interrupted, running
    it again finishes the job.
    """
    if not item_ids:
        raise ConfigError("no item ids to remove")
    catalogue = workspace.catalogue
    wanted = catalogue.check_known(item_ids, "nothing was removed")
    summary = RemoveSummary(0)
    engine = SearchEngine(workspace)
    for model in workspace.extracted_models():
        summary.vectors[model] = workspace.feature_store(model).remove(wanted)
        for metric, sync in engine.update_indexes(model).items():
            summary.indexes[f"{model}/{metric}"] = str(sync)
    summary.removed = catalogue.remove(wanted)
    return summary
