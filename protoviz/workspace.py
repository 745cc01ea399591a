"""The workspace: results and added models that outlive the page and the server, in one SQLite file.

Where: ``$PROTOVIZ_HOME/workspace.sqlite`` (default ``~/.protoviz``); added checkpoints are copied to
``$PROTOVIZ_HOME/models/<sha256>/<file name>``. The file is in WAL mode (readers never wait for the
writer); every write is one ``BEGIN IMMEDIATE`` transaction behind a lock, so threads and processes
write safely one at a time. Keep PROTOVIZ_HOME on a local disk (WAL needs shared memory).

A run is keyed by :class:`RunKey` (kind, model sha256, dataset fingerprint, canonical settings JSON):
the same request twice finds the stored run (``cached=True`` on the returned :class:`RunRecord`).
The models users added are ``workspace.models`` (:mod:`protoviz.kept_models`).

Safety: a file that is not a protoviz workspace, is damaged, or was written by a newer protoviz
raises :class:`~protoviz.errors.WorkspaceError` and is never written to. Sizes are bounded
(:class:`WorkspaceLimits`: per blob, per model file, in total); a write over a bound is refused, never
evicting anything. Stored model paths are resolved inside PROTOVIZ_HOME only.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`, ``application_id`` = :data:`APPLICATION_ID`):
see :data:`SCHEMA`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from protoviz.errors import WorkspaceError
from protoviz.kept_models import ModelStore, StoredModel
from protoviz.payload import Payload, Storable, as_payload, canonical_json, dumps, export_clean, rows_csv

DB_NAME = "workspace.sqlite"
SCHEMA_VERSION = 1
APPLICATION_ID = 0x50765A31  # "PvZ1"
BUSY_TIMEOUT_S = 30.0
MB = 1 << 20

SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    UNIQUE (kind, model_sha256, dataset_fingerprint, settings)
);
CREATE INDEX runs_by_model ON runs (model_sha256);
CREATE TABLE blobs (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    file TEXT NOT NULL,                  -- relative to PROTOVIZ_HOME: models/<sha256>/<file name>
    size_bytes INTEGER NOT NULL,
    family TEXT,                         -- the user's family hint; NULL = detect
    class_names TEXT,                    -- JSON list; NULL = the checkpoint's own
    sources TEXT,                        -- JSON: prototype sources attached; NULL = none
    hints TEXT NOT NULL,                 -- JSON: other loading hints
    added_at REAL NOT NULL
);
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
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
    owner TEXT NOT NULL,                 -- host:pid:token of the process that runs it
    heartbeat_at REAL NOT NULL,          -- last sign of life of that process (see protoviz.jobs)
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX jobs_by_state ON jobs (state);
"""
_TABLES = {"runs", "blobs", "models", "jobs"}


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$PROTOVIZ_HOME``, else ``~/.protoviz``."""
    env = os.environ if env is None else env
    value = env.get("PROTOVIZ_HOME", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".protoviz"


@dataclass(frozen=True)
class WorkspaceLimits:
    """Size bounds. ``max_blob_bytes`` bounds each blob and each JSON document of a run,
    ``max_model_bytes`` each added checkpoint, ``max_total_bytes`` runs + model files together."""

    max_blob_bytes: int = 64 * MB
    max_model_bytes: int = 4096 * MB
    max_total_bytes: int = 10240 * MB

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkspaceLimits:
        """Defaults, overridden by ``PROTOVIZ_WORKSPACE_MAX_MB`` (total) and ``PROTOVIZ_WORKSPACE_BLOB_MAX_MB``."""
        env = os.environ if env is None else env
        values = {}
        for var, name in (("PROTOVIZ_WORKSPACE_MAX_MB", "max_total_bytes"),
                          ("PROTOVIZ_WORKSPACE_BLOB_MAX_MB", "max_blob_bytes")):
            text = env.get(var, "").strip()
            if text:
                try:
                    values[name] = int(float(text) * MB)
                except ValueError:
                    raise WorkspaceError(f"{var} must be a number of megabytes, got {text!r}") from None
                if values[name] <= 0:
                    raise WorkspaceError(f"{var} must be positive, got {text!r}")
        return cls(**values)


@dataclass(frozen=True)
class RunKey:
    """What a run is the answer to. ``settings`` is canonical JSON (use :meth:`make`)."""

    kind: str
    model_sha256: str
    dataset_fingerprint: str
    settings: str

    @classmethod
    def make(cls, kind: str, model_sha256: str, dataset_fingerprint: str, settings: Mapping[str, Any] | Any) -> RunKey:
        """A key from any settings mapping or dataclass (canonicalised: key order does not matter)."""
        for name, value in (("kind", kind), ("model sha256", model_sha256),
                            ("dataset fingerprint", dataset_fingerprint)):
            if not isinstance(value, str) or not value.strip():
                raise WorkspaceError(f"a run key needs a non-empty {name}")
        return cls(kind, model_sha256, dataset_fingerprint, canonical_json(settings))

    @property
    def settings_dict(self) -> dict[str, Any]:
        return json.loads(self.settings)


@dataclass(frozen=True)
class RunSummary:
    """A stored run without its payload, for lists. ``stored_at``: seconds since the epoch."""

    id: int
    key: RunKey
    result_type: str
    model_name: str
    dataset_name: str
    stored_at: float
    size_bytes: int


@dataclass(frozen=True)
class RunRecord(RunSummary):
    """A stored run with its payload. ``cached``: True when this call found it already stored."""

    payload: Payload
    cached: bool


@dataclass(frozen=True)
class Usage:
    runs: int
    run_bytes: int
    models: int
    model_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.run_bytes + self.model_bytes


class Workspace:
    """The store under ``home`` (default :func:`home_dir`). Safe to share between threads."""

    def __init__(self, home: str | Path | None = None, limits: WorkspaceLimits | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else home_dir()
        self.path = self.home / DB_NAME
        self.limits = limits or WorkspaceLimits()
        self._write_lock = threading.Lock()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WorkspaceError(f"cannot create the workspace folder {self.home}: {error.strerror}") from error
        if not self.path.exists():
            self._create()
        self._check_header()
        with self.read() as con:
            found = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not _TABLES <= found:
            raise self.refuse(f"lacks the tables {sorted(_TABLES - found)}")
        self.models = ModelStore(self)
        self.models.sweep_incoming()

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading (one consistent snapshot per statement)."""
        with self._errors():
            con = self._connect()
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one write transaction (BEGIN IMMEDIATE), committed on success."""
        with self._errors(), self._write_lock:
            con = self._connect()
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    def _connect(self) -> sqlite3.Connection:
        uri = f"file:{quote(self.path.as_posix())}?mode=rw"
        con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("PRAGMA synchronous = NORMAL")
        return con

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise WorkspaceError(f"the workspace {self.path} stayed busy for over {BUSY_TIMEOUT_S:.0f} s "
                                     "(another process is writing to it); try again") from error
            raise self.refuse(f"cannot be used ({error})") from error
        except sqlite3.DatabaseError as error:
            raise self.refuse(f"is damaged ({error})") from error

    def refuse(self, why: str) -> WorkspaceError:
        """The error for a workspace file that cannot be used (it is left as it is)."""
        return WorkspaceError(f"the workspace file {self.path} {why}. It was left untouched: move it away, or set "
                              "PROTOVIZ_HOME to another folder")

    def _create(self) -> None:
        """Build the schema in a temporary file, then link it into place (never over an existing file)."""
        temp = self.home / f".{DB_NAME}.{uuid.uuid4().hex}.tmp"
        try:
            con = sqlite3.connect(temp, isolation_level=None)
            try:
                con.executescript(f"BEGIN; {SCHEMA} COMMIT;")
                con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                con.execute("PRAGMA journal_mode = WAL")
            finally:
                con.close()
            try:
                os.link(temp, self.path)
            except FileExistsError:
                pass  # another process created it first: use theirs
            except OSError:  # no hard links on this file system
                if not self.path.exists():
                    os.replace(temp, self.path)
        except (OSError, sqlite3.Error) as error:
            raise WorkspaceError(f"cannot create the workspace {self.path}: {error}") from error
        finally:
            for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
                leftover.unlink(missing_ok=True)

    def _check_header(self) -> None:
        """Refuse anything but a protoviz workspace of a known schema, reading only the 100-byte header."""
        if not self.path.is_file():
            raise self.refuse("is not a regular file")
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(100)
        except OSError as error:
            raise self.refuse(f"cannot be read ({error.strerror})") from error
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise self.refuse("is not a protoviz workspace (not an SQLite database, or damaged)")
        user_version = int.from_bytes(header[60:64], "big")
        application_id = int.from_bytes(header[68:72], "big")
        if application_id != APPLICATION_ID:
            raise self.refuse("is an SQLite database of another application, not a protoviz workspace")
        if user_version > SCHEMA_VERSION:
            raise self.refuse(f"was written by a newer protoviz (workspace schema {user_version}; this protoviz "
                               f"reads schema {SCHEMA_VERSION}). Upgrade protoviz to use it")
        if user_version != SCHEMA_VERSION:
            raise self.refuse(f"has an unknown workspace schema {user_version}")

    def check(self) -> None:
        """A full integrity check (reads every page): raises WorkspaceError if the file is damaged."""
        with self.read() as con:
            result = con.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise self.refuse(f"is damaged ({result})")

    # -- runs ------------------------------------------------------------------------------------

    def save_run(self, key: RunKey, result: Payload | Storable | Mapping[str, Any], *, model_name: str = "",
                 dataset_name: str = "", replace: bool = False) -> RunRecord:
        """Keep ``result`` under ``key``; returns the stored record (``cached=False``).

        If ``key`` is already stored, the stored run is kept and returned (``cached=True``) unless
        ``replace``. Raises WorkspaceError when a blob, a JSON document or the total is over its limit.
        """
        payload = as_payload(result)
        texts = {"data": dumps(payload.data, "the result's data"), "tables": dumps(payload.tables, "its tables"),
                 "provenance": dumps(payload.provenance, "its provenance")}
        for what, text in texts.items():
            self._check_blob(f"the {what} of a {key.kind} result", len(text.encode("utf-8")))
        for name, blob in payload.blobs.items():
            self._check_blob(f"blob {name!r} of a {key.kind} result", len(blob))
        size = sum(len(t.encode("utf-8")) for t in texts.values()) + sum(len(b) for b in payload.blobs.values())
        with self.write() as con:
            existing = con.execute("SELECT id FROM runs WHERE kind = ? AND model_sha256 = ? AND "
                                   "dataset_fingerprint = ? AND settings = ?", _key_row(key)).fetchone()
            if existing is not None and not replace:
                run_id, cached = existing[0], True
            else:
                if existing is not None:
                    con.execute("DELETE FROM runs WHERE id = ?", existing)
                self.reserve(con, size)
                cursor = con.execute(
                    "INSERT INTO runs (kind, model_sha256, dataset_fingerprint, settings, result_type, data, tables, "
                    "provenance, model_name, dataset_name, stored_at, size_bytes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*_key_row(key), payload.type, texts["data"], texts["tables"], texts["provenance"],
                     model_name, dataset_name, time.time(), size))
                run_id, cached = int(cursor.lastrowid or 0), False
                con.executemany("INSERT INTO blobs (run_id, name, data) VALUES (?, ?, ?)",
                                [(run_id, name, bytes(blob)) for name, blob in payload.blobs.items()])
        record = self.get_run(run_id)
        return record if cached else _with(record, cached=False)

    def find_run(self, key: RunKey, with_blobs: bool = True) -> RunRecord | None:
        """The stored run of ``key`` (``cached=True``), or None."""
        with self.read() as con:
            row = con.execute("SELECT id FROM runs WHERE kind = ? AND model_sha256 = ? AND dataset_fingerprint = ? "
                              "AND settings = ?", _key_row(key)).fetchone()
        return None if row is None else self._load_run(row[0], with_blobs)

    def get_run(self, run_id: int, with_blobs: bool = True) -> RunRecord:
        """The stored run ``run_id``; WorkspaceError if there is none."""
        record = self._load_run(run_id, with_blobs)
        if record is None:
            raise WorkspaceError(f"no stored run #{run_id} (it may have been deleted)")
        return record

    def get_or_compute(self, key: RunKey, compute: Callable[[], Payload | Storable | Mapping[str, Any]], *,
                       model_name: str = "", dataset_name: str = "") -> RunRecord:
        """The stored run of ``key`` (``cached=True``), else ``compute()`` stored and returned (``cached=False``)."""
        found = self.find_run(key)
        if found is not None:
            return found
        return self.save_run(key, compute(), model_name=model_name, dataset_name=dataset_name)

    def list_runs(self, kind: str | None = None, model_sha256: str | None = None,
                  dataset_fingerprint: str | None = None, limit: int = 1000) -> list[RunSummary]:
        """Stored runs, newest first, optionally only those of one kind / model / dataset."""
        where, args = _filters(kind=kind, model_sha256=model_sha256, dataset_fingerprint=dataset_fingerprint)
        with self.read() as con:
            rows = con.execute(f"SELECT {_SUMMARY_COLUMNS} FROM runs {where} ORDER BY stored_at DESC, id DESC "
                               "LIMIT ?", (*args, int(limit))).fetchall()
        return [_summary(row) for row in rows]

    def blob_names(self, run_id: int) -> list[str]:
        with self.read() as con:
            return [r[0] for r in con.execute("SELECT name FROM blobs WHERE run_id = ? ORDER BY name", (run_id,))]

    def read_blob(self, run_id: int, name: str) -> bytes:
        """One blob of a run; WorkspaceError if absent."""
        with self.read() as con:
            row = con.execute("SELECT data FROM blobs WHERE run_id = ? AND name = ?", (run_id, name)).fetchone()
        if row is None:
            raise WorkspaceError(f"run #{run_id} has no blob {name!r}")
        return bytes(row[0])

    def delete_run(self, run_id: int) -> bool:
        """Delete a run and its blobs; False if there was none."""
        with self.write() as con:
            return con.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0

    def _load_run(self, run_id: int, with_blobs: bool) -> RunRecord | None:
        with self.read() as con:
            row = con.execute(f"SELECT {_SUMMARY_COLUMNS}, data, tables, provenance FROM runs WHERE id = ?",
                              (run_id,)).fetchone()
            if row is None:
                return None
            blobs = ({name: bytes(data) for name, data in
                      con.execute("SELECT name, data FROM blobs WHERE run_id = ? ORDER BY name", (run_id,))}
                     if with_blobs else {})
        summary = _summary(row[:10])
        payload = Payload(type=summary.result_type, data=json.loads(row[10]), tables=json.loads(row[11]),
                          blobs=blobs, provenance=json.loads(row[12]))
        return RunRecord(**vars(summary), payload=payload, cached=True)

    # -- sizes -----------------------------------------------------------------------------------

    def usage(self) -> Usage:
        with self.read() as con:
            return self._usage(con)

    def _usage(self, con: sqlite3.Connection) -> Usage:
        runs, run_bytes = con.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM runs").fetchone()
        models = con.execute("SELECT COUNT(*) FROM models").fetchone()[0]
        model_bytes = con.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM (SELECT file, MAX(size_bytes) AS "
                                  "size_bytes FROM models GROUP BY file)").fetchone()[0]
        return Usage(int(runs), int(run_bytes), int(models), int(model_bytes))

    def _check_blob(self, what: str, size: int) -> None:
        if size > self.limits.max_blob_bytes:
            raise WorkspaceError(f"{what} is {size / MB:.1f} MB, over the workspace's "
                                 f"{self.limits.max_blob_bytes / MB:.1f}"
                                 " MB per blob (PROTOVIZ_WORKSPACE_BLOB_MAX_MB)")

    def reserve(self, con: sqlite3.Connection, size: int, freed: int = 0) -> None:
        """Inside a write transaction: refuse ``size`` more bytes (after ``freed`` are released) over the total."""
        used = self._usage(con).total_bytes - freed
        if used + size > self.limits.max_total_bytes:
            raise WorkspaceError(f"the workspace is full: {used / MB:.1f} MB used, {size / MB:.1f} MB more would pass "
                                 f"its {self.limits.max_total_bytes / MB:.0f} MB (PROTOVIZ_WORKSPACE_MAX_MB); delete "
                                 "old runs on the Results page")


# -- exports ---------------------------------------------------------------------------------------


def run_json(record: RunRecord) -> str:
    """A run as one standard JSON document (NaN as null; blobs listed by name and size, not embedded)."""
    document = {"id": record.id, "kind": record.key.kind, "model_name": record.model_name,
                "model_sha256": record.key.model_sha256, "dataset_name": record.dataset_name,
                "dataset_fingerprint": record.key.dataset_fingerprint, "settings": record.key.settings_dict,
                "stored_at": record.stored_at, "result_type": record.result_type, "data": record.payload.data,
                "tables": record.payload.tables, "provenance": record.payload.provenance,
                "blobs": {name: len(blob) for name, blob in record.payload.blobs.items()}}
    return json.dumps(export_clean(document), indent=2, ensure_ascii=False) + "\n"


def run_csv(record: RunRecord, table: str | None = None) -> str:
    """One table of a run as CSV (default: ``scores`` if present, else the first), each row led by the run's key."""
    tables = record.payload.tables
    if not tables:
        raise WorkspaceError(f"run #{record.id} has no table to export")
    name = table if table is not None else ("scores" if "scores" in tables else next(iter(tables)))
    if name not in tables:
        raise WorkspaceError(f"run #{record.id} has no table {name!r} (it has {', '.join(tables)})")
    lead = {"run": record.id, "kind": record.key.kind, "model": record.model_name, "dataset": record.dataset_name}
    return rows_csv([{**lead, **row} for row in tables[name]])


# -- helpers ---------------------------------------------------------------------------------------

_SUMMARY_COLUMNS = ("id, kind, model_sha256, dataset_fingerprint, settings, result_type, model_name, dataset_name, "
                    "stored_at, size_bytes")


def _summary(row: Sequence[Any]) -> RunSummary:
    run_id, kind, sha, fingerprint, settings, result_type, model_name, dataset_name, stored_at, size = row[:10]
    return RunSummary(int(run_id), RunKey(kind, sha, fingerprint, settings), result_type, model_name, dataset_name,
                      float(stored_at), int(size))


def _key_row(key: RunKey) -> tuple[str, str, str, str]:
    return key.kind, key.model_sha256, key.dataset_fingerprint, key.settings


def _with(record: RunRecord, cached: bool) -> RunRecord:
    return RunRecord(**{**vars(record), "cached": cached})


def _filters(**values: str | None) -> tuple[str, tuple[str, ...]]:
    used = {k: v for k, v in values.items() if v is not None}
    where = " AND ".join(f"{column} = ?" for column in used)
    return (f"WHERE {where}" if where else ""), tuple(used.values())  # type: ignore[arg-type]


__all__ = ["DB_NAME", "MB", "SCHEMA", "SCHEMA_VERSION", "ModelStore", "RunKey", "RunRecord", "RunSummary",
           "StoredModel", "Usage", "Workspace", "WorkspaceLimits", "home_dir", "run_csv", "run_json"]
