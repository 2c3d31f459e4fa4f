"""The run journal: a SQLite database (write-ahead log) in the run directory.

It makes runs crash-safe and keeps them from paying twice:

* every submission is written under its idempotency key (run/round/client/step) *before* it is
  sent, and its provider job id right after;
* every result is stored when it arrives, so a resumed run reads it instead of re-running it;
* every finished round commits one checkpoint (global parameters, client optimizer states,
  random states, ledger, metrics rows) in one transaction;
* retries, dropouts and other events are appended to an event log;
* the run's nonce (a random id made once, when the journal is created) is kept in ``meta``, so
  a resumed run tags its jobs exactly as the first process did, and no other run ever matches.

Readers that must not disturb a live run (``qflhw watch``, the dashboard) use
:func:`read_submissions`: a read-only URI connection and one short read transaction, which
never blocks the writer in WAL mode. The tables are documented in ``docs/run-directory.md``.

Nothing secret is ever written here: keys are built from the spec name, seed, round, client and
step; results are numbers.
"""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qflhw.devices.base import BatchResult, pack_result, unpack_result

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    key TEXT PRIMARY KEY, client TEXT, device TEXT, status TEXT NOT NULL,
    job_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, created REAL, updated REAL, error TEXT
);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, job_id TEXT, payload BLOB NOT NULL, created REAL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    round INTEGER PRIMARY KEY, payload BLOB NOT NULL, created REAL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, kind TEXT, client TEXT, key TEXT, message TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY, value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Submission:
    key: str
    status: str  # pending | submitted | done | failed
    job_id: str | None
    attempts: int


class Journal:
    """One run's journal; safe to share between the client threads of a run."""

    FILENAME = "journal.sqlite"

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / self.FILENAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def nonce(self) -> str:
        """This run's nonce: made once (12 hex digits), then read back by every later process."""
        self._write("INSERT OR IGNORE INTO meta (name, value) VALUES ('nonce', ?)", (uuid.uuid4().hex[:12],))
        return self._read("SELECT value FROM meta WHERE name = 'nonce'")[0][0]

    def _write(self, sql: str, args: tuple) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------ submissions
    def submission(self, key: str) -> Submission | None:
        rows = self._read("SELECT key, status, job_id, attempts FROM submissions WHERE key = ?", (key,))
        return Submission(*rows[0]) if rows else None

    def pending(self, key: str, client: str, device: str) -> int:
        """Record that ``key`` is about to be sent; returns the attempt number (1 for the first)."""
        now = time.time()
        self._write(
            "INSERT INTO submissions (key, client, device, status, attempts, created, updated) "
            "VALUES (?, ?, ?, 'pending', 1, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET status='pending', job_id=NULL, attempts=attempts+1, updated=?",
            (key, client, device, now, now, now),
        )
        return self.submission(key).attempts  # type: ignore[union-attr]

    def submitted(self, key: str, job_id: str) -> None:
        self._write(
            "UPDATE submissions SET status='submitted', job_id=?, updated=? WHERE key=?", (job_id, time.time(), key)
        )

    def failed(self, key: str, error: str) -> None:
        self._write("UPDATE submissions SET status='failed', error=?, updated=? WHERE key=?", (error, time.time(), key))

    # ------------------------------------------------------------ results
    def store_result(self, key: str, result: BatchResult) -> None:
        payload = pack_result(result)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO results (key, job_id, payload, created) VALUES (?, ?, ?, ?)",
                    (key, result.job_id, payload, now),
                )
                self._db.execute(
                    "UPDATE submissions SET status='done', job_id=?, updated=? WHERE key=?", (result.job_id, now, key)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def result(self, key: str) -> BatchResult | None:
        rows = self._read("SELECT payload FROM results WHERE key = ?", (key,))
        return unpack_result(rows[0][0]) if rows else None

    # ------------------------------------------------------------ checkpoints and events
    def checkpoint(self, round_: int, state: dict[str, Any]) -> None:
        """Commit the state after ``round_`` atomically (one transaction)."""
        self._write(
            "INSERT OR REPLACE INTO checkpoints (round, payload, created) VALUES (?, ?, ?)",
            (round_, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), time.time()),
        )

    def latest_checkpoint(self) -> tuple[int, dict[str, Any]] | None:
        rows = self._read("SELECT round, payload FROM checkpoints ORDER BY round DESC LIMIT 1")
        return (rows[0][0], pickle.loads(rows[0][1])) if rows else None

    def event(self, kind: str, message: str, *, client: str = "", key: str = "") -> None:
        self._write(
            "INSERT INTO events (time, kind, client, key, message) VALUES (?, ?, ?, ?, ?)",
            (time.time(), kind, client, key, message),
        )

    def events(self, kind: str | None = None) -> list[tuple[str, str, str, str]]:
        sql = "SELECT kind, client, key, message FROM events"
        return self._read(sql + (" WHERE kind = ? ORDER BY id" if kind else " ORDER BY id"), (kind,) if kind else ())

    def attempts(self) -> dict[str, int]:
        return dict(self._read("SELECT key, attempts FROM submissions"))


def read_submissions(run_dir: Path) -> list[dict[str, Any]]:
    """The ``submissions`` table of a run's journal, oldest first, read without disturbing its writer.

    The connection is read-only (``mode=ro``) and reads in one short transaction, so a running
    writer is never blocked. It is never ``immutable=1``: that skips the write-ahead log and
    misses what a live run has committed. SQLite's WAL needs shared memory, so on a network mount
    read ``events.jsonl`` instead. Returns [] when there is no journal.
    """
    path = Path(run_dir).resolve() / Journal.FILENAME
    if not path.is_file():
        return []
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=1.0)
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT key, client, device, status, job_id, attempts, created, updated, error FROM submissions ORDER BY created"
        ).fetchall()
    except sqlite3.OperationalError:  # a journal created but without tables yet
        return []
    finally:
        db.close()
    return [dict(r) for r in rows]
