"""Votes are data: the Dope-or-Nope store (SQLite in the workspace, or PostgreSQL by URL).

Every pair the game shows is *issued* first (a row in ``pairs``, bound to the player's anonymous
session); a vote must answer an issued, unused pair of that same session, and using it is one
atomic ``UPDATE ... WHERE used_at IS NULL``, so each pair gets exactly one vote and nobody can vote
for a system of their choosing. The schema evolves by numbered migrations (``schema_migrations``).
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import ConfigError

#: Numbered migrations; each runs once, in order, inside a transaction.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = []


def migration(version: int, description: str):
    def register(func: Callable[[Connection], None]):
        MIGRATIONS.append((version, description, func))
        return func

    return register


@migration(1, "pairs issued to sessions, and single-system votes")
def _v1(conn: Connection) -> None:
    conn.execute(sa.text("""
        CREATE TABLE pairs (
            id          VARCHAR(64) PRIMARY KEY,
            kind        VARCHAR(8)  NOT NULL,          -- 'single' or 'duel'
            session     VARCHAR(64) NOT NULL,
            query_item  TEXT        NOT NULL,
            system_a    VARCHAR(200) NOT NULL,
            match_a     TEXT        NOT NULL,
            system_b    VARCHAR(200),
            match_b     TEXT,
            issued_at   DOUBLE PRECISION NOT NULL,
            used_at     DOUBLE PRECISION
        )"""))
    conn.execute(sa.text("CREATE INDEX pairs_session ON pairs(session)"))
    conn.execute(sa.text("""
        CREATE TABLE votes (
            pair_id     VARCHAR(64) PRIMARY KEY REFERENCES pairs(id),
            voted_at    DOUBLE PRECISION NOT NULL,
            session     VARCHAR(64) NOT NULL,
            system      VARCHAR(200) NOT NULL,
            query_item  TEXT        NOT NULL,
            match_item  TEXT        NOT NULL,
            verdict     VARCHAR(8)  NOT NULL CHECK (verdict IN ('dope', 'nope'))
        )"""))
    conn.execute(sa.text("CREATE INDEX votes_system ON votes(system)"))


@migration(2, "head-to-head duels")
def _v2(conn: Connection) -> None:
    conn.execute(sa.text("""
        CREATE TABLE duels (
            pair_id     VARCHAR(64) PRIMARY KEY REFERENCES pairs(id),
            voted_at    DOUBLE PRECISION NOT NULL,
            session     VARCHAR(64) NOT NULL,
            query_item  TEXT        NOT NULL,
            system_a    VARCHAR(200) NOT NULL,
            match_a     TEXT        NOT NULL,
            system_b    VARCHAR(200) NOT NULL,
            match_b     TEXT        NOT NULL,
            winner      VARCHAR(1)  NOT NULL CHECK (winner IN ('a', 'b'))
        )"""))


@migration(3, "flags: votes left out of the published leaderboard (e.g. the voter looked the pair up first)")
def _v3(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE votes ADD COLUMN flag VARCHAR(32)"))
    conn.execute(sa.text("ALTER TABLE duels ADD COLUMN flag VARCHAR(32)"))


@migration(4, "where a match ranked in its system's results (the game explores beyond the top match), and the "
              "features that made it")
def _v4(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE pairs ADD COLUMN match_rank INTEGER"))
    conn.execute(sa.text("ALTER TABLE pairs ADD COLUMN features VARCHAR(200)"))


#: Votes the published leaderboard counts: on a system's own top match (exploration pairs teach tastes)
TOP_MATCH = "(p.match_rank IS NULL OR p.match_rank = 1)"


class VoteError(Exception):
    """A vote that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pair:
    id: str
    kind: str
    session: str
    query_item: str
    system_a: str
    match_a: str
    system_b: str | None = None
    match_b: str | None = None
    match_rank: int = 1


class VoteStore:
    """Issue pairs, record votes exactly once, read them back."""

    def __init__(self, url: str, *, pair_ttl_s: float = 3600.0):
        if "://" not in url:
            raise ConfigError(f"--db must be a database URL (sqlite:///path or postgresql://...), got {url!r}")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        self.url = url
        self.pair_ttl_s = pair_ttl_s
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_size"] = 10
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ConfigError(f"cannot use database {url!r}: {exc}") from None
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _wal(dbapi_conn, _record):  # noqa: ANN001
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")
                dbapi_conn.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    # -- schema ------------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; returns the versions applied."""
        applied = []
        with self.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                                 "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"))
        for version, description, func in sorted(MIGRATIONS):
            with self.engine.begin() as conn:
                done = conn.execute(sa.text("SELECT 1 FROM schema_migrations WHERE version = :v"),
                                    {"v": version}).first()
                if done:
                    continue
                func(conn)
                conn.execute(sa.text("INSERT INTO schema_migrations VALUES (:v, :d, :t)"),
                             {"v": version, "d": description, "t": time.time()})
                applied.append(version)
        return applied

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")).scalar())

    # -- pairs -------------------------------------------------------------------------------
    def issue(self, kind: str, session: str, query_item: str, system_a: str, match_a: str,
              system_b: str | None = None, match_b: str | None = None, *, match_rank: int = 1,
              features: str | None = None) -> Pair:
        """Record a pair shown to ``session``. ``match_rank``: where the match stood in its system's results (the
        leaderboard counts rank 1 only); ``features``: the fingerprint(s) of the features that made the match(es)."""
        pair = Pair(secrets.token_urlsafe(18), kind, session, query_item, system_a, match_a, system_b, match_b,
                    match_rank)
        with self.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO pairs (id, kind, session, query_item, system_a, match_a, system_b, "
                                 "match_b, issued_at, match_rank, features) VALUES (:id, :kind, :session, :q, :sa, "
                                 ":ma, :sb, :mb, :t, :r, :f)"),
                         {"id": pair.id, "kind": kind, "session": session, "q": query_item, "sa": system_a,
                          "ma": match_a, "sb": system_b, "mb": match_b, "t": time.time(), "r": match_rank,
                          "f": features})
        return pair

    def pair_items(self, pair_id: str) -> list[str]:
        """The query and match items of an issued pair (empty when there is no such pair)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT query_item, match_a, match_b FROM pairs WHERE id = :id"),
                               {"id": pair_id}).first()
        return [] if row is None else [i for i in row if i is not None]

    def purge_expired(self) -> int:
        """Delete pairs never voted on whose time to live has passed; returns how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(sa.text("DELETE FROM pairs WHERE used_at IS NULL AND issued_at < :t"),
                                    {"t": time.time() - self.pair_ttl_s}).rowcount)

    def count_pairs(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM pairs")).scalar())

    def _claim(self, conn: Connection, pair_id: str, session: str, kind: str) -> Pair:
        """Mark the pair used (atomically) and return it; errors say why a vote is refused."""
        now = time.time()
        row = conn.execute(sa.text("SELECT id, kind, session, query_item, system_a, match_a, system_b, match_b, "
                                   "issued_at, used_at, match_rank FROM pairs WHERE id = :id"), {"id": pair_id}).first()
        if row is None or row.session != session or row.kind != kind:
            raise VoteError("this pair was not issued to your session", 403)
        if row.used_at is not None:
            raise VoteError("this pair has already been voted on", 409)
        if now - row.issued_at > self.pair_ttl_s:
            raise VoteError("this pair has expired; load a new one", 410)
        claimed = conn.execute(sa.text("UPDATE pairs SET used_at = :t WHERE id = :id AND used_at IS NULL"),
                               {"t": now, "id": pair_id}).rowcount
        if claimed != 1:  # another request won the race
            raise VoteError("this pair has already been voted on", 409)
        return Pair(row.id, row.kind, row.session, row.query_item, row.system_a, row.match_a, row.system_b,
                    row.match_b, row.match_rank or 1)

    def vote(self, pair_id: str, session: str, verdict: str, *, flag: str | None = None) -> Pair:
        """Record dope / nope for an issued single pair; returns the pair (revealing its system). A ``flag``
        (why the vote is suspect) keeps it out of the published tallies, never out of the data."""
        if verdict not in ("dope", "nope"):
            raise VoteError("verdict must be 'dope' or 'nope'", 422)
        return self._record(pair_id, session, "single", "INSERT INTO votes (pair_id, voted_at, session, system, "
                            "query_item, match_item, verdict, flag) VALUES (:p, :t, :s, :sa, :q, :ma, :v, :f)",
                            verdict, flag)

    def duel(self, pair_id: str, session: str, winner: str, *, flag: str | None = None) -> Pair:
        """Record which of two systems' matches is better for an issued duel."""
        if winner not in ("a", "b"):
            raise VoteError("winner must be 'a' or 'b'", 422)
        return self._record(pair_id, session, "duel", "INSERT INTO duels (pair_id, voted_at, session, query_item, "
                            "system_a, match_a, system_b, match_b, winner, flag) VALUES (:p, :t, :s, :q, :sa, :ma, "
                            ":sb, :mb, :v, :f)", winner, flag)

    def _record(self, pair_id: str, session: str, kind: str, insert: str, value: str, flag: str | None) -> Pair:
        """Claim the pair and insert its vote in one transaction: both happen, or neither."""
        with self.engine.begin() as conn:
            pair = self._claim(conn, pair_id, session, kind)
            conn.execute(sa.text(insert), {"p": pair.id, "t": time.time(), "s": session, "q": pair.query_item,
                                           "sa": pair.system_a, "ma": pair.match_a, "sb": pair.system_b,
                                           "mb": pair.match_b, "v": value, "f": flag})
        return pair

    # -- reading -----------------------------------------------------------------------------
    def tallies(self, *, flagged: bool = False) -> dict[str, tuple[int, int]]:
        """``{system: (dope votes, all votes)}`` of the unflagged votes on systems' top matches (``flagged``: of the
        flagged ones). Votes on exploration pairs (a lower-ranked match) are data for learning, not for ranking."""
        where = "v.flag IS NOT NULL" if flagged else "v.flag IS NULL"
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT v.system, SUM(CASE WHEN v.verdict = 'dope' THEN 1 ELSE 0 END), "
                                        f"COUNT(*) FROM votes v JOIN pairs p ON p.id = v.pair_id WHERE {where} AND "
                                        f"{TOP_MATCH} GROUP BY v.system")).all()
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def duel_outcomes(self, *, flagged: bool = False) -> list[tuple[str, str, str]]:
        """``[(system_a, system_b, winner)]`` of every unflagged duel (``flagged``: of the flagged ones)."""
        where = "flag IS NOT NULL" if flagged else "flag IS NULL"
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT system_a, system_b, winner FROM duels "
                                                           f"WHERE {where}"))]

    def flag_counts(self) -> dict[str, int]:
        """``{flag: votes and duels}`` left out of the published leaderboard."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT flag, COUNT(*) FROM (SELECT flag FROM votes UNION ALL SELECT flag "
                                        "FROM duels) f WHERE flag IS NOT NULL GROUP BY flag")).all()
        return {r[0]: int(r[1]) for r in rows}

    def revision(self) -> tuple[int, int]:
        """Changes whenever a vote or duel is recorded (keys caches of the leaderboard)."""
        with self.engine.connect() as conn:
            return (int(conn.execute(sa.text("SELECT COUNT(*) FROM votes")).scalar()),
                    int(conn.execute(sa.text("SELECT COUNT(*) FROM duels")).scalar()))

    def count_votes(self, session: str | None = None) -> int:
        """Verdicts recorded (``session``: of that session only)."""
        with self.engine.connect() as conn:
            if session is None:
                return int(conn.execute(sa.text("SELECT COUNT(*) FROM votes")).scalar())
            return int(conn.execute(sa.text("SELECT (SELECT COUNT(*) FROM votes WHERE session = :s) + "
                                            "(SELECT COUNT(*) FROM duels WHERE session = :s)"), {"s": session}).scalar())

    def judgements(self, *, systems: list[str] | None = None, sessions: list[str] | None = None,
                   include_flagged: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Verdicts and duels to learn from, oldest first: ``(verdicts, duels)`` as dicts.

        A verdict has ``session, voted_at, system, query_item, match_item, verdict, match_rank, features``; a duel
        ``session, voted_at, query_item, system_a, match_a, system_b, match_b, winner, features``. ``systems``: pairs
        shown by those systems only (a duel counts when either side is one); ``sessions``: those players only.
        Flagged votes are left out unless ``include_flagged``. Read only: learning never edits votes.
        """
        out = []
        for sql in ("SELECT v.session, v.voted_at, v.system, v.query_item, v.match_item, v.verdict, p.match_rank, "
                    "p.features, v.flag FROM votes v JOIN pairs p ON p.id = v.pair_id ORDER BY v.voted_at",
                    "SELECT d.session, d.voted_at, d.query_item, d.system_a, d.match_a, d.system_b, d.match_b, "
                    "d.winner, p.features, d.flag FROM duels d JOIN pairs p ON p.id = d.pair_id ORDER BY d.voted_at"):
            with self.engine.connect() as conn:
                rows = [row._asdict() for row in conn.execute(sa.text(sql))]
            out.append([r for r in rows
                        if (include_flagged or r["flag"] is None)
                        and (sessions is None or r["session"] in sessions)
                        and (systems is None or bool({r.get("system"), r.get("system_a"), r.get("system_b")}
                                                     & set(systems)))])
        return out[0], out[1]

    def iter_votes(self, session_as: Callable[[str], str] | None = None) -> Iterator[dict[str, Any]]:
        """Every vote, oldest first; ``session_as`` replaces session ids (e.g. by pseudonyms for the public)."""
        with self.engine.connect() as conn:
            for kind, sql in (("single", "SELECT pair_id, voted_at, session, system, query_item, match_item, verdict, "
                                         "flag FROM votes ORDER BY voted_at"),
                              ("duel", "SELECT pair_id, voted_at, session, system_a, match_a, system_b, match_b, "
                                       "query_item, winner, flag FROM duels ORDER BY voted_at")):
                for row in conn.execute(sa.text(sql)):
                    vote = {"kind": kind, **row._asdict()}
                    if session_as is not None:
                        vote["session"] = session_as(vote["session"])
                    yield vote

    def export_jsonl(self, session_as: Callable[[str], str] | None = None) -> str:
        return "".join(json.dumps(v, default=str) + "\n" for v in self.iter_votes(session_as))

    def export_csv(self, session_as: Callable[[str], str] | None = None) -> str:
        fields = ["kind", "pair_id", "voted_at", "session", "query_item", "system", "match_item", "verdict",
                  "system_a", "match_a", "system_b", "match_b", "winner", "flag"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for vote in self.iter_votes(session_as):
            writer.writerow(vote)
        return buffer.getvalue()

    def close(self) -> None:
        self.engine.dispose()
