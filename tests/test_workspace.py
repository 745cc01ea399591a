"""The workspace: runs keyed and kept exactly, models copied in, sizes bounded, bad files refused untouched,
and safe writes from threads and from processes."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from protoviz.errors import ConfigError, WorkspaceError
from protoviz.payload import Payload, array_from_bytes, array_to_bytes, decode, result_type
from protoviz.workspace import DB_NAME, SCHEMA_VERSION, RunKey, Workspace, WorkspaceLimits, home_dir, run_csv, run_json

ROOT = Path(__file__).resolve().parents[1]


def key(n: int = 0, kind: str = "evaluate", **settings: object) -> RunKey:
    return RunKey.make(kind, f"sha{n}", "data-fp", {"metrics": ["accuracy"], "seed": n, **settings})


def payload(value: float = 0.5) -> Payload:
    return Payload(data={"scores": {"accuracy": value, "spread": math.nan}, "nested": [1, {"a": None}]},
                   tables={"scores": [{"metric": "accuracy", "value": value, "unit": "%"}],
                           "prototypes": [{"prototype": j, "consistency": j / 4} for j in range(4)]},
                   blobs={"topk/0": array_to_bytes(np.arange(12, dtype=np.uint8).reshape(2, 2, 3))},
                   provenance={"model_sha256": "sha0", "seed": 0, "device": "cpu"})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_home_defaults_to_dot_protoviz_and_follows_the_environment(tmp_path: Path) -> None:
    assert home_dir({}) == Path.home() / ".protoviz"
    assert home_dir({"PROTOVIZ_HOME": str(tmp_path)}) == tmp_path
    assert Workspace().home == home_dir()  # the per-test PROTOVIZ_HOME of tests/conftest.py


def test_a_run_round_trips_exactly_and_the_second_request_is_served_from_the_store(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    first = ws.save_run(key(), payload(), model_name="tiny", dataset_name="cub test")
    assert not first.cached and first.model_name == "tiny" and first.dataset_name == "cub test"
    found = ws.find_run(key())
    assert found is not None and found.cached and found.id == first.id
    assert found.payload.tables == payload().tables and found.payload.provenance == payload().provenance
    assert math.isnan(found.payload.data["scores"]["spread"]) and found.payload.data["nested"] == [1, {"a": None}]
    assert np.array_equal(array_from_bytes(found.payload.blobs["topk/0"]),
                          np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    again = ws.save_run(key(), payload(0.9))  # the same key: the stored run stays
    assert again.cached and again.id == first.id and again.payload.tables["scores"][0]["value"] == 0.5
    replaced = ws.save_run(key(), payload(0.9), replace=True)
    assert not replaced.cached and replaced.payload.tables["scores"][0]["value"] == 0.9
    assert len(ws.list_runs()) == 1


def test_get_or_compute_computes_once() -> None:
    ws, calls = Workspace(), []

    def compute() -> Payload:
        calls.append(1)
        return payload()

    assert not ws.get_or_compute(key(), compute).cached
    assert ws.get_or_compute(key(), compute).cached and len(calls) == 1


def test_keys_ignore_settings_order_and_separate_everything_else() -> None:
    assert RunKey.make("k", "m", "d", {"a": 1, "b": [1, 2]}) == RunKey.make("k", "m", "d", {"b": (1, 2), "a": 1})
    ws = Workspace()
    variants = [key(), key(kind="trust"), key(1), RunKey.make("evaluate", "sha0", "other-fp", key().settings_dict),
                key(extra=True)]
    ids = {ws.save_run(k, payload()).id for k in variants}
    assert len(ids) == len(variants) == len(ws.list_runs())
    assert [r.key for r in ws.list_runs(kind="trust")] == [key(kind="trust")]
    assert {r.key for r in ws.list_runs(model_sha256="sha1")} == {key(1)}
    with pytest.raises(WorkspaceError, match="non-empty model sha256"):
        RunKey.make("k", "", "d", {})
    with pytest.raises(ConfigError, match="settings cannot key"):
        RunKey.make("k", "m", "d", {"noise": math.nan})


@result_type("test-workspace-scores")
@dataclass(frozen=True)
class Scores:
    """A typed result as eng's Score will be: values, rows and an array, through a payload."""

    values: dict[str, float]
    rows: list[dict[str, float]]
    maps: np.ndarray

    def to_payload(self) -> Payload:
        return Payload(data={"values": self.values}, tables={"prototypes": self.rows},
                       blobs={"maps": array_to_bytes(self.maps)})

    @classmethod
    def from_payload(cls, stored: Payload) -> Scores:
        return cls(stored.data["values"], stored.tables["prototypes"], array_from_bytes(stored.blobs["maps"]))


def test_a_typed_result_is_stored_and_decoded_back() -> None:
    ws = Workspace()
    result = Scores({"consistency": 0.25}, [{"prototype": 0, "consistency": 1.0}], np.eye(3, dtype=np.float32))
    record = ws.save_run(key(), result)
    assert record.result_type == "test-workspace-scores"
    back = decode(ws.get_run(record.id).payload)
    assert isinstance(back, Scores) and back.values == result.values and back.rows == result.rows
    assert np.array_equal(back.maps, result.maps) and back.maps.dtype == np.float32
    with pytest.raises(ConfigError, match="already registered"):
        result_type("test-workspace-scores")(Scores)
    with pytest.raises(WorkspaceError, match="not known"):
        decode(Payload(type="never-registered"))
    with pytest.raises(WorkspaceError, match="dtype object"):
        array_to_bytes(np.array([object()]))  # blobs are never pickled


def test_threads_write_safely_and_one_key_is_stored_once() -> None:
    ws, errors, ids = Workspace(), [], []

    def work(thread: int) -> None:
        try:
            for i in range(8):
                ws.save_run(key(100 * thread + i), payload(i))
            ids.append(ws.save_run(key(9999), payload(thread)).id)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(ws.list_runs()) == 6 * 8 + 1 and len(set(ids)) == 1
    ws.check()


WRITER = """
import sys, time
from pathlib import Path
from protoviz.payload import Payload
from protoviz.workspace import RunKey, Workspace
ws = Workspace(sys.argv[1])
(Path(sys.argv[1]) / f"ready-{sys.argv[2]}").touch()
deadline = time.monotonic() + 120
while len(list(Path(sys.argv[1]).glob("ready-*"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.005)  # start writing together
for i in range(15):
    ws.save_run(RunKey.make("evaluate", f"{sys.argv[2]}-{i}", "fp", {"i": i}), Payload(data={"i": i}))
    ws.save_run(RunKey.make("evaluate", "shared", "fp", {}), Payload(data={"who": sys.argv[2]}))
print("ok")
"""


def test_two_processes_write_safely(tmp_path: Path) -> None:
    Workspace(tmp_path)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    ws = Workspace(tmp_path)
    assert len(ws.list_runs()) == 31 and len(ws.list_runs(model_sha256="shared")) == 1
    ws.check()


def test_a_file_that_is_not_a_workspace_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(bytes(range(256)) * 40)
    before = digest(path)
    with pytest.raises(WorkspaceError, match="not a protoviz workspace.*left untouched.*PROTOVIZ_HOME"):
        Workspace(tmp_path)
    assert digest(path) == before
    other = tmp_path / "other"
    other.mkdir()
    con = sqlite3.connect(other / DB_NAME)
    con.execute("CREATE TABLE notes (x)")
    con.commit()
    con.close()
    before = digest(other / DB_NAME)
    with pytest.raises(WorkspaceError, match="another application"):
        Workspace(other)
    assert digest(other / DB_NAME) == before


def test_a_newer_workspace_is_refused_and_left_untouched(tmp_path: Path) -> None:
    Workspace(tmp_path).save_run(key(), payload())
    con = sqlite3.connect(tmp_path / DB_NAME)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    before = digest(tmp_path / DB_NAME)
    with pytest.raises(WorkspaceError, match=f"newer protoviz \\(workspace schema {SCHEMA_VERSION + 1}"):
        Workspace(tmp_path)
    assert digest(tmp_path / DB_NAME) == before


def test_a_damaged_workspace_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    for i in range(30):
        ws.save_run(key(i), payload())
    path = tmp_path / DB_NAME
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # keep the header, wreck every page after the first
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(WorkspaceError, match="damaged|cannot be used"):
        damaged = Workspace(tmp_path)
        damaged.list_runs()
        damaged.check()
    assert digest(path) == before


def test_blob_and_total_size_bounds_refuse_without_storing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path, WorkspaceLimits(max_blob_bytes=1000, max_total_bytes=3000))
    with pytest.raises(WorkspaceError, match="blob 'big'.*per blob"):
        ws.save_run(key(), Payload(blobs={"big": b"x" * 1001}))
    with pytest.raises(WorkspaceError, match="the data of a evaluate result"):
        ws.save_run(key(), Payload(data={"text": "y" * 2000}))
    assert ws.list_runs() == []
    for i in range(3):
        ws.save_run(key(i), Payload(blobs={"b": b"z" * 900}))
    with pytest.raises(WorkspaceError, match="workspace is full"):
        ws.save_run(key(3), Payload(blobs={"b": b"z" * 900}))
    assert len(ws.list_runs()) == 3 and ws.usage().runs == 3
    ws.delete_run(ws.list_runs()[0].id)
    ws.save_run(key(3), Payload(blobs={"b": b"z" * 900}))  # room again


def test_limits_from_the_environment() -> None:
    limits = WorkspaceLimits.from_env({"PROTOVIZ_WORKSPACE_MAX_MB": "2", "PROTOVIZ_WORKSPACE_BLOB_MAX_MB": "0.5"})
    assert (limits.max_total_bytes, limits.max_blob_bytes) == (2 << 20, 1 << 19)
    assert WorkspaceLimits.from_env({}) == WorkspaceLimits()
    with pytest.raises(WorkspaceError, match="PROTOVIZ_WORKSPACE_MAX_MB must be a number"):
        WorkspaceLimits.from_env({"PROTOVIZ_WORKSPACE_MAX_MB": "lots"})


def test_delete_and_exports() -> None:
    ws = Workspace()
    record = ws.save_run(key(), payload(), model_name="tiny", dataset_name="cub")
    document = json.loads(run_json(record))
    assert document["settings"] == {"metrics": ["accuracy"], "seed": 0}
    assert document["data"]["scores"]["spread"] is None  # standard JSON: NaN -> null
    assert document["blobs"] == {"topk/0": len(payload().blobs["topk/0"])}
    assert document["provenance"]["device"] == "cpu" and document["model_name"] == "tiny"
    assert run_csv(record).splitlines() == ["run,kind,model,dataset,metric,value,unit",
                                            f"{record.id},evaluate,tiny,cub,accuracy,0.5,%"]
    assert len(run_csv(record, "prototypes").splitlines()) == 5
    with pytest.raises(WorkspaceError, match="no table 'nope'"):
        run_csv(record, "nope")
    assert ws.delete_run(record.id) and not ws.delete_run(record.id)
    with pytest.raises(WorkspaceError, match="no stored run"):
        ws.get_run(record.id)
    with ws.read() as con:  # blobs went with their run
        assert con.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 0


def test_models_are_copied_in_deduplicated_and_removed(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "home")
    source = tmp_path / "upload" / "model.pth"
    source.parent.mkdir()
    source.write_bytes(b"checkpoint bytes" * 100)
    stored = ws.models.add(" mine ", source, family="tesnet", sources={"push_dir": "img/epoch-10"})
    assert stored.name == "mine" and stored.family == "tesnet" and stored.sources == {"push_dir": "img/epoch-10"}
    assert stored.path.is_relative_to(ws.home / "models") and stored.path.name == "model.pth"
    assert stored.path.read_bytes() == source.read_bytes()
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    source.unlink()  # the upload goes away; the kept copy stays
    with pytest.raises(WorkspaceError, match="already kept"):
        ws.models.add("mine", stored.path)
    twin = ws.models.add("twin", stored.path)
    assert twin.path == stored.path and ws.usage().model_bytes == 1600
    assert ws.models.update("twin", class_names=["a", "b"]).class_names == ("a", "b")
    assert [m.name for m in Workspace(tmp_path / "home").models.all()] == ["mine", "twin"]
    assert ws.models.remove("mine") and stored.path.is_file()  # twin still uses the file
    assert ws.models.remove("twin") and not stored.path.exists() and not ws.models.remove("twin")
    assert not list((ws.home / "models").glob("*/*")) and ws.models.all() == []


def test_model_size_bound_and_paths_outside_the_home_are_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "home", WorkspaceLimits(max_model_bytes=100))
    big = tmp_path / "big.safetensors"
    big.write_bytes(b"0" * 101)
    with pytest.raises(WorkspaceError, match="per model"):
        ws.models.add("big", big)
    small = tmp_path / "small.pth"
    small.write_bytes(b"0" * 10)
    ws.models.add("small", small)
    with ws.write() as con:  # a tampered row
        con.execute("UPDATE models SET file = '../../etc/passwd' WHERE name = 'small'")
    with pytest.raises(WorkspaceError, match="outside its folder"):
        ws.models.get("small")
    assert not list((ws.home / "models" / ".incoming").iterdir())
