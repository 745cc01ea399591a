"""Owners: every run, kept model and job is seen only by its owner, and another owner's entry is answered
exactly as a missing one; the same request by two owners is computed twice; tokens are checked."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from protoviz.errors import WorkspaceError
from protoviz.jobs import DONE, QUEUED, JobManager
from protoviz.owners import LOCAL_OWNER, TOKEN_LENGTH, check_owner, default_owner, is_token, new_token, owner_folder
from protoviz.payload import Payload
from protoviz.progress import Progress
from protoviz.workspace import RunKey, Workspace, run_csv, run_json

WAIT = 60.0
KEY = RunKey.make("evaluate", "sha", "fp", {"seed": 0})


def pair() -> tuple[Workspace, Workspace]:
    """Two owners' views of one workspace (tokens, as the dashboard makes them)."""
    ws = Workspace()
    return ws.for_owner(new_token()), ws.for_owner(new_token())


def message(error: pytest.ExceptionInfo[WorkspaceError], *ids: object) -> str:
    text = str(error.value)
    for value in ids:
        text = text.replace(str(value), "<id>")
    return text


def test_tokens_and_owner_names_are_checked() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(is_token(t) and len(t) == TOKEN_LENGTH for t in tokens)
    token = next(iter(tokens))
    for bad in ["", "local", token[:-1], token + "a", token[:-1] + "!", token[:-1] + "/", token[:-1] + ".",
                token[:-1] + "é", None, 12, [token]]:
        assert not is_token(bad), bad
    assert check_owner(LOCAL_OWNER) == "local" and check_owner(token) == token
    for bad in ["", "a/b", "..", "x" * 65, "with space", "new\nline", None]:
        with pytest.raises(WorkspaceError, match="1-64 characters"):
            check_owner(bad)
    with pytest.raises(WorkspaceError, match="1-64 characters"):
        Workspace(owner="../elsewhere")
    with pytest.raises(WorkspaceError, match="1-64 characters"):
        Workspace().for_owner("a b")
    assert default_owner({}) == LOCAL_OWNER and default_owner({"PROTOVIZ_OWNER": token}) == token
    assert Workspace().owner == LOCAL_OWNER
    with pytest.raises(WorkspaceError, match="PROTOVIZ_OWNER must be"):
        default_owner({"PROTOVIZ_OWNER": "../root"})
    assert len(owner_folder(token)) == 32 and token not in owner_folder(token)
    assert owner_folder(token) != owner_folder(token[::-1])


def test_runs_of_another_owner_are_indistinguishable_from_missing_ones() -> None:
    mine, theirs = pair()
    own = mine.save_run(KEY, Payload(data={"who": "me"}, tables={"scores": [{"v": 1}]}, blobs={"b": b"mine"}))
    other = theirs.save_run(KEY, Payload(data={"who": "them"}, blobs={"b": b"theirs"}))
    assert not own.cached and not other.cached and own.id != other.id  # no cross-owner cache hit
    assert mine.find_run(KEY).payload.data == {"who": "me"}  # type: ignore[union-attr]
    assert theirs.find_run(KEY).payload.data == {"who": "them"}  # type: ignore[union-attr]
    assert [r.id for r in mine.list_runs()] == [own.id] and [r.id for r in theirs.list_runs()] == [other.id]
    assert mine.list_runs(kind="evaluate", model_sha256="sha") == mine.list_runs()
    missing = max(own.id, other.id) + 1
    with pytest.raises(WorkspaceError) as foreign:
        mine.get_run(other.id)
    with pytest.raises(WorkspaceError) as absent:
        mine.get_run(missing)
    assert message(foreign, other.id) == message(absent, missing)
    assert mine.blob_names(other.id) == [] == mine.blob_names(missing)
    with pytest.raises(WorkspaceError) as foreign_blob:
        mine.read_blob(other.id, "b")
    with pytest.raises(WorkspaceError) as absent_blob:
        mine.read_blob(missing, "b")
    assert message(foreign_blob, other.id) == message(absent_blob, missing)
    assert not mine.delete_run(other.id) and theirs.get_run(other.id).payload.blobs == {"b": b"theirs"}
    assert mine.usage().runs == 1 and theirs.usage().runs == 1
    assert mine.owner not in run_json(own) and mine.owner not in run_csv(own)  # an export never carries the token
    assert mine.delete_run(own.id) and theirs.find_run(KEY) is not None


def test_kept_models_are_per_owner_in_separate_files(tmp_path: Path) -> None:
    mine, theirs = pair()
    source = tmp_path / "model.pth"
    source.write_bytes(b"the same checkpoint" * 50)
    a = mine.models.add("mine", source, family="tesnet")
    b = theirs.models.add("mine", source)  # the same name and bytes: another owner, another model and file
    assert a.path != b.path and a.path.read_bytes() == b.path.read_bytes() == source.read_bytes()
    assert mine.owner not in str(a.path) and owner_folder(mine.owner) in str(a.path)
    assert mine.models.get("mine").family == "tesnet" and theirs.models.get("mine").family is None  # type: ignore[union-attr]
    assert [m.name for m in mine.models.all()] == ["mine"] and mine.usage().model_bytes == 950
    only = mine.models.add("only mine", source)
    assert theirs.models.get("only mine") is None and [m.name for m in theirs.models.all()] == ["mine"]
    with pytest.raises(WorkspaceError) as foreign:
        theirs.models.update("only mine", class_names=["x"])
    with pytest.raises(WorkspaceError) as absent:
        theirs.models.update("never added", class_names=["x"])
    assert message(foreign, "only mine") == message(absent, "never added")
    assert not theirs.models.remove("only mine") and only.path.is_file()
    assert theirs.models.remove("mine") and not b.path.exists() and a.path.is_file()
    assert mine.models.get("mine") is not None


def quick(value: int):
    def fn(progress: Progress) -> Payload:
        progress(1, 1, "work")
        return Payload(data={"value": value})
    return fn


def test_jobs_are_per_owner_and_never_joined_or_served_across_owners() -> None:
    manager = JobManager(Workspace(), save_every_s=0.0)
    mine, theirs = manager.for_owner(new_token()), manager.for_owner(new_token())
    release, started = threading.Event(), threading.Event()

    def blocked(progress: Progress) -> Payload:
        progress(1, 2, "work")
        started.set()
        assert release.wait(WAIT)
        return Payload(data={"value": 1})

    try:
        first = mine.submit(KEY, blocked, label="mine")
        assert started.wait(WAIT)
        second = theirs.submit(KEY, quick(2), label="theirs")  # the same key: its own job, not mine
        assert second.id != first.id and second.state == QUEUED and second.position == 1  # slots are shared
        assert mine.find(KEY).id == first.id and theirs.find(KEY).id == second.id  # type: ignore[union-attr]
        assert [j.label for j in mine.list_jobs()] == ["mine"] and [j.label for j in theirs.list_jobs()] == ["theirs"]
        with pytest.raises(WorkspaceError) as foreign:
            mine.get(second.id)
        with pytest.raises(WorkspaceError) as absent:
            mine.get("0" * 32)
        assert message(foreign, second.id) == message(absent, "0" * 32)
        assert not mine.stop(second.id) and mine.wait(first.id, 0).state != DONE
        with pytest.raises(WorkspaceError):
            mine.wait(second.id, 0)
        release.set()
        assert mine.wait(first.id, WAIT).state == DONE and theirs.wait(second.id, WAIT).state == DONE
        assert mine.result(first.id).payload.data == {"value": 1}  # type: ignore[union-attr]
        assert theirs.result(second.id).payload.data == {"value": 2}  # type: ignore[union-attr]
        served = theirs.submit(KEY, quick(3))  # now stored for both: each served its own
        assert served.cached and theirs.result(served.id).payload.data == {"value": 2}  # type: ignore[union-attr]
        with pytest.raises(WorkspaceError):
            mine.result(second.id)
        assert manager.list_jobs() == []  # the manager's own owner ("local") has none
    finally:
        release.set()
        manager.shutdown(WAIT)


def test_pruning_keeps_each_owners_own_jobs() -> None:
    manager = JobManager(Workspace(), keep_finished=2)
    busy, quiet = manager.for_owner(new_token()), manager.for_owner(new_token())
    quiet.wait(quiet.submit(KEY, quick(0)).id, WAIT)
    for i in range(4):
        busy.wait(busy.submit(RunKey.make("evaluate", f"sha{i}", "fp", {}), quick(i)).id, WAIT)
    assert busy.submit(RunKey.make("evaluate", "sha0", "fp", {}), quick(0)).cached  # finished at once, then pruned
    assert len(busy.list_jobs()) == 2 and len(quiet.list_jobs()) == 1
    manager.shutdown(WAIT)

