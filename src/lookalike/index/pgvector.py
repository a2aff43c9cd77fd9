"""``pgvector``: the vectors in a PostgreSQL table, searched by PostgreSQL (exact scan or HNSW).

A table per model and metric (``table``), keyed by position: ``vector(d)`` for L1 and L2 (``halfvec(d)``,
float16, for HNSW on 2,001-4,000 dimensions: pgvector's limit for ``vector`` is 2,000), ``bit(d)``
(sign-binarised, as everywhere else) for Hamming. Rows are bulk-loaded with binary ``COPY``, in batches;
``index=hnsw`` builds pgvector's HNSW index (``vector_l1_ops`` / ``vector_l2_ops`` / ``bit_hamming_ops``)
after the first load and PostgreSQL keeps it up to date on later adds; ``index=none`` scans exactly.
Removed items are deleted from the table. Without a ``table`` the index lives in a temporary table of its
connection (evaluation galleries) and cannot be saved.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexMismatchError
from ..metrics import Metric
from .base import Param, VectorIndex
from .registry import register_index

OPERATORS = {Metric.L2: "<->", Metric.L1: "<+>", Metric.HAMMING: "<~>"}
OPCLASSES = {Metric.L2: "l2_ops", Metric.L1: "l1_ops", Metric.HAMMING: "hamming_ops"}  # after the column type
#: pgvector's HNSW limits by column type
HNSW_MAX_DIM = {"vector": 2000, "halfvec": 4000, "bit": 64000}
BATCH = 5000


def column_type(metric: Metric, dim: int, index: str) -> str:
    """``bit`` for Hamming; ``vector`` (float32), or ``halfvec`` (float16) where HNSW needs it (2,001-4,000 dims)."""
    if metric is Metric.HAMMING:
        return "bit"
    if index != "hnsw" or dim <= HNSW_MAX_DIM["vector"]:
        return "vector"
    if dim <= HNSW_MAX_DIM["halfvec"]:
        return "halfvec"
    raise ConfigError(f"pgvector's HNSW indexes vectors of up to {HNSW_MAX_DIM['halfvec']} dimensions (as halfvec); "
                      f"these have {dim}: use --param index=none (exact) or a smaller model")


def table_name(model: str, metric: Metric | str) -> str:
    """A safe, stable table name for a model's index under a metric."""
    safe = re.sub(r"[^a-z0-9_]", "_", model.lower())[:40]
    return f"lookalike_{safe}_{Metric.parse(metric).value}"


@register_index("pgvector")
class PgVectorIndex(VectorIndex):
    """Vectors in PostgreSQL + pgvector; exact (``index=none``) or HNSW."""

    backend = "pgvector"
    exact = False  # HNSW by default; index=none is an exact scan
    filters_removed = True  # removed rows are deleted
    PARAMS = {"db": Param(None, "postgresql:// URL or embedded:PATH", required=True, text=True),
              "table": Param(None, "table name (default: a temporary table)", text=True),
              "shards": Param(None, "comma-separated URLs of the servers that hold the rows (db: the coordinator)",
                              text=True),
              "index": Param("hnsw", "hnsw or none (exact scan)", choices=("hnsw", "none")),
              "m": Param(16, "HNSW graph neighbours per node"),
              "ef_construction": Param(64, "HNSW candidate list while building"),
              "ef_search": Param(40, "HNSW candidate list while searching", search_time=True)}

    def __init__(self, dim: int, metric: Metric | str, **params: Any):
        from ..pg import connect, redact

        super().__init__(dim, metric, **params)
        self.column = column_type(self.metric, self.dim, self.params["index"])
        self.exact = self.params["index"] == "none"
        self.temporary = not self.params["table"]
        self.table = self.params["table"] or f"lookalike_tmp_{secrets.token_hex(6)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", self.table):
            raise ConfigError(f"table must be a lower-case SQL name, got {self.table!r}")
        self._lock = threading.Lock()  # one psycopg connection: one statement at a time
        self.conn = connect(self.params["db"])
        self.shard_urls = [u.strip() for u in (self.params["shards"] or "").split(",") if u.strip()]
        if self.shard_urls and self.temporary:
            raise ConfigError("a sharded pgvector index needs a table name")
        self.shards = []
        try:
            for url in self.shard_urls:  # each: unreachable / no pgvector = one line naming it
                self.shards.append(connect(url))
        except Exception:
            self.close()
            raise
        self.params["db"] = redact(self.params["db"])  # stored with the index: never a password
        self.params["shards"] = ",".join(redact(u) for u in self.shard_urls) or None
        self._ntotal = 0
        self._indexed = False

    # -- schema ---------------------------------------------------------------------------------
    def create_table(self) -> None:
        """A new, empty table (an older one of that name is replaced: the caller rebuilds the index).

        Sharded: each shard gets the table (with a ``shard`` column); the coordinator a table partitioned by
        ``shard`` whose partitions are postgres_fdw foreign tables on the shards, with pgvector's operators
        shippable (``extensions 'vector'``), so each shard sorts by distance itself."""
        columns = f"id bigint PRIMARY KEY, embedding {self.column}({self.dim})"
        if not self.shard_urls:
            kind = "TEMPORARY TABLE" if self.temporary else "TABLE"
            with self._lock:
                self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
                self.conn.execute(f"CREATE {kind} {self.table} ({columns})")
            return
        from psycopg.conninfo import conninfo_to_dict

        from ..pg import resolve_url

        with self._lock:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
            self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.execute(f"CREATE TABLE {self.table} (id bigint, shard int, embedding {self.column}({self.dim})) "
                              "PARTITION BY LIST (shard)")
            for n, (url, shard) in enumerate(zip(self.shard_urls, self.shards)):
                shard.execute(f"DROP TABLE IF EXISTS {self.table}")
                shard.execute(f"CREATE TABLE {self.table} (id bigint PRIMARY KEY, shard int, "
                              f"embedding {self.column}({self.dim}))")
                info = conninfo_to_dict(resolve_url(url))
                server = f"{self.table}_shard{n}"
                options = {k: str(info[k]) for k in ("host", "port", "dbname") if info.get(k)}
                options.update({"extensions": "vector", "async_capable": "true"})
                self.conn.execute(f"DROP SERVER IF EXISTS {server} CASCADE")
                self.conn.execute(f"CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ("
                                  + ", ".join(f"{k} {_quote(v)}" for k, v in options.items()) + ")")
                mapping = {k: str(info[k]) for k in ("user", "password") if info.get(k)}
                self.conn.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER {server}"
                                  + (" OPTIONS (" + ", ".join(f"{k} {_quote(v)}" for k, v in mapping.items()) + ")"
                                     if mapping else ""))
                self.conn.execute(f"CREATE FOREIGN TABLE {self.table}_p{n} PARTITION OF {self.table} FOR VALUES IN "
                                  f"({n}) SERVER {server} OPTIONS (table_name {_quote(self.table)})")

    def _ensure_index(self) -> None:
        if self._indexed:
            return
        if self.params["index"] == "hnsw":
            sql = (f"CREATE INDEX IF NOT EXISTS {self.table}_hnsw ON {self.table} USING hnsw (embedding "
                   f"{self.column}_{OPCLASSES[self.metric]}) WITH (m = {int(self.params['m'])}, "
                   f"ef_construction = {int(self.params['ef_construction'])})")
            # the graph is built in memory when it fits (pgvector's advice): about 1.5 x the vectors' size
            memory = int(min(8 << 30, max(64 << 20, 1.5 * self._ntotal * self.dim * 4 / max(len(self.shards), 1))))
            with self._lock:
                for conn in self.shards or [self.conn]:  # sharded: each shard indexes its own rows
                    conn.execute(f"SET maintenance_work_mem = '{memory // (1 << 20)}MB'")
                    conn.execute(sql)
                    if self.shards:  # postgres_fdw's sessions read the search setting from the shard's database
                        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET hnsw.ef_search = "
                                     f"{int(self.params['ef_search'])}")
        self._indexed = True

    # -- VectorIndex ------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return self._ntotal

    def _add(self, vectors: np.ndarray) -> None:
        if self._ntotal == 0 and not self._indexed:
            self.create_table()
        for start in range(0, len(vectors), BATCH):
            block = vectors[start : start + BATCH]
            ids = np.arange(self._ntotal + start, self._ntotal + start + len(block), dtype=np.int64)
            if not self.shards:
                with self._lock, self.conn.cursor() as cur:
                    with cur.copy(f"COPY {self.table} (id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(self._copy_data(ids, block))
                continue
            for n, shard in enumerate(self.shards):  # straight to the shard that holds them (id mod shards)
                mine = ids % len(self.shards) == n
                with self._lock, shard.cursor() as cur:
                    with cur.copy(f"COPY {self.table} (id, shard, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.write(self._copy_data(ids[mine], block[mine], shard=n))
        self._ntotal += len(vectors)

    def _copy_data(self, ids: np.ndarray, vectors: np.ndarray, shard: int | None = None) -> bytes:
        """PostgreSQL's binary COPY stream for (id[, shard], embedding) rows, built with numpy."""
        n, d = vectors.shape
        head = [("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8")]
        if shard is not None:
            head += [("shard_len", ">i4"), ("shard", ">i4")]
        if self.metric is Metric.HAMMING:
            bits = np.packbits(vectors > 0, axis=1)
            rows = np.empty(n, head + [("len", ">i4"), ("bit_len", ">i4"), ("bits", "u1", (bits.shape[1],))])
            rows["len"], rows["bit_len"], rows["bits"] = 4 + bits.shape[1], d, bits
        else:
            kind, size = (">f2", 2) if self.column == "halfvec" else (">f4", 4)
            rows = np.empty(n, head + [("len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("values", kind, (d,))])
            rows["len"], rows["dim"], rows["unused"], rows["values"] = 4 + size * d, d, 0, vectors
        rows["fields"], rows["id_len"], rows["id"] = 2 if shard is None else 3, 8, ids
        if shard is not None:
            rows["shard_len"], rows["shard"] = 4, shard
        header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
        return header + rows.tobytes() + (-1).to_bytes(2, "big", signed=True)

    def _literal(self, query: np.ndarray) -> str:
        if self.metric is Metric.HAMMING:
            return "".join("1" if x > 0 else "0" for x in query)
        return "[" + ",".join(repr(float(x)) for x in query) + "]"

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._ensure_index()
        out_d = np.full((len(queries), k), np.inf, np.float32)
        out_i = np.full((len(queries), k), -1, np.int64)
        sql, per_query = self._search_sql()
        import psycopg

        with self._lock, self.conn.cursor() as cur:
            if self.params["index"] == "hnsw":
                cur.execute(f"SET hnsw.ef_search = {max(int(self.params['ef_search']), k)}")
            for n, query in enumerate(queries):
                literal = self._literal(query)
                try:
                    rows = cur.execute(sql, per_query(literal, k)).fetchall()
                except psycopg.OperationalError as exc:  # a shard that is down: never partial results
                    raise ConfigError(f"search failed, a shard is unreachable: {_first_line(exc)}") from None
                for j, (pos, dist) in enumerate(rows):
                    out_i[n, j], out_d[n, j] = pos, dist
        return out_d, out_i

    def _search_sql(self):
        """The search statement and its parameters for (query literal, k).

        One node: ``ORDER BY distance LIMIT k`` on the table. Sharded: the same on each foreign partition, in a
        UNION ALL the coordinator merges (postgres_fdw sends each branch whole, ORDER BY and LIMIT included, to
        its shard, and runs the branches at once: ``async_capable``)."""
        op, cast = OPERATORS[self.metric], f"{self.column}({self.dim})"
        if not self.shards:
            sql = (f"SELECT id, embedding {op} %(q)s::{cast} AS d FROM {self.table} "
                   f"ORDER BY embedding {op} %(q)s::{cast} LIMIT %(k)s")
        else:
            branches = [f"(SELECT id, embedding {op} %(q)s::{cast} AS d FROM {self.table}_p{n} "
                        f"ORDER BY embedding {op} %(q)s::{cast} LIMIT %(k)s)" for n in range(len(self.shards))]
            sql = "SELECT id, d FROM (" + " UNION ALL ".join(branches) + ") AS hits ORDER BY d LIMIT %(k)s"
        return sql, lambda literal, k: {"q": literal, "k": k}

    def explain(self, query: np.ndarray, k: int = 10) -> str:
        """``EXPLAIN VERBOSE`` of one search (sharded: shows the ORDER BY ... LIMIT sent to each shard)."""
        sql, per_query = self._search_sql()
        with self._lock:
            rows = self.conn.execute("EXPLAIN VERBOSE " + sql,
                                     per_query(self._literal(np.asarray(query).ravel()), k)).fetchall()
        return "\n".join(r[0] for r in rows)

    def _removed_changed(self) -> None:
        with self._lock:
            self.conn.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", (self.removed.tolist(),))

    def _save(self, directory: Path) -> None:
        if self.temporary:
            raise ConfigError("this pgvector index lives in a temporary table; build it with a table to save it")
        self._ensure_index()
        tmp = directory / "pgvector.json.tmp"
        tmp.write_text(json.dumps({"table": self.table, "ntotal": self._ntotal, "db": self.params["db"]}))
        tmp.replace(directory / "pgvector.json")

    @classmethod
    def _load(cls, directory: Path, dim: int, metric: Metric, params: dict[str, Any]) -> PgVectorIndex:
        saved = json.loads((directory / "pgvector.json").read_text())
        index = cls(dim, metric, **{**params, "table": saved["table"]})  # connects to the coordinator and shards
        row = index.conn.execute("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE "
                                 "a.attrelid = to_regclass(%s) AND a.attname = 'embedding'", (index.table,)).fetchone()
        if row is None or row[0] != f"{index.column}({dim})":
            index.close()
            if row is None:
                raise ConfigError(f"the index table {index.table} is missing from {saved['db']}; rebuild it with "
                                  "lookalike index")
            raise IndexMismatchError(f"table {index.table} holds {row[0]}, but this index is {index.column}({dim})")
        index._ntotal, index._indexed = int(saved["ntotal"]), True
        return index

    def close(self) -> None:
        """Close the connections (a temporary table goes with them)."""
        for conn in [getattr(self, "conn", None), *getattr(self, "shards", [])]:
            if conn is not None and not conn.closed:
                conn.close()

    def __del__(self) -> None:
        self.close()

    def memory_bytes(self) -> int:
        """Bytes on disk of the table and its index (every shard's, when sharded)."""
        with self._lock:
            return sum(int(conn.execute("SELECT pg_total_relation_size(%s)", (self.table,)).fetchone()[0])
                       for conn in self.shards or [self.conn])


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
