"""Schema 1 -> 2: a workspace written by the version-1 code (tests/fixtures/workspace_v1, made by
tests/fixtures/make_workspace_v1.py) is migrated in place, once, in one transaction; everything it held
goes to the local owner and stays readable; the result has exactly the schema of a new workspace."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from protoviz import workspace as W
from protoviz import workspace_schema
from protoviz.errors import WorkspaceError
from protoviz.jobs import DONE, FAILED, INTERRUPTED, JobManager
from protoviz.owners import LOCAL_OWNER, new_token
from protoviz.payload import Payload, array_from_bytes
from protoviz.workspace import DB_NAME, SCHEMA_VERSION, RunKey, Workspace

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "workspace_v1"
EVALUATE = RunKey.make("evaluate", "a" * 64, "f" * 64, {"metrics": ["accuracy"], "seed": 0})


@pytest.fixture
def v1_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home)
    return home


def version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def shape(path: Path) -> dict[str, object]:
    """Columns (name, type, not null, default, primary key), indexes and foreign keys of every table."""
    con = sqlite3.connect(path)
    try:
        tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                  "AND name NOT LIKE 'sqlite_%'"))
        return {t: (con.execute(f"PRAGMA table_info({t})").fetchall(),
                    sorted((i[1], i[2], [c[2] for c in con.execute(f"PRAGMA index_info('{i[1]}')")])
                           for i in con.execute(f"PRAGMA index_list({t})")),
                    con.execute(f"PRAGMA foreign_key_list({t})").fetchall()) for t in tables}
    finally:
        con.close()


def test_the_fixture_is_a_version_1_workspace() -> None:
    assert version(FIXTURE / DB_NAME) == 1 and SCHEMA_VERSION == 2


def test_a_version_1_workspace_is_migrated_and_nothing_is_lost(v1_home: Path, tmp_path: Path) -> None:
    model_file = next((v1_home / "models").glob("*/tiny.safetensors"))
    model_bytes = model_file.read_bytes()
    con = sqlite3.connect(v1_home / DB_NAME)
    with con:  # as if runs 3-9 had been kept and deleted: their ids are never given again
        con.execute("UPDATE sqlite_sequence SET seq = 9 WHERE name = 'runs'")
    con.close()
    ws = Workspace(v1_home)
    assert ws.owner == LOCAL_OWNER and version(v1_home / DB_NAME) == 2
    runs = ws.list_runs()
    assert [(r.id, r.key.kind, r.model_name, r.dataset_name) for r in runs] == [
        (2, "trust", "v1 model", "samples"), (1, "evaluate", "v1 model", "cub test")]
    stored = ws.find_run(EVALUATE)
    assert stored is not None and stored.cached and stored.id == 1
    assert stored.payload.tables["scores"] == [{"metric": "accuracy", "value": 50.0, "unit": "%"}]
    assert np.array_equal(array_from_bytes(stored.payload.blobs["topk/0"]),
                          np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    models = {m.name: m for m in ws.models.all()}
    assert list(models) == ["v1 model", "twin"]
    assert models["v1 model"].sources == {"push_dir": "img/epoch-10"} and models["twin"].family == "protopnet"
    assert models["v1 model"].path == model_file.resolve() and models["v1 model"].path.read_bytes() == model_bytes
    assert models["v1 model"].sha256 == hashlib.sha256(model_bytes).hexdigest()
    jobs = JobManager(ws)
    assert jobs.interrupted == 1  # the job its (long gone) process left running
    states = {j.label: j for j in jobs.list_jobs()}
    assert {label: j.state for label, j in states.items()} == {
        "Evaluate v1": DONE, "Evaluate broken": FAILED, "Why, cut short": INTERRUPTED}
    assert states["Evaluate broken"].message == "no images in split 'test'"
    assert jobs.result(states["Evaluate v1"].id).payload.data == {"accuracy": 0.5}  # type: ignore[union-attr]
    assert jobs.submit(EVALUATE, lambda p: Payload()).cached  # served from the migrated store
    jobs.shutdown(60)
    stranger = ws.for_owner(new_token())  # a dashboard visitor sees none of it
    assert stranger.list_runs() == [] and stranger.models.all() == [] and jobs.for_owner(stranger.owner).list_jobs() == []
    with pytest.raises(WorkspaceError, match="no stored run #1"):
        stranger.get_run(1)
    assert stranger.models.add("v1 model", model_file).path != model_file.resolve()  # names are per owner
    assert ws.models.remove("twin") and model_file.is_file()  # "v1 model" still uses it
    ws.check()
    with ws.read() as con:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    Workspace(tmp_path / "new")
    assert shape(v1_home / DB_NAME) == shape(tmp_path / "new" / DB_NAME)
    assert Workspace(v1_home).list_runs() == runs  # opening again changes nothing
    assert ws.save_run(RunKey.make("evaluate", "c" * 64, "f" * 64, {}), Payload()).id == 10


def test_an_interrupted_migration_leaves_the_version_1_file_as_it_was(v1_home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = hashlib.sha256((v1_home / DB_NAME).read_bytes()).hexdigest()

    def fails_midway(con: sqlite3.Connection, old: int) -> None:
        workspace_schema.migrate(con, old)  # every step done, then the disk fails before the commit
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(W, "migrate", fails_midway)
    with pytest.raises(WorkspaceError, match="disk I/O error.*left untouched"):
        Workspace(v1_home)
    assert hashlib.sha256((v1_home / DB_NAME).read_bytes()).hexdigest() == before and version(v1_home / DB_NAME) == 1
    monkeypatch.undo()
    assert len(Workspace(v1_home).list_runs()) == 2


def test_several_openers_of_a_version_1_file_at_once_migrate_it_once(v1_home: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=60)

    def open_it() -> None:
        try:
            barrier.wait()
            assert len(Workspace(v1_home).list_runs()) == 2
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and version(v1_home / DB_NAME) == 2
