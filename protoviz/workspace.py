"""The workspace: results and added models that outlive the page and the server, in one SQLite file.

Where: ``$PROTOVIZ_HOME/workspace.sqlite`` (default ``~/.protoviz``); added checkpoints are copied to
``$PROTOVIZ_HOME/models/<owner folder>/<sha256>/<file name>``. The file is in WAL mode (readers never
wait for the writer); every write is one ``BEGIN IMMEDIATE`` transaction behind a lock, so threads and
processes write safely one at a time. Keep PROTOVIZ_HOME on a local disk (WAL needs shared memory).

Owners: every run, kept model and job belongs to an owner (:mod:`protoviz.owners`). A
:class:`Workspace` object acts for one owner (``Workspace(owner=...)``, default
:func:`~protoviz.owners.default_owner`: ``"local"`` or ``$PROTOVIZ_OWNER``) and every query filters on
it: another owner's run is answered exactly as a missing one. :meth:`Workspace.for_owner` gives the
same file (connection lock, limits) acting for another owner; the dashboard uses one per visitor.

A run is keyed by its owner and a :class:`~protoviz.provenance.RunKey` (kind, model sha256, dataset
fingerprint, canonical settings JSON; the one key class, defined beside the provenance it is made from): the same request twice by the same owner finds the stored run (``cached=True`` on the
returned :class:`RunRecord`). Two owners making the same request compute it twice: no result is shared
between owners, which is simpler and tells no one what another has computed. The models users added are
``workspace.models`` (:mod:`protoviz.kept_models`). Exports never contain the owner.

Safety: a file that is not a protoviz workspace, is damaged, or was written by a newer protoviz
raises :class:`~protoviz.errors.WorkspaceError` and is never written to; a version-1 file is migrated
in place in one transaction (:mod:`protoviz.workspace_schema`). Sizes are bounded
(:class:`WorkspaceLimits`: per blob, per model file, in total for all owners); a write over a bound is
refused, never evicting anything. Stored model paths are resolved inside PROTOVIZ_HOME only.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`, ``application_id`` = :data:`APPLICATION_ID`):
see :mod:`protoviz.workspace_schema`.
"""

from __future__ import annotations

import copy
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
from protoviz.owners import LOCAL_OWNER, check_owner, default_owner
from protoviz.payload import Payload, Storable, as_payload, dumps, export_clean, rows_csv
from protoviz.provenance import RunKey
from protoviz.workspace_schema import APPLICATION_ID, SCHEMA, SCHEMA_VERSION, TABLES, migrate

DB_NAME = "workspace.sqlite"
BUSY_TIMEOUT_S = 30.0
MB = 1 << 20


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
    """The store under ``home`` (default :func:`home_dir`) acting for ``owner`` (default
    :func:`~protoviz.owners.default_owner`). Safe to share between threads."""

    def __init__(self, home: str | Path | None = None, limits: WorkspaceLimits | None = None,
                 owner: str | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else home_dir()
        self.path = self.home / DB_NAME
        self.limits = limits or WorkspaceLimits()
        self.owner = default_owner() if owner is None else check_owner(owner)
        self._write_lock = threading.Lock()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WorkspaceError(f"cannot create the workspace folder {self.home}: {error.strerror}") from error
        if not self.path.exists():
            self._create()
        self._check_header()
        self._upgrade()
        with self.read() as con:
            found = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not TABLES <= found:
            raise self.refuse(f"lacks the tables {sorted(TABLES - found)}")
        self.models = ModelStore(self)
        self.models.sweep_incoming()

    def for_owner(self, owner: str) -> Workspace:
        """This workspace acting for ``owner``: the same file, write lock and limits; only ``owner``'s entries."""
        view = copy.copy(self)
        view.owner = check_owner(owner)
        view.models = ModelStore(view)
        return view

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
    def write(self, foreign_keys: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection inside one write transaction (BEGIN IMMEDIATE), committed on success."""
        with self._errors(), self._write_lock:
            con = self._connect(foreign_keys)
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

    def _connect(self, foreign_keys: bool = True) -> sqlite3.Connection:
        uri = f"file:{quote(self.path.as_posix())}?mode=rw"
        con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        con.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
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
        application_id = int.from_bytes(header[68:72], "big")
        if application_id != APPLICATION_ID:
            raise self.refuse("is an SQLite database of another application, not a protoviz workspace")
        self._check_version(int.from_bytes(header[60:64], "big"))

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise self.refuse(f"was written by a newer protoviz (workspace schema {version}; this protoviz "
                              f"reads schema {SCHEMA_VERSION}). Upgrade protoviz to use it")
        if version not in (1, SCHEMA_VERSION):
            raise self.refuse(f"has an unknown workspace schema {version}")

    def _upgrade(self) -> None:
        """Migrate an older schema in place, in one transaction (see :mod:`protoviz.workspace_schema`).

        The version is read through SQLite (the file's header may lag behind its write-ahead log); a
        concurrent process that migrated first is noticed inside the transaction.
        """
        with self.read() as con:
            version = int(con.execute("PRAGMA user_version").fetchone()[0])
        self._check_version(version)
        if version == SCHEMA_VERSION:
            return
        with self.write(foreign_keys=False) as con:
            version = int(con.execute("PRAGMA user_version").fetchone()[0])
            if version != SCHEMA_VERSION:
                migrate(con, version)

    def check(self) -> None:
        """A full integrity check (reads every page): raises WorkspaceError if the file is damaged."""
        with self.read() as con:
            result = con.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise self.refuse(f"is damaged ({result})")

    # -- runs ------------------------------------------------------------------------------------

    def save_run(self, key: RunKey, result: Payload | Storable | Mapping[str, Any], *, model_name: str = "",
                 dataset_name: str = "", replace: bool = False) -> RunRecord:
        """Keep ``result`` under ``key`` for this owner; returns the stored record (``cached=False``).

        If this owner already stored ``key``, the stored run is kept and returned (``cached=True``) unless
        ``replace``. Raises WorkspaceError when a blob, a JSON document or the total is over its limit.
        """
        if not (key.complete and key.kind):
            raise WorkspaceError(f"a {key.kind or 'run'} result without a kind, a model sha256 or a dataset "
                                 "fingerprint cannot be kept (it could never be found again)")
        payload = as_payload(result)
        texts = {"data": dumps(payload.data, "the result's data"), "tables": dumps(payload.tables, "its tables"),
                 "provenance": dumps(payload.provenance, "its provenance")}
        for what, text in texts.items():
            self._check_blob(f"the {what} of a {key.kind} result", len(text.encode("utf-8")))
        for name, blob in payload.blobs.items():
            self._check_blob(f"blob {name!r} of a {key.kind} result", len(blob))
        size = sum(len(t.encode("utf-8")) for t in texts.values()) + sum(len(b) for b in payload.blobs.values())
        with self.write() as con:
            existing = con.execute(f"SELECT id FROM runs WHERE {_KEY_WHERE}", self._key_row(key)).fetchone()
            if existing is not None and not replace:
                run_id, cached = existing[0], True
            else:
                freed = 0
                if existing is not None:
                    freed = con.execute("SELECT size_bytes FROM runs WHERE id = ?", existing).fetchone()[0]
                self.reserve(con, size, freed=freed)
                if existing is not None:
                    con.execute("DELETE FROM runs WHERE id = ?", existing)
                cursor = con.execute(
                    "INSERT INTO runs (owner, kind, model_sha256, dataset_fingerprint, settings, result_type, data, "
                    "tables, provenance, model_name, dataset_name, stored_at, size_bytes) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*self._key_row(key), payload.type, texts["data"], texts["tables"], texts["provenance"],
                     model_name, dataset_name, time.time(), size))
                run_id, cached = int(cursor.lastrowid or 0), False
                con.executemany("INSERT INTO blobs (run_id, name, data) VALUES (?, ?, ?)",
                                [(run_id, name, bytes(blob)) for name, blob in payload.blobs.items()])
        record = self.get_run(run_id)
        return record if cached else _with(record, cached=False)

    def find_run(self, key: RunKey, with_blobs: bool = True) -> RunRecord | None:
        """This owner's stored run of ``key`` (``cached=True``), or None."""
        with self.read() as con:
            row = con.execute(f"SELECT id FROM runs WHERE {_KEY_WHERE}", self._key_row(key)).fetchone()
        return None if row is None else self._load_run(row[0], with_blobs)

    def get_run(self, run_id: int, with_blobs: bool = True) -> RunRecord:
        """This owner's stored run ``run_id``; WorkspaceError if there is none (or it is another owner's)."""
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
        """This owner's stored runs, newest first, optionally only those of one kind / model / dataset."""
        where, args = _filters(owner=self.owner, kind=kind, model_sha256=model_sha256,
                               dataset_fingerprint=dataset_fingerprint)
        with self.read() as con:
            rows = con.execute(f"SELECT {_SUMMARY_COLUMNS} FROM runs {where} ORDER BY stored_at DESC, id DESC "
                               "LIMIT ?", (*args, int(limit))).fetchall()
        return [_summary(row) for row in rows]

    def blob_names(self, run_id: int) -> list[str]:
        with self.read() as con:
            return [r[0] for r in con.execute(f"SELECT name FROM blobs WHERE {_BLOB_OWNER} ORDER BY name",
                                              (run_id, self.owner))]

    def read_blob(self, run_id: int, name: str) -> bytes:
        """One blob of a run of this owner; WorkspaceError if absent."""
        with self.read() as con:
            row = con.execute(f"SELECT data FROM blobs WHERE {_BLOB_OWNER} AND name = ?",
                              (run_id, self.owner, name)).fetchone()
        if row is None:
            raise WorkspaceError(f"run #{run_id} has no blob {name!r}")
        return bytes(row[0])

    def delete_run(self, run_id: int) -> bool:
        """Delete a run of this owner and its blobs; False if there was none."""
        with self.write() as con:
            return con.execute("DELETE FROM runs WHERE id = ? AND owner = ?", (run_id, self.owner)).rowcount > 0

    def _load_run(self, run_id: int, with_blobs: bool) -> RunRecord | None:
        with self.read() as con:
            row = con.execute(f"SELECT {_SUMMARY_COLUMNS}, data, tables, provenance FROM runs WHERE id = ? "
                              "AND owner = ?", (run_id, self.owner)).fetchone()
            if row is None:
                return None
            blobs = ({name: bytes(data) for name, data in
                      con.execute("SELECT name, data FROM blobs WHERE run_id = ? ORDER BY name", (run_id,))}
                     if with_blobs else {})
        summary = _summary(row[:10])
        payload = Payload(type=summary.result_type, data=json.loads(row[10]), tables=json.loads(row[11]),
                          blobs=blobs, provenance=json.loads(row[12]))
        return RunRecord(**vars(summary), payload=payload, cached=True)

    def _key_row(self, key: RunKey) -> tuple[str, str, str, str, str]:
        return self.owner, key.kind, key.model_sha256, key.dataset_fingerprint, key.settings

    # -- sizes -----------------------------------------------------------------------------------

    def usage(self) -> Usage:
        """What this owner keeps (runs, models and their bytes)."""
        with self.read() as con:
            return self._usage(con, self.owner)

    def _usage(self, con: sqlite3.Connection, owner: str | None) -> Usage:
        """Usage of ``owner``, or of every owner together (None)."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        runs, run_bytes = con.execute(f"SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM runs {where}",
                                      args).fetchone()
        models = con.execute(f"SELECT COUNT(*) FROM models {where}", args).fetchone()[0]
        model_bytes = con.execute(f"SELECT COALESCE(SUM(size_bytes), 0) FROM (SELECT file, MAX(size_bytes) AS "
                                  f"size_bytes FROM models {where} GROUP BY file)", args).fetchone()[0]
        return Usage(int(runs), int(run_bytes), int(models), int(model_bytes))

    def _check_blob(self, what: str, size: int) -> None:
        if size > self.limits.max_blob_bytes:
            raise WorkspaceError(f"{what} is {size / MB:.1f} MB, over the workspace's "
                                 f"{self.limits.max_blob_bytes / MB:.1f}"
                                 " MB per blob (PROTOVIZ_WORKSPACE_BLOB_MAX_MB)")

    def reserve(self, con: sqlite3.Connection, size: int, freed: int = 0) -> None:
        """Inside a write transaction: refuse ``size`` more bytes (after ``freed`` are released) over the total
        of every owner together. The message gives this owner's own use only."""
        used = self._usage(con, None).total_bytes - freed
        if used + size > self.limits.max_total_bytes:
            own = self._usage(con, self.owner).total_bytes
            raise WorkspaceError(f"the workspace is full: {size / MB:.1f} MB more would pass the "
                                 f"{self.limits.max_total_bytes / MB:.0f} MB it keeps for all users together "
                                 f"(PROTOVIZ_WORKSPACE_MAX_MB). Yours takes {own / MB:.1f} MB: delete old runs on "
                                 "the Results page, or ask the operator for room")


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

_KEY_WHERE = "owner = ? AND kind = ? AND model_sha256 = ? AND dataset_fingerprint = ? AND settings = ?"
_BLOB_OWNER = "run_id = ? AND run_id IN (SELECT id FROM runs WHERE owner = ?)"
_SUMMARY_COLUMNS = ("id, kind, model_sha256, dataset_fingerprint, settings, result_type, model_name, dataset_name, "
                    "stored_at, size_bytes")


def _summary(row: Sequence[Any]) -> RunSummary:
    run_id, kind, sha, fingerprint, settings, result_type, model_name, dataset_name, stored_at, size = row[:10]
    return RunSummary(int(run_id), RunKey(kind, sha, fingerprint, settings), result_type, model_name, dataset_name,
                      float(stored_at), int(size))


def _with(record: RunRecord, cached: bool) -> RunRecord:
    return RunRecord(**{**vars(record), "cached": cached})


def _filters(**values: str | None) -> tuple[str, tuple[str, ...]]:
    used = {k: v for k, v in values.items() if v is not None}
    where = " AND ".join(f"{column} = ?" for column in used)
    return (f"WHERE {where}" if where else ""), tuple(used.values())  # type: ignore[arg-type]


__all__ = ["DB_NAME", "LOCAL_OWNER", "MB", "SCHEMA", "SCHEMA_VERSION", "ModelStore", "RunKey", "RunRecord", "RunSummary",
           "StoredModel", "Usage", "Workspace", "WorkspaceLimits", "home_dir", "run_csv", "run_json"]
