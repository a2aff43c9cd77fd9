"""The feature store: per extractor, float32 vectors aligned with item ids, plus a manifest.

::

    features/<model>/
      manifest.json              extractor, layer, dim, preprocessing, weights checksum, count, shards
      shard-000000.npy           (n, dim) float32
      shard-000000.ids.json      the n item ids, in row order

A shard is written (atomically) before the manifest names it, so an interrupted extraction
loses at most the shard in progress and ``extract`` resumes where it stopped. One process writes a
store at a time (``FeatureStore.writing``, a lock file): a second ``extract`` or ``remove`` on the same
store is refused instead of naming the same items twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .errors import FeatureStoreError, ImageError, ItemNotFoundError
from .summary import skipped_lines

if TYPE_CHECKING:
    from .catalogue import Catalogue, Item
    from .extractors import Extractor


class FeatureStore:
    """Read and append the vectors of one extractor."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._cache: tuple[str, np.ndarray, np.ndarray] | None = None
        self._positions: tuple[str, dict[str, tuple[int, int]], list[np.ndarray], int] | None = None
        self._fingerprint: tuple[tuple | None, str] | None = None
        self._writer: Any = None  # the open lock file while this object holds the writer lock

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the store's writer lock (re-entrant within this object); another holder gets a clear error."""
        if self._writer is not None:  # re-entered by its holder (an append inside an extraction)
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fh = open(self.directory / ".writer.lock", "a+")
        try:
            try:
                import fcntl

                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # not POSIX: no lock
                pass
            except OSError:
                raise FeatureStoreError(f"another process is writing the features in {self.directory} (an extract, "
                                        "train or remove still running); wait for it to finish, then run this "
                                        "again") from None
            self._writer = fh
            try:
                yield
            finally:
                self._writer = None
        finally:
            fh.close()  # releases the lock

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        if not self.exists():
            model = self.directory.name
            raise FeatureStoreError(f"no features for {model!r} in this workspace; "
                                    f"run: lookalike extract --model {model}")
        return json.loads(self.manifest_path.read_text())

    def __len__(self) -> int:
        return self.manifest()["count"] if self.exists() else 0

    def fingerprint(self) -> str:
        """Changes whenever vectors are added or removed (indexes built from older contents are stale).

        Asked on every search: recomputed only when the manifest file changed (a ``stat``, not a parse)."""
        try:
            st = self.manifest_path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp is None or self._fingerprint is None or self._fingerprint[0] != stamp:
            m = self.manifest()
            key = json.dumps([m["weights_sha256"], m["count"], [s["file"] for s in m["shards"]]])
            self._fingerprint = (stamp, hashlib.sha256(key.encode()).hexdigest()[:16])
        return self._fingerprint[1]

    def iter_shards(self, names: list[str] | None = None):
        """``(shard name, ids, vectors)`` per shard, vectors memory-mapped (read-only; nothing is loaded whole)."""
        for shard in (self.manifest()["shards"] if self.exists() else []):
            if names is None or shard["file"] in names:
                ids = json.loads((self.directory / shard["ids"]).read_text())
                yield shard["file"], ids, np.load(self.directory / shard["file"], mmap_mode="r")

    def ids(self) -> list[str]:
        """Every stored item id, in row order (the vectors are not read)."""
        out: list[str] = []
        for shard in (self.manifest()["shards"] if self.exists() else []):
            out += json.loads((self.directory / shard["ids"]).read_text())
        return out

    def stored_ids(self) -> set[str]:
        return set(self.ids())

    def image_keys(self) -> dict[str, str]:
        """Item id -> the catalogue's image key when its vector was computed (for items extracted since keys
        were recorded)."""
        keys: dict[str, str] = {}
        for shard in (self.manifest()["shards"] if self.exists() else []):
            path = self.directory / shard["file"].replace(".npy", ".keys.json")
            if path.is_file():
                ids = json.loads((self.directory / shard["ids"]).read_text())
                keys.update((i, k) for i, k in zip(ids, json.loads(path.read_text())) if k)
        return keys

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All ``(ids, vectors)``: a str array and a float32 ``(n, dim)`` array, aligned (loaded whole)."""
        fingerprint = self.fingerprint()
        if self._cache is None or self._cache[0] != fingerprint:
            m = self.manifest()
            ids: list[str] = []
            parts = []
            for _name, shard_ids, vectors in self.iter_shards():
                ids += shard_ids
                parts.append(vectors)
            vectors = np.concatenate(parts) if parts else np.empty((0, m["dim"]), np.float32)
            self._cache = (fingerprint, np.asarray(ids, dtype=str), np.ascontiguousarray(vectors, np.float32))
        return self._cache[1], self._cache[2]

    def vectors_for(self, item_ids: list[str]) -> np.ndarray:
        """Vectors of the given items, in that order (read from the memory-mapped shards)."""
        fingerprint = self.fingerprint()
        if self._positions is None or self._positions[0] != fingerprint:  # once per contents, not per query
            where: dict[str, tuple[int, int]] = {}
            shards = []
            for number, (_name, ids, vectors) in enumerate(self.iter_shards()):
                shards.append(vectors)
                where.update((item_id, (number, row)) for row, item_id in enumerate(ids))
            self._positions = (fingerprint, where, shards, self.manifest()["dim"])
        _, where, shards, dim = self._positions
        missing = [i for i in item_ids if i not in where]
        if missing:
            raise ItemNotFoundError(f"no {self.directory.name} features for item(s) {missing[:5]}; "
                                    f"run: lookalike extract --model {self.directory.name}")
        out = np.empty((len(item_ids), dim), np.float32)
        located = np.array([where[i] for i in item_ids], np.int64).reshape(-1, 2)
        for shard in np.unique(located[:, 0]):
            mine = located[:, 0] == shard
            out[mine] = shards[shard][located[mine, 1]]
        return out

    def remove(self, item_ids: set[str] | list[str]) -> int:
        """Take these items' vectors out: each shard holding one is rewritten, under a new name, without them
        (its ``from`` names the shards it derives from, so an index removes just those items).

        Returns how many vectors went. The manifest is replaced last, so an interruption loses nothing.
        """
        gone = set(item_ids)
        if not self.exists() or not gone:
            return 0
        with self.writing():
            return self._remove(gone)

    def _remove(self, gone: set[str]) -> int:
        m = self.manifest()
        number = max((int(s["file"][6:12]) for s in m["shards"]), default=-1) + 1
        shards, removed, obsolete = [], 0, []
        for shard in m["shards"]:
            ids = json.loads((self.directory / shard["ids"]).read_text())
            keep = [row for row, i in enumerate(ids) if i not in gone]
            if len(keep) == len(ids):
                shards.append(shard)
                continue
            removed += len(ids) - len(keep)
            obsolete.append(shard)
            if keep:
                keys_path = self.directory / shard["file"].replace(".npy", ".keys.json")
                keys = json.loads(keys_path.read_text()) if keys_path.is_file() else None
                vectors = np.load(self.directory / shard["file"], mmap_mode="r")[keep]
                rewritten = self._write_shard(number, [ids[r] for r in keep], vectors,
                                              [keys[r] for r in keep] if keys else None)
                rewritten["from"] = [shard["file"], *shard.get("from", [])][:32]  # indexes keep their positions
                shards.append(rewritten)
                number += 1
        if removed:
            m["shards"] = shards
            m["count"] -= removed
            m["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            _atomic_write(self.manifest_path, lambda fh: fh.write(json.dumps(m, indent=2).encode()))
            self._fingerprint = None  # our own write: never trust a same-size, same-tick stamp
            for shard in obsolete:
                for name in (shard["file"], shard["ids"], shard["file"].replace(".npy", ".keys.json")):
                    (self.directory / name).unlink(missing_ok=True)
        return removed

    def _write_shard(self, number: int, ids: list[str], vectors: np.ndarray, keys: list[str] | None) -> dict:
        stem = f"shard-{number:06d}"
        _atomic_write(self.directory / f"{stem}.npy", lambda fh: np.save(fh, np.ascontiguousarray(vectors)))
        _atomic_write(self.directory / f"{stem}.ids.json", lambda fh: fh.write(json.dumps(ids).encode()))
        if keys is not None:
            _atomic_write(self.directory / f"{stem}.keys.json", lambda fh: fh.write(json.dumps(keys).encode()))
        return {"file": f"{stem}.npy", "ids": f"{stem}.ids.json", "count": len(ids)}

    def check_compatible(self, extractor: Extractor) -> None:
        """Refuse to mix vectors of another extractor, layer, dimension or weights into this store."""
        if not self.exists():
            return
        m = self.manifest()
        mine = (extractor.name, extractor.config.layer, extractor.dim, extractor.weights_checksum())
        theirs = (m["extractor"]["name"], m["extractor"]["layer"], m["dim"], m["weights_sha256"])
        if mine != theirs or m.get("extractor_fingerprint", extractor.fingerprint()) != extractor.fingerprint():
            raise FeatureStoreError(
                f"features in {self.directory} were made by {theirs[0]} ({theirs[1]}, {theirs[2]}-d, weights "
                f"{theirs[3][:12]}), not by this {mine[0]} ({mine[1]}, {mine[2]}-d, weights {mine[3][:12]}, or other "
                "preprocessing); "
                "re-run extract with --overwrite to replace them")

    def append(self, extractor: Extractor, ids: list[str], vectors: np.ndarray,
               keys: list[str] | None = None) -> None:
        """Write one shard, then the manifest that names it (``keys``: the items' image keys, for change checks)."""
        vectors = np.ascontiguousarray(vectors, np.float32)
        if vectors.shape != (len(ids), extractor.dim):
            raise FeatureStoreError(f"shard of shape {vectors.shape} for {len(ids)} ids of a {extractor.dim}-d model")
        with self.writing():
            self._append(extractor, ids, vectors, keys)

    def _append(self, extractor: Extractor, ids: list[str], vectors: np.ndarray, keys: list[str] | None) -> None:
        self.check_compatible(extractor)
        m = self.manifest() if self.exists() else self._new_manifest(extractor)
        number = max((int(s["file"][6:12]) for s in m["shards"]), default=-1) + 1
        m["shards"].append(self._write_shard(number, ids, vectors, keys))
        m["count"] += len(ids)
        m["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _atomic_write(self.manifest_path, lambda fh: fh.write(json.dumps(m, indent=2).encode()))
        self._fingerprint = None  # our own write: never trust a same-size, same-tick stamp

    def clear(self) -> None:
        """Delete every shard and the manifest."""
        if self.directory.is_dir():
            with self.writing():
                self._clear()
        self._cache = None
        self._positions = None
        self._fingerprint = None

    def _clear(self) -> None:
        for path in self.directory.iterdir():
            if path.name.startswith("shard-") or path.name == "manifest.json":
                path.unlink()

    def export_npz(self, out: str | Path) -> int:
        """Write ``ids`` (str) and ``vectors`` (float32) to an ``.npz`` file; returns the count."""
        ids, vectors = self.load()
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, ids=ids, vectors=vectors)
        return len(ids)

    @staticmethod
    def _new_manifest(extractor: Extractor) -> dict[str, Any]:
        cfg = extractor.config
        return {"extractor": {"name": cfg.name, "architecture": cfg.architecture, "layer": cfg.layer,
                              "weights": cfg.weights, "license": cfg.license},
                "dim": cfg.dim, "dtype": "float32",
                "preprocessing": {"input_size": cfg.preprocess.input_size, "mean": list(cfg.preprocess.mean),
                                  "std": list(cfg.preprocess.std), "resize": cfg.preprocess.resize,
                                  "interpolation": cfg.preprocess.interpolation,
                                  "crop_to_box": True, "color": "RGB, EXIF-upright, alpha on white"},
                "weights_sha256": extractor.weights_checksum(), "extractor_fingerprint": extractor.fingerprint(),
                "count": 0, "shards": [],
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "lookalike_version": __version__}


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
    tmp.replace(path)


@dataclass
class ExtractSummary:
    """What an extraction run did."""

    model: str
    computed: int = 0
    already: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    changed: int = 0
    total: int = 0
    seconds: float = 0.0

    def lines(self, max_named: int = 10) -> list[str]:
        rate = self.computed / self.seconds if self.seconds > 0 else 0.0
        changed = f" ({self.changed} of them for images that changed)" if self.changed else ""
        out = [f"{self.model}: computed {self.computed} vectors{changed} ({rate:.1f} images/s), {self.already} "
               f"already stored, skipped {len(self.skipped)} unreadable; store now has {self.total}"]
        return out + skipped_lines(self.skipped, max_named)


def extract_features(catalogue: Catalogue, extractor: Extractor, store: FeatureStore, *,
                     batch_size: int = 32, shard_size: int = 1024, overwrite: bool = False,
                     progress: bool | None = None, backbone_store: FeatureStore | None = None,
                     part_stores: list[FeatureStore] | None = None,
                     items: list[Item] | None = None, dask: str | None = None,
                     models_dir: Path | None = None) -> ExtractSummary:
    """Compute the vectors of every catalogue item the store lacks (images cropped to their box).

    Unreadable images are skipped, counted and named in the summary; everything already stored
    is kept. Runs resume: only missing items are computed, and items whose image changed since (a re-import
    with other content or another box) are computed again. A model trained on a frozen backbone
    computes its vectors from ``backbone_store`` where that has them (the same function, minus
    the backbone's cost); a combined model, from its parts' ``part_stores`` likewise. ``items``
    restricts the run to those catalogue items. ``dask`` (``tcp://HOST:PORT`` or ``local:N``) computes the
    rest on a Dask cluster (``lookalike.distributed``; ``models_dir``: where workers find workspace models).
    One extraction writes a store at a time: another one still running is a ``FeatureStoreError``.
    """
    with store.writing():
        return _extract_features(catalogue, extractor, store, batch_size=batch_size, shard_size=shard_size,
                                 overwrite=overwrite, progress=progress, backbone_store=backbone_store,
                                 part_stores=part_stores, items=items, dask=dask, models_dir=models_dir)


def _extract_features(catalogue: Catalogue, extractor: Extractor, store: FeatureStore, *, batch_size: int,
                      shard_size: int, overwrite: bool, progress: bool | None, backbone_store: FeatureStore | None,
                      part_stores: list[FeatureStore] | None, items: list[Item] | None, dask: str | None,
                      models_dir: Path | None) -> ExtractSummary:
    if overwrite:
        store.clear()
    store.check_compatible(extractor)
    keys = catalogue.image_keys()
    changed = stale_ids(store, keys)
    store.remove(changed)
    have = store.stored_ids()
    todo = [item for item in (catalogue.items() if items is None else items) if item.id not in have]
    summary = ExtractSummary(extractor.name, already=len(have), changed=len(changed))
    started = time.perf_counter()

    def item_keys(ids: list[str]) -> list[str]:
        return [keys.get(i) or "" for i in ids]

    category_of = {item.id: item.category for item in todo} if extractor.uses_labels else {}

    def labelled(ids: list[str], vectors: np.ndarray) -> np.ndarray:  # catalogue labels, where the model has them
        return extractor.with_labels(vectors, [category_of.get(i) for i in ids]) if category_of else vectors

    if todo and backbone_store is not None and extractor.embeds_backbone_features \
            and backbone_store.exists():
        backbone_store.check_compatible(extractor.backbone)
        known = backbone_store.stored_ids() - set(stale_ids(backbone_store, keys))
        reusable = [item.id for item in todo if item.id in known]
        for start in range(0, len(reusable), 8 * shard_size):
            ids = reusable[start : start + 8 * shard_size]
            store.append(extractor, ids, labelled(ids, extractor.embed_backbone_features(backbone_store.vectors_for(ids))),
                         item_keys(ids))
            summary.computed += len(ids)
        todo = [item for item in todo if item.id not in known]
    if todo and part_stores and extractor.parts:
        known = set.intersection(*(s.stored_ids() - set(stale_ids(s, keys)) if s.exists() else set()
                                   for s in part_stores))
        reusable = [item.id for item in todo if item.id in known]
        for start in range(0, len(reusable), 8 * shard_size):
            ids = reusable[start : start + 8 * shard_size]
            store.append(extractor, ids, labelled(ids, extractor.combine([s.vectors_for(ids) for s in part_stores])),
                         item_keys(ids))
            summary.computed += len(ids)
        todo = [item for item in todo if item.id not in known]
    if todo and dask and not extractor.uses_labels:  # (a model with catalogue labels: built here, from its parts)
        from .distributed import extract_on_dask

        try:
            extract_on_dask(catalogue, extractor, store, todo, dask, models_dir or Path("."), summary,
                            shard_size=shard_size, batch_size=batch_size, keys=keys)
        finally:
            summary.total = len(store)
        return summary
    bar = tqdm(total=len(todo), desc=f"extract {extractor.name}", unit="img",
               disable=None if progress is None else not progress)
    try:
        for start in range(0, len(todo), shard_size):
            shard_ids: list[str] = []
            shard_vectors: list[np.ndarray] = []
            chunk = todo[start : start + shard_size]
            for b in range(0, len(chunk), batch_size):
                batch_ids, arrays = _load_batch(catalogue, extractor, chunk[b : b + batch_size], summary)
                if arrays:
                    shard_vectors.append(extractor.embed_arrays(np.stack(arrays)))
                    shard_ids += batch_ids
                bar.update(len(chunk[b : b + batch_size]))
            if shard_ids:
                store.append(extractor, shard_ids, labelled(shard_ids, np.concatenate(shard_vectors)),
                             item_keys(shard_ids))
                summary.computed += len(shard_ids)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - started
        summary.total = len(store)
    return summary


def stale_ids(store: FeatureStore, keys: dict[str, str]) -> list[str]:
    """Items whose stored vector was computed from another image or box than the catalogue's now."""
    return sorted(i for i, k in store.image_keys().items() if keys.get(i) and keys[i] != k)


def _load_batch(catalogue: Catalogue, extractor: Extractor, items: list[Item],
                summary: ExtractSummary) -> tuple[list[str], list[np.ndarray]]:
    from .images import load_image

    ids, arrays = [], []
    for item in items:
        try:
            arrays.append(extractor.preprocess(load_image(catalogue.resolve(item.path), item.box)))
            ids.append(item.id)
        except ImageError as exc:
            summary.skipped.append((item.id, str(exc)))
    return ids, arrays
