"""Batch classification jobs on every queue adapter: output shape, exactly-once, bad input."""

from __future__ import annotations

import gzip
import json
import tarfile
import time
from pathlib import Path

import pytest

from tagloop.errors import InvalidRequest, NotFound
from tagloop.services.batch import MANIFEST, BatchJob, BatchRequest
from tagloop.services.training import TrainRequest


@pytest.fixture
def trained(make_tagloop, job_backend, tickets, write_csv):
    """A Tagloop on each adapter/database with the demo tickets classifier trained."""
    tagloop = make_tagloop(**job_backend)
    data = write_csv([list(row) for row in tickets], "tickets.csv")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(data)))
    return tagloop


def run_batch(tagloop, request: BatchRequest) -> dict:
    job_id = tagloop.batch.submit(request)
    tagloop.start_workers()
    tagloop.queue.wait(job_id, timeout=120)
    return tagloop.jobs.show(job_id)


def read_output(folder: Path) -> list[dict]:
    records = []
    for part in sorted(folder.glob("part-*.jsonl")):
        records.extend(json.loads(line) for line in part.read_text(encoding="utf-8").splitlines())
    return records


def test_one_doc_per_line_every_document_exactly_once(trained, tickets, tmp_path):
    source = tmp_path / "in"
    (source / "nested").mkdir(parents=True)
    texts = [text for _, text in tickets]
    (source / "a.txt").write_text("\n".join(texts[:250]) + "\n", encoding="utf-8")
    (source / "nested" / "b.txt").write_text("\n".join(texts[250:]) + "\n\n", encoding="utf-8")
    (source / ".hidden").write_text("not a document\n", encoding="utf-8")
    job = run_batch(trained, BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=40))
    assert job["status"] == "COMPLETED", job
    out = Path(job["result"]["output"])
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["documents"] == len(texts)
    assert len(manifest["parts"]) == 7 + 5  # 250 lines in shards of 40, 164 in shards of 40
    records = read_output(out)
    assert sorted((r["File"], r["Line"]) for r in records) == sorted(
        [("a.txt", i) for i in range(250)] + [("nested/b.txt", i) for i in range(len(texts) - 250)]
    )
    first = next(r for r in records if r["File"] == "a.txt" and r["Line"] == 0)
    scores = [entry["Score"] for entry in first["Classes"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)  # the best 3, as Comprehend
    direct = next(trained.predictions.classify(trained.predictions.model("desk")[1], [texts[0]]))
    assert abs(sum(direct.scores) - 1) < 1e-6  # all classes: sum to 1
    assert [c["Name"] for c in first["Classes"]] == direct.labels[:3]
    assert [c["Score"] for c in first["Classes"]] == pytest.approx(direct.scores[:3], rel=1e-5)


def test_one_doc_per_file(trained, tmp_path):
    source = tmp_path / "docs"
    source.mkdir()
    (source / "1.txt").write_text("my laptop battery is swollen\nand hot", encoding="utf-8")
    (source / "2.txt").write_text("\ufeffplease refund the double charge on invoice 4411", encoding="utf-8")
    (source / "3.txt").write_text("", encoding="utf-8")
    request = BatchRequest("desk", str(source), str(tmp_path / "out"), "ONE_DOC_PER_FILE", shard_documents=2)
    job = run_batch(trained, request)
    assert job["status"] == "COMPLETED", job
    records = {r["File"]: r for r in read_output(Path(job["result"]["output"]))}
    assert set(records) == {"1.txt", "2.txt", "3.txt"}
    assert "Line" not in records["1.txt"]
    assert records["1.txt"]["Classes"][0]["Name"] == "HARDWARE"
    assert records["2.txt"]["Classes"][0]["Name"] == "BILLING"
    assert records["3.txt"]["ErrorCode"] == "InvalidRequestException"
    assert job["result"]["errors"] == 1


def test_missing_input_is_refused_at_once(trained, tmp_path):
    with pytest.raises(InvalidRequest, match="does not exist"):
        trained.batch.submit(BatchRequest("desk", str(tmp_path / "nope"), str(tmp_path / "out")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidRequest, match="holds no files"):
        trained.batch.submit(BatchRequest("desk", str(empty), str(tmp_path / "out")))
    with pytest.raises(NotFound):
        trained.batch.submit(BatchRequest("nobody", str(tmp_path), str(tmp_path / "out")))
    with pytest.raises(InvalidRequest, match="input format"):
        trained.batch.submit(BatchRequest("desk", str(tmp_path), str(tmp_path / "out"), "ONE_DOC_PER_PAGE"))


def test_bad_documents_fail_the_job_and_leave_no_output(trained, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    good = "\n".join(f"printer {i} is jammed again" for i in range(100))
    (source / "a.txt").write_text(good + "\n", encoding="utf-8")
    (source / "b.txt").write_bytes(b"fine line\nbad \xff\xfe line\nfine again\n")
    job = run_batch(trained, BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=10))
    assert job["status"] == "FAILED"
    assert "b.txt line 1 is not valid UTF-8" in job["error"]
    assert not (tmp_path / "out" / job["id"]).exists()


def test_an_input_with_no_documents_fails_clearly(trained, tmp_path):
    source = tmp_path / "blank.txt"
    source.write_text("", encoding="utf-8")
    job = run_batch(trained, BatchRequest("desk", str(source), str(tmp_path / "out")))
    assert job["status"] == "FAILED"
    assert "no documents" in job["error"]
    assert not (tmp_path / "out" / job["id"] / MANIFEST).exists()


def test_stopping_a_batch_stops_its_shards_and_removes_the_output(trained, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(f"vpn drops every {i} minutes" for i in range(3000)) + "\n", encoding="utf-8")
    job_id = trained.batch.submit(BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=5))
    assert trained.jobs.stop(job_id)["status"] == "STOPPED"
    assert trained.queue.run_until_idle() == 0
    assert not (tmp_path / "out" / job_id / MANIFEST).exists()


def test_stopping_a_running_batch(trained, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(f"vpn drops every {i} minutes" for i in range(6000)) + "\n", encoding="utf-8")
    job_id = trained.batch.submit(BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=5))
    trained.start_workers()
    deadline = time.monotonic() + 60
    while "parts done" not in (trained.jobs.show(job_id)["progress_message"] or ""):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # STOPPED at once when no shard was running at that moment, else as soon as they stop
    assert trained.jobs.stop(job_id)["status"] in ("STOP_REQUESTED", "STOPPED")
    assert trained.queue.wait(job_id, timeout=60) == "STOPPED"
    assert not (tmp_path / "out" / job_id).exists()


def test_an_unreadable_input_file_fails_the_job_clearly(trained, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.txt").write_text("printer jammed\n", encoding="utf-8")
    (source / "b.txt").symlink_to(tmp_path / "gone.txt")  # listed, but cannot be opened
    request = BatchRequest("desk", str(source), str(tmp_path / "out"), "ONE_DOC_PER_FILE", shard_documents=1)
    job = run_batch(trained, request)
    assert job["status"] == "FAILED"
    assert "b.txt cannot be opened" in job["error"]
    assert not (tmp_path / "out" / job["id"]).exists()


def test_a_truncated_compressed_input_fails_the_job_naming_the_file(trained, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    whole = gzip.compress(("\n".join(f"printer {i} is jammed again" for i in range(2000)) + "\n").encode())
    (source / "a.txt.gz").write_bytes(whole[: len(whole) // 2])
    job = run_batch(trained, BatchRequest("desk", str(source), str(tmp_path / "out")))
    assert job["status"] == "FAILED"
    assert "a.txt.gz: compressed file is truncated or damaged (" in job["error"]
    assert not (tmp_path / "out" / job["id"]).exists()


# ---- Comprehend's layout: <output>/<account>-CLN-<job id>/output/output.tar.gz ----------------


def untarred(path: Path) -> dict[str, list[dict]]:
    """The JSON lines of each file in a Comprehend output tarball, by name, in archive order."""
    with tarfile.open(path, "r:gz") as tar:
        return {
            member.name: [json.loads(line) for line in tar.extractfile(member).read().decode().splitlines()]
            for member in tar.getmembers()
        }


def test_the_comprehend_layout_writes_one_tarball_where_comprehend_puts_it(trained, tickets, tmp_path):
    texts = [text for _, text in tickets]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    request = BatchRequest(
        "desk", str(source), str(tmp_path / "out"), shard_documents=40, layout="comprehend"
    )
    job = run_batch(trained, request)
    assert job["status"] == "COMPLETED", job
    folder = tmp_path / "out" / f"123456789012-CLN-{job['id']}"  # settings.aws_account_id
    assert job["result"]["output"] == f"{folder}/output/output.tar.gz"
    assert sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) == [
        "output",
        "output/output.tar.gz",
    ]  # only the tarball: no parts, no manifest
    files = untarred(folder / "output" / "output.tar.gz")
    assert list(files) == ["predictions.jsonl"] == job["result"]["parts"]
    lines = files["predictions.jsonl"]
    assert [(line["File"], line["Line"]) for line in lines] == [("in.txt", i) for i in range(len(texts))]
    assert all(len(line["Classes"]) == 3 for line in lines)
    assert job["result"]["documents"] == len(texts)


def test_a_large_comprehend_output_is_split_into_numbered_files_between_parts(trained, tickets, tmp_path):
    texts = [text for _, text in tickets]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    request = BatchRequest(
        "desk",
        str(source),
        str(tmp_path / "out"),
        shard_documents=50,
        layout="comprehend",
        member_bytes=20_000,
    )
    job = run_batch(trained, request)
    assert job["status"] == "COMPLETED", job
    files = untarred(Path(job["result"]["output"]))
    names = list(files)
    assert len(names) > 2
    assert names == ["predictions.jsonl"] + [f"predictions-{n}.jsonl" for n in range(1, len(names))]
    assert all(len(lines) % 50 == 0 for lines in list(files.values())[:-1])  # whole parts only
    every = [(line["File"], line["Line"]) for lines in files.values() for line in lines]
    assert every == [("in.txt", i) for i in range(len(texts))]  # each document once, in order


def test_finishing_a_comprehend_job_again_keeps_its_tarball(trained, tmp_path):
    """A crash after the tarball was written and before the parts were removed: finishing the
    job again keeps the tarball it finds (complete: written in one atomic step) and removes the
    parts left over."""
    source = tmp_path / "in.txt"
    source.write_text("printer jammed\nrefund my invoice\n", encoding="utf-8")
    request = BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=1, layout="comprehend")
    job = run_batch(trained, request)
    tarball = Path(job["result"]["output"])
    written = tarball.read_bytes()
    folder = tarball.parent.parent
    (folder / "part-00000.jsonl").write_text("left over\n", encoding="utf-8")
    payload = trained.jobs.show(job["id"])["payload"]
    results = [{"part": "part-00000.jsonl", "documents": 1, "errors": 0}, None]
    result = BatchJob(trained.data_locations).children_finished(payload, results)
    assert result["parts"] == ["predictions.jsonl"] and result["output"] == str(tarball)
    assert tarball.read_bytes() == written
    assert not (folder / "part-00000.jsonl").exists()


def test_a_failed_comprehend_job_leaves_nothing(trained, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(b"fine line\nbad \xff line\n")
    request = BatchRequest("desk", str(source), str(tmp_path / "out"), shard_documents=1, layout="comprehend")
    job = run_batch(trained, request)
    assert job["status"] == "FAILED"
    assert not (tmp_path / "out" / f"123456789012-CLN-{job['id']}").exists()
    with pytest.raises(InvalidRequest, match="layout must be one of tagloop, comprehend"):
        trained.batch.submit(BatchRequest("desk", str(source), str(tmp_path / "out"), layout="aws"))
