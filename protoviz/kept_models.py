"""The models users added, kept in the workspace: ``workspace.models`` (a :class:`ModelStore`).

Each added checkpoint is copied (while hashing it) into
``$PROTOVIZ_HOME/models/<owner folder>/<sha256>/<file name>``, so an upload folder can go away and the
model stays; one owner adding the same file under two names stores it once. Owners never share a file
(the owner folder is :func:`~protoviz.owners.owner_folder`, a digest that does not reveal the owner), so
adding or removing a model tells nothing about another owner's. A kept model records its name (unique
per owner), sha256, file, the user's family hint, class names and attached prototype sources (None = the
checkpoint's own) and other loading hints. Removing the last model that uses a file deletes the file.
Every query is filtered on the workspace's owner; stored paths resolve inside its ``models`` folder only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protoviz.errors import WorkspaceError
from protoviz.files import copy_stream
from protoviz.owners import owner_folder
from protoviz.payload import dumps

if TYPE_CHECKING:
    from protoviz.workspace import Workspace

MB = 1 << 20
_INCOMING_MAX_AGE_S = 24 * 3600
_MODEL_COLUMNS = "name, sha256, file, size_bytes, family, class_names, sources, hints, added_at"
KEEP: Any = object()  # ModelStore.update: leave this field as it is


@dataclass(frozen=True)
class StoredModel:
    """A model a user added: ``path`` is its copy under PROTOVIZ_HOME."""

    name: str
    sha256: str
    path: Path
    size_bytes: int
    family: str | None
    class_names: tuple[str, ...] | None
    sources: dict[str, Any] | None
    hints: dict[str, Any]
    added_at: float


class ModelStore:
    """The kept models of one workspace (use ``workspace.models``)."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def add(self, name: str, file: str | Path, *, family: str | None = None,
            class_names: Sequence[str] | None = None, sources: Mapping[str, Any] | None = None,
            hints: Mapping[str, Any] | None = None, replace: bool = False) -> StoredModel:
        """Copy a checkpoint file into the workspace and keep it under ``name`` for this owner.

        The copy is content-addressed per owner (``models/<owner folder>/<sha256>/<file name>``), so the
        same owner adding the same file twice stores it once. A name this owner already keeps raises
        WorkspaceError unless ``replace``.
        """
        clean = _model_name(name)
        source = Path(file)
        if not source.is_file():
            raise WorkspaceError(f"cannot keep model {clean!r}: {source.name} is not a file")
        size = source.stat().st_size
        if size > self._ws.limits.max_model_bytes:
            raise WorkspaceError(f"cannot keep model {clean!r}: its file is {size / MB:.0f} MB, over the "
                                 f"workspace's {self._ws.limits.max_model_bytes / MB:.0f} MB per model")
        if not replace and self.get(clean) is not None:
            raise WorkspaceError(f"a model named {clean!r} is already kept; remove it first or choose another name")
        incoming, sha256 = self._copy_in(source)
        relative = f"models/{owner_folder(self._ws.owner)}/{sha256}/{_file_name(source.name)}"
        try:
            with self._ws.write() as con:
                old = con.execute("SELECT file FROM models WHERE owner = ? AND name = ?",
                                  (self._ws.owner, clean)).fetchone()
                if old is not None and not replace:
                    raise WorkspaceError(f"a model named {clean!r} is already kept; remove it first or choose "
                                         "another name")
                target = self._ws.home / relative
                new_file = not target.is_file()
                freed = self._model_file_bytes(con, old[0], clean) if old and old[0] != relative else 0
                self._ws.reserve(con, size if new_file else 0, freed=freed)
                con.execute("INSERT OR REPLACE INTO models (owner, name, sha256, file, size_bytes, family, "
                            "class_names, sources, hints, added_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                            (self._ws.owner, clean, sha256, relative, size, family,
                             dumps(list(class_names), "class names") if class_names is not None else None,
                             dumps(dict(sources), "sources") if sources is not None else None,
                             dumps(dict(hints or {}), "hints"), time.time()))
                if new_file:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(incoming, target)
                if old is not None and old[0] != relative:
                    self._unlink_unreferenced(con, old[0])
        finally:
            incoming.unlink(missing_ok=True)
        return self._require(clean)

    def update(self, name: str, *, class_names: Sequence[str] | None = KEEP, sources: Mapping[str, Any] | None = KEEP,
               hints: Mapping[str, Any] | None = KEEP, family: str | None = KEEP) -> StoredModel:
        """Set the class names, attached sources, hints or family hint of a kept model.

        A field left at :data:`KEEP` is not changed; None clears it (the checkpoint's own class names and
        sources, no hints, the detected family).
        """
        values: dict[str, str | None] = {}
        if class_names is not KEEP:
            values["class_names"] = None if class_names is None else dumps(list(class_names), "class names")
        if sources is not KEEP:
            values["sources"] = None if sources is None else dumps(dict(sources), "sources")
        if hints is not KEEP:
            values["hints"] = dumps(dict(hints or {}), "hints")
        if family is not KEEP:
            if family is not None and not isinstance(family, str):
                raise WorkspaceError(f"a family hint is a family name, got {type(family).__name__}")
            values["family"] = family
        with self._ws.write() as con:
            found = con.execute("SELECT 1 FROM models WHERE owner = ? AND name = ?", (self._ws.owner, name)).fetchone()
            if found is None:
                raise WorkspaceError(f"no kept model named {name!r} (another session may have removed it)")
            for column, value in values.items():  # column names come from the fixed set above
                con.execute(f"UPDATE models SET {column} = ? WHERE owner = ? AND name = ?",
                            (value, self._ws.owner, name))
        return self._require(name)

    def _require(self, name: str) -> StoredModel:
        stored = self.get(name)
        if stored is None:
            raise WorkspaceError(f"no kept model named {name!r} (another session may have removed it)")
        return stored

    def get(self, name: str) -> StoredModel | None:
        with self._ws.read() as con:
            row = con.execute(f"SELECT {_MODEL_COLUMNS} FROM models WHERE owner = ? AND name = ?",
                              (self._ws.owner, name)).fetchone()
        return None if row is None else self._model(row)

    def all(self) -> list[StoredModel]:
        """This owner's kept models, in the order they were added."""
        with self._ws.read() as con:
            rows = con.execute(f"SELECT {_MODEL_COLUMNS} FROM models WHERE owner = ? ORDER BY added_at, name",
                               (self._ws.owner,)).fetchall()
        return [self._model(row) for row in rows]

    def remove(self, name: str) -> bool:
        """Forget a kept model and delete its file unless another kept model uses it; False if none."""
        with self._ws.write() as con:
            row = con.execute("SELECT file FROM models WHERE owner = ? AND name = ?", (self._ws.owner, name)).fetchone()
            if row is None:
                return False
            con.execute("DELETE FROM models WHERE owner = ? AND name = ?", (self._ws.owner, name))
            self._unlink_unreferenced(con, row[0])
        return True

    def _model(self, row: tuple[Any, ...]) -> StoredModel:
        name, sha256, file, size, family, class_names, sources, hints, added_at = row
        return StoredModel(name, sha256, self._inside_home(file), size, family,
                           tuple(json.loads(class_names)) if class_names is not None else None,
                           json.loads(sources) if sources is not None else None, json.loads(hints), added_at)

    def _inside_home(self, relative: str) -> Path:
        """The absolute path of a stored file; refuses any that would leave PROTOVIZ_HOME."""
        path = (self._ws.home / relative).resolve()
        if not path.is_relative_to((self._ws.home / "models").resolve()):
            raise self._ws.refuse(f"names a model file outside its folder ({relative!r})")
        return path

    def _copy_in(self, source: Path) -> tuple[Path, str]:
        """Copy ``source`` into ``models/.incoming`` while hashing it; returns (temporary path, sha256)."""
        folder = self._ws.home / "models" / ".incoming"
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / uuid.uuid4().hex
        digest = hashlib.sha256()
        limit = self._ws.limits.max_model_bytes
        try:
            with open(source, "rb") as reader, open(temp, "wb") as writer:
                copy_stream(reader, writer, limit, lambda: WorkspaceError(
                    f"{source.name} grew past the workspace's {limit / MB:.0f} MB per model while copying"), digest)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise WorkspaceError(f"cannot copy {source.name} into the workspace: {error.strerror}") from error
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp, digest.hexdigest()

    def _unlink_unreferenced(self, con: sqlite3.Connection, relative: str) -> None:
        """Inside a write transaction: delete a model file no kept model names any more."""
        if con.execute("SELECT 1 FROM models WHERE file = ?", (relative,)).fetchone() is None:
            path = self._inside_home(relative)
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()
            except OSError:
                pass  # another file of the same content is still there

    def _model_file_bytes(self, con: sqlite3.Connection, relative: str, name: str) -> int:
        """Bytes freed when model ``name`` stops using ``relative`` (0 if another model shares the file)."""
        row = con.execute("SELECT size_bytes FROM models WHERE file = ? AND NOT (owner = ? AND name = ?)",
                          (relative, self._ws.owner, name)).fetchone()
        if row is not None:
            return 0
        own = con.execute("SELECT size_bytes FROM models WHERE owner = ? AND name = ?",
                          (self._ws.owner, name)).fetchone()
        return int(own[0]) if own else 0

    def sweep_incoming(self) -> None:
        """Remove copies left by a crash in the middle of adding a model (older than a day)."""
        folder = self._ws.home / "models" / ".incoming"
        if not folder.is_dir():
            return
        limit = time.time() - _INCOMING_MAX_AGE_S
        for path in folder.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < limit:
                    path.unlink()
            except OSError:
                pass  # not ours to fail on: the sweep is a courtesy


def _model_name(name: str) -> str:
    clean = name.strip() if isinstance(name, str) else ""
    if not clean or len(clean) > 200 or any(ord(c) < 32 for c in clean):
        raise WorkspaceError("a model needs a name of 1-200 printable characters")
    return clean


def _file_name(name: str) -> str:
    """A safe file name close to the original's (error messages name a checkpoint by its file name)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:200] or "checkpoint"
