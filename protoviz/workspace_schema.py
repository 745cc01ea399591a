"""The workspace's SQLite schema (version :data:`SCHEMA_VERSION`) and the migration from older versions.

Version history (``PRAGMA user_version``):

1. runs, blobs, kept models and jobs, all shared by every user of the file.
2. Every run, kept model and job has an ``owner`` (:mod:`protoviz.owners`) and is seen only by it; a
   run is unique per (owner, kind, model sha256, dataset fingerprint, settings), a model name per owner.
   The jobs column that named the process running a job is renamed from ``owner`` to ``process``.

:func:`migrate` upgrades a version-1 file in place, in one transaction (an interrupted migration leaves
the version-1 file as it was): its runs, models and jobs go to :data:`~protoviz.owners.LOCAL_OWNER`,
the owner of the command line and of a shared dashboard, so nothing kept before is lost. Ids, blobs
and model files are kept as they are. A version-2 file cannot be read by a protoviz that knows only
version 1: it refuses it as "written by a newer protoviz" and leaves it untouched.
"""

from __future__ import annotations

import re
import sqlite3

from protoviz.owners import LOCAL_OWNER

SCHEMA_VERSION = 2
APPLICATION_ID = 0x50765A31  # "PvZ1"
TABLES = frozenset({"runs", "blobs", "models", "jobs"})

RUNS = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,                 -- see protoviz.owners; every query filters on it
    kind TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,              -- canonical JSON (sorted keys, no spaces)
    result_type TEXT NOT NULL,           -- payload type name, see protoviz.payload.decode
    data TEXT NOT NULL,                  -- JSON
    tables TEXT NOT NULL,                -- JSON {name: [row, ...]}
    provenance TEXT NOT NULL,            -- JSON
    model_name TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    stored_at REAL NOT NULL,             -- seconds since the epoch
    size_bytes INTEGER NOT NULL,         -- JSON + blobs
    UNIQUE (owner, kind, model_sha256, dataset_fingerprint, settings)
);
"""
BLOBS = """
CREATE TABLE blobs (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""
MODELS = """
CREATE TABLE models (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    file TEXT NOT NULL,                  -- relative to PROTOVIZ_HOME: models/<owner folder>/<sha256>/<file name>
    size_bytes INTEGER NOT NULL,
    family TEXT,                         -- the user's family hint; NULL = detect
    class_names TEXT,                    -- JSON list; NULL = the checkpoint's own
    sources TEXT,                        -- JSON: prototype sources attached; NULL = none
    hints TEXT NOT NULL,                 -- JSON: other loading hints
    added_at REAL NOT NULL,
    PRIMARY KEY (owner, name)
);
"""
JOBS = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,                 -- whose job it is (see protoviz.owners)
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    model_name TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'stopped', 'interrupted')),
    message TEXT NOT NULL,
    progress TEXT,                       -- JSON ProgressReading, NULL before the first unit
    run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
    cached INTEGER NOT NULL,             -- 1: served from the store without running
    process TEXT NOT NULL,               -- host:pid:token of the process that runs it
    heartbeat_at REAL NOT NULL,          -- last sign of life of that process (see protoviz.jobs)
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
"""
INDEXES = """
CREATE INDEX runs_by_owner ON runs (owner, stored_at);
CREATE INDEX runs_by_model ON runs (owner, model_sha256);
CREATE INDEX models_by_file ON models (file);
CREATE INDEX jobs_by_state ON jobs (state);
CREATE INDEX jobs_by_owner ON jobs (owner, created_at);
"""
SCHEMA = RUNS + BLOBS + MODELS + JOBS + INDEXES

# Version 1 -> 2: each rebuilt table, with the expression each of its columns is filled from.
_FROM_V1 = {
    "runs": (RUNS, {"owner": "?"}),
    "models": (MODELS, {"owner": "?"}),
    "jobs": (JOBS, {"owner": "?", "process": "owner"}),
}


def migrate(con: sqlite3.Connection, version: int) -> None:
    """Inside a write transaction with foreign keys off: upgrade the schema from ``version`` to the current one.

    Raises sqlite3.Error (the caller rolls back) if the file does not have the expected shape.
    """
    if version != 1:
        raise sqlite3.DatabaseError(f"no migration from workspace schema {version}")
    for table, (create, sources) in _FROM_V1.items():
        columns = _columns(create)
        con.execute(_renamed(create, table, f"{table}_v2"))
        select = ", ".join(sources.get(column, column) for column in columns)
        con.execute(f"INSERT INTO {table}_v2 ({', '.join(columns)}) SELECT {select} FROM {table}",
                    (LOCAL_OWNER,) * sum(s == "?" for s in sources.values()))
        sequence = con.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        con.execute(f"DROP TABLE {table}")
        con.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
        if sequence is not None:  # AUTOINCREMENT: never give a new run the id of a deleted one
            con.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (sequence[0], table))
    for statement in filter(str.strip, INDEXES.split(";")):
        con.execute(statement)
    problems = con.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise sqlite3.DatabaseError(f"{len(problems)} row(s) point at runs that do not exist")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _columns(create: str) -> list[str]:
    """The column names of a CREATE TABLE statement of this module (one column per line)."""
    names = [re.match(r"\s*(\w+)\s", line) for line in create.splitlines()[2:]]
    return [m.group(1) for m in names if m and m.group(1) not in {"UNIQUE", "PRIMARY"}]


def _renamed(create: str, table: str, new: str) -> str:
    return create.replace(f"CREATE TABLE {table} (", f"CREATE TABLE {new} (", 1)
