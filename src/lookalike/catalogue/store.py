"""The catalogue: one SQLite table of items (id, image path, category, split, box, attributes, product)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CatalogueError, ItemNotFoundError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id          TEXT PRIMARY KEY,
    path        TEXT NOT NULL,
    category    TEXT NOT NULL,
    split       TEXT,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL,
    attributes  TEXT NOT NULL DEFAULT '[]',
    source      TEXT NOT NULL DEFAULT '',
    added_at    TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS items_category ON items(category);
CREATE INDEX IF NOT EXISTS items_split ON items(split);
CREATE TABLE IF NOT EXISTS imports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    reader      TEXT NOT NULL,
    source      TEXT NOT NULL,
    added       INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (datetime('now'))
);
"""


@dataclass(frozen=True)
class Item:
    """One catalogue item: an image of a product with its labels."""

    id: str
    path: str
    category: str
    split: str | None = None
    box: tuple[float, float, float, float] | None = None
    attributes: tuple[str, ...] = field(default_factory=tuple)
    product: str | None = None  # the same product in several photos (DeepFashion In-shop item id)

    def __post_init__(self) -> None:
        if not self.id:
            raise CatalogueError("an item needs a non-empty id")
        if not self.category:
            raise CatalogueError(f"item {self.id!r} has no category")
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (x2 > x1 and y2 > y1):
                raise CatalogueError(f"item {self.id!r}: box {self.box} needs x1 < x2 and y1 < y2")


class Catalogue:
    """SQLite-backed catalogue of items in a workspace.

    Paths inside the workspace are stored relative to it, so a workspace can be moved.
    """

    def __init__(self, db_path: str | Path, root: str | Path | None = None):
        self.db_path = Path(db_path)
        self.root = Path(root) if root is not None else self.db_path.parent
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # one connection per thread (web servers use thread pools)
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._migrate()

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _migrate(self) -> None:
        """Bring an older catalogue file up to the current schema (``PRAGMA user_version``)."""
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(items)")}
        with self._conn:
            if version < 1:  # v1: product ids for exact-item retrieval
                if "product" not in columns:
                    self._conn.execute("ALTER TABLE items ADD COLUMN product TEXT")
                self._conn.execute("CREATE INDEX IF NOT EXISTS items_product ON items(product)")
                self._conn.execute("PRAGMA user_version = 1")
            if version < 2:  # v2: image keys, so extraction notices an image that changed on re-import
                if "image_key" not in columns:
                    self._conn.execute("ALTER TABLE items ADD COLUMN image_key TEXT")
                self._conn.execute("PRAGMA user_version = 2")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, items: Iterable[Item], *, source: str = "") -> tuple[int, int]:
        """Insert or update items by id; returns ``(added, updated)``. Never duplicates an id."""
        before = len(self)
        count = 0
        items = list(items)
        previous = self._keys_of([item.id for item in items])
        with self._conn:
            for item in items:
                box = item.box or (None, None, None, None)
                stored = self._store_path(item.path)
                self._conn.execute(
                    """INSERT INTO items(id, path, category, split, x1, y1, x2, y2, attributes, source, product,
                                         image_key)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(id) DO UPDATE SET path=excluded.path, category=excluded.category,
                         split=excluded.split, x1=excluded.x1, y1=excluded.y1, x2=excluded.x2,
                         y2=excluded.y2, attributes=excluded.attributes, source=excluded.source,
                         product=excluded.product, image_key=excluded.image_key""",
                    (item.id, stored, item.category, item.split, *box,
                     json.dumps(list(item.attributes)), source, item.product, image_key(self.resolve(stored), item.box, previous.get(item.id))),
                )
                count += 1
        added = len(self) - before
        return added, count - added

    def remove(self, item_ids: Iterable[str]) -> int:
        """Delete these items; an unknown id is an error that names it, and then nothing is deleted."""
        wanted = self.check_known(item_ids, "nothing was removed")
        with self._conn:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                self._conn.execute(f"DELETE FROM items WHERE id IN ({','.join('?' * len(part))})", part)
        return len(wanted)

    def check_known(self, item_ids: Iterable[str], consequence: str) -> list[str]:
        """The ids, each once, in order; an error naming the unknown ones (and ``consequence``) if any."""
        wanted = list(dict.fromkeys(item_ids))
        found = self.get_many(wanted)
        missing = [i for i in wanted if i not in found]
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ItemNotFoundError(f"not in the catalogue: {', '.join(map(repr, missing[:10]))}{more}; "
                                    f"{consequence}")
        return wanted

    def image_keys(self) -> dict[str, str]:
        """Item id -> content key (image content hash and box, as last imported); see ``image_key``."""
        rows = self._conn.execute("SELECT id, image_key FROM items WHERE image_key IS NOT NULL")
        return {item_id: content_key(key) for item_id, key in rows.fetchall()}

    def _keys_of(self, item_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start : start + 500])
            rows = self._conn.execute(f"SELECT id, image_key FROM items WHERE id IN ({','.join('?' * len(chunk))})"
                                      " AND image_key IS NOT NULL", chunk)
            out.update(rows.fetchall())
        return out

    def log_import(self, reader: str, source: str, added: int, updated: int, skipped: int) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO imports(reader, source, added, updated, skipped) VALUES (?,?,?,?,?)",
                (reader, source, added, updated, skipped),
            )

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def __contains__(self, item_id: object) -> bool:
        return self._conn.execute("SELECT 1 FROM items WHERE id=?", (item_id,)).fetchone() is not None

    def get(self, item_id: str) -> Item:
        """The item with this id; the error suggests how to find valid ids."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM items WHERE id=?", (item_id,)).fetchone()
        if row is None:
            examples = [r[0] for r in self._conn.execute("SELECT id FROM items ORDER BY id LIMIT 3")]
            hint = f"; ids look like: {', '.join(examples)}" if examples else "; the catalogue is empty"
            raise ItemNotFoundError(f"item {item_id!r} is not in the catalogue ({len(self)} items){hint}")
        return self._row_to_item(row)

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Item]:
        """Items by id (ids not in the catalogue are left out)."""
        out: dict[str, Item] = {}
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(f"SELECT {_COLUMNS} FROM items WHERE id IN ({marks})", chunk):
                item = self._row_to_item(row)
                out[item.id] = item
        return out

    def items(self, *, split: str | None = None, category: str | None = None) -> Iterator[Item]:
        """All items in id order, optionally filtered by split and category."""
        query, args = f"SELECT {_COLUMNS} FROM items WHERE 1=1", []
        if split is not None:
            query += " AND split=?"
            args.append(split)
        if category is not None:
            query += " AND category=?"
            args.append(category)
        for row in self._conn.execute(query + " ORDER BY id", args):
            yield self._row_to_item(row)

    def ids(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT id FROM items ORDER BY id")]

    def category_counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT category, COUNT(*) FROM items GROUP BY category ORDER BY 2 DESC, 1")
        return dict(rows.fetchall())

    def split_counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT COALESCE(split, ''), COUNT(*) FROM items GROUP BY 1 ORDER BY 1")
        return dict(rows.fetchall())

    def resolve(self, path: str) -> Path:
        """Absolute path of an image as stored in the catalogue."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    # -- helpers ---------------------------------------------------------------------------
    def _store_path(self, path: str) -> str:
        p = Path(path).absolute()
        try:
            return p.relative_to(self.root.absolute()).as_posix()
        except ValueError:
            return str(p)

    @staticmethod
    def _row_to_item(row: tuple) -> Item:
        item_id, path, category, split, x1, y1, x2, y2, attributes, product = row
        box = None if x1 is None else (x1, y1, x2, y2)
        return Item(item_id, path, category, split, box, tuple(json.loads(attributes)), product)


def image_key(path: Path, box: tuple[float, float, float, float] | None, previous: str | None = None) -> str | None:
    """An item's image signature, ``size:mtime:content hash:box`` (None if unreadable).

    The content is hashed only when size or modification time differ from ``previous`` (as rsync does), so
    re-importing unchanged files costs a ``stat`` each, and a file rewritten with the same bytes keeps its
    content hash.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    head = f"{st.st_size}:{st.st_mtime_ns}"
    box_text = ",".join(f"{v:g}" for v in box) if box else ""
    if previous and previous.startswith(head + ":"):
        digest = previous.split(":")[2]
    else:
        try:
            digest = hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()
        except OSError:
            return None
    return f"{head}:{digest}:{box_text}"


def content_key(key: str | None) -> str | None:
    """The part of an image key that says what the vector depends on: content hash and box."""
    return None if not key else key.split(":", 2)[2]


_COLUMNS = "id, path, category, split, x1, y1, x2, y2, attributes, product"
