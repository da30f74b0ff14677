"""The write-ahead journal of routed review tasks (services/task_journal.py): records framed so a
torn one is skipped, replay idempotent and blind to live journals, segments rotated and deleted
once their tasks are committed."""

from __future__ import annotations

import os
import pickle
import stat
import struct
import zlib
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask, Queue
from tagloop.services import task_journal
from tagloop.services.routing import new_task_id
from tagloop.services.task_journal import Journal, decode, encode, replay
from tagloop.services.task_store import insert_new_tasks
from tagloop.storage import migrate
from tagloop.storage.database import Database
from tagloop.storage.tables import ReviewTaskRow


def new_task(text: str = "vpn drops") -> NewTask:
    return NewTask(text=text, mode=Mode.MULTI_CLASS, choices=("A", "B"), reason="audit", id=new_task_id())


def segments(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_a_torn_or_damaged_last_record_is_skipped():
    first, second, third = [new_task("one"), new_task("two")], [new_task("three")], [new_task("four")]
    data = encode(first) + encode(second)
    assert [task.text for task in decode(data)] == ["one", "two", "three"]
    torn = data + encode(third)[:-3]  # killed in the middle of the last write
    assert [task.text for task in decode(torn)] == ["one", "two", "three"]
    assert [task.text for task in decode(data + encode(third)[:5])] == ["one", "two", "three"]
    damaged = bytearray(data + encode(third))
    damaged[-1] ^= 0xFF  # the CRC catches what the length alone would not
    assert [task.text for task in decode(bytes(damaged))] == ["one", "two", "three"]
    assert decode(b"") == []


def routed(text: str = "vpn drops") -> NewTask:
    """A task as routing makes them: every field the serving process fills in."""
    return NewTask(
        text=text,
        mode=Mode.MULTI_LABEL,
        choices=("billing", "network", "zoë"),
        reason="low_confidence",
        classifier_id=3,
        endpoint="news",
        version_id=7,
        prediction_id=new_task_id(),
        prediction={"labels": ["network", "zoë"], "scores": [0.4999999999999999, 1e-300]},
        priority=0.1 + 0.2,
        uncertainty=0.5000000000000001,
        required=2,
        lease_seconds=45,
        lifetime_seconds=3600,
        id=new_task_id(),
    )


def test_a_record_holds_the_tasks_as_json_and_gives_them_back_exactly():
    tasks = [routed(), replace(routed("second"), queue=Queue.MODERATE, feedback={"correct": False})]
    record = encode(tasks)
    assert record[8:9] == b"["  # JSON (not a pickle) after the length and the CRC
    assert decode(record) == tasks  # floats, enums, the choices tuple: all as they were
    assert isinstance(decode(record)[0].mode, Mode) and isinstance(decode(record)[0].choices, tuple)


def test_a_task_json_cannot_hold_is_pickled_and_a_pickled_record_still_decodes():
    odd = replace(routed("a lone surrogate \ud800 from a client"), input_content={1: "an int key"})
    following = routed("next")
    record = encode([odd])
    assert record[8:9] == b"\x80"  # pickled, as every record was before JSON
    assert decode(record + encode([following])) == [odd, following]  # the two kinds mix in a segment
    payload = pickle.dumps([routed("old")], protocol=pickle.HIGHEST_PROTOCOL)  # a journal of an older version
    old = struct.pack(">II", len(payload), zlib.crc32(payload)) + payload
    (task,) = decode(old)
    assert task.text == "old" and task.choices == ("billing", "network", "zoë")


def test_segments_are_private_and_a_live_one_is_not_replayed(tmp_path):
    folder = tmp_path / "journal"
    journal = Journal(folder)
    assert journal.append([new_task()]) is not None
    (name,) = segments(folder)
    assert name.startswith(f"{os.getpid()}-") and name.endswith(".journal")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    inserted: list[NewTask] = []
    assert replay(folder, inserted.extend) == 0  # locked by its (live) owner: not touched
    assert inserted == [] and segments(folder) == [name]
    journal.close()  # its task never acknowledged: left, unlocked, for the next start
    assert replay(folder, inserted.extend) == 1
    assert len(inserted) == 1 and segments(folder) == []


def test_replaying_twice_inserts_once(tmp_path, database_url):
    database = Database(database_url)
    migrate.upgrade(database)
    try:
        folder = tmp_path / "journal"
        tasks = [new_task(f"text {n}") for n in range(5)]
        journal = Journal(folder)
        journal.append(tasks[:2])
        journal.append(tasks[2:])
        journal.close()
        (name,) = segments(folder)
        copy = (folder / name).read_bytes()
        insert_new_tasks(database, tasks[:1])  # committed by the writer before the process died
        assert replay(folder, lambda batch: insert_new_tasks(database, batch)) == 5
        (folder / name).write_bytes(copy)  # as if the replay had died before deleting it
        assert replay(folder, lambda batch: insert_new_tasks(database, batch)) == 5
        with database.reading() as session:
            ids = sorted(session.scalars(select(ReviewTaskRow.id)))
            assert session.scalar(select(func.count()).select_from(ReviewTaskRow)) == 5
        assert ids == sorted(str(task.id) for task in tasks) and segments(folder) == []
    finally:
        database.dispose()


def test_a_task_that_cannot_be_stored_does_not_block_the_others(database_url):
    database = Database(database_url)
    migrate.upgrade(database)
    try:
        good = [new_task("good"), new_task("fine")]
        bad = NewTask(text="x", mode=Mode.MULTI_CLASS, choices=("A",), reason="audit", classifier_id=999)
        bad = replace(bad, id=new_task_id())  # its classifier is gone
        insert_new_tasks(database, [good[0], bad, good[1]])
        with database.reading() as session:
            assert sorted(session.scalars(select(ReviewTaskRow.text))) == ["fine", "good"]
    finally:
        database.dispose()


def test_segments_rotate_and_go_once_committed(tmp_path, monkeypatch):
    monkeypatch.setattr(task_journal, "MAX_RECORDS", 2)
    folder = tmp_path / "journal"
    journal = Journal(folder)
    first = [journal.append([new_task()]) for _ in range(2)]
    assert first[0] is first[1] and first[0] is not None
    second = journal.append([new_task()])  # the first segment is full: a new one
    assert second is not None and second is not first[0] and len(segments(folder)) == 2
    journal.done(first[0], True)
    assert len(segments(folder)) == 2  # one of its records is not committed yet
    journal.done(first[1], True)
    assert segments(folder) == [second.path.name]  # all committed: deleted
    third = journal.append([new_task()])
    fourth = journal.append([new_task()])  # third segment
    assert third is second and fourth is not None and fourth is not second
    journal.done(second, True)
    journal.done(third, False)  # a failed write: the segment stays for the next start
    journal.done(fourth, True)
    journal.close()  # the current segment, all committed, goes; the failed one stays
    assert segments(folder) == [second.path.name]
    inserted: list[NewTask] = []
    assert replay(folder, inserted.extend) == 2 and segments(folder) == []


def test_a_replay_that_fails_keeps_the_segment(tmp_path):
    folder = tmp_path / "journal"
    journal = Journal(folder)
    journal.append([new_task()])
    journal.close()

    def failing(tasks):
        raise ConnectionError("database down")

    assert replay(folder, failing) == 0
    assert len(segments(folder)) == 1  # for the next start
    assert replay(folder, lambda tasks: None) == 1 and segments(folder) == []


def test_a_failed_append_says_so(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert Journal(blocked / "journal").append([new_task()]) is None


@pytest.mark.parametrize("suffix", [".new", ".journal"])
def test_a_segment_left_before_its_rename_is_replayed_too(tmp_path, suffix):
    folder = tmp_path / "journal"
    folder.mkdir()
    (folder / f"1-abcd-1{suffix}").write_bytes(encode([new_task()]))
    (folder / "notes.txt").write_text("not a journal")
    inserted: list[NewTask] = []
    assert replay(folder, inserted.extend) == 1 and segments(folder) == ["notes.txt"]
