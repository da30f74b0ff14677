"""Artifacts, training data and batch input/output on a real S3 server (moto, over HTTP)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import fsspec
import pytest

from tagloop.errors import ArtifactCorrupt, ArtifactMissing, InvalidRequest
from tagloop.services.batch import MANIFEST, BatchRequest
from tagloop.services.training import TrainRequest
from tagloop.storage.artifacts import ArtifactStore


def s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", skip_instance_cache=True)


def tickets_csv(tickets) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(tickets)
    return buffer.getvalue().encode("utf-8")


def test_artifact_store_on_s3(bucket):
    store = ArtifactStore(f"s3://{bucket}/artifacts")
    stored = store.write_bytes("models/1/model.npz", b"model bytes")
    assert stored.path == f"{bucket}/artifacts/models/1/model.npz"
    assert store.read_bytes(stored.path, stored.sha256) == b"model bytes"
    s3().pipe_file(stored.path, b"tampered!!!")
    with pytest.raises(ArtifactCorrupt):
        store.read_bytes(stored.path, stored.sha256)
    with pytest.raises(ArtifactMissing):
        store.read_bytes(store.path("models/2/model.npz"))
    store.delete_prefix("models")
    assert not s3().exists(f"{bucket}/artifacts/models/1/model.npz")


def test_training_from_s3_with_artifacts_on_s3_and_metadata_on_postgres(
    bucket, make_tagloop, postgres_db, tickets
):
    s3().pipe_file(f"{bucket}/in/tickets.csv", tickets_csv(tickets))
    settings = {"database_url": postgres_db, "artifacts_url": f"s3://{bucket}/models"}
    tagloop = make_tagloop(**settings)
    result = tagloop.training.train(TrainRequest(classifier="desk", data=f"s3://{bucket}/in/tickets.csv"))
    assert result["status"] == "TRAINED"
    path = tagloop.catalog.version("desk", "v1")["artifact"]["path"]
    assert path.startswith(f"{bucket}/models/") and s3().exists(path)
    fresh = make_tagloop(**settings)  # another process: loads the model from S3
    _, model = fresh.predictions.model("desk")
    assert next(fresh.predictions.classify(model, ["printer jammed"])).labels[0] == "HARDWARE"


def test_batch_with_input_and_output_on_s3(bucket, make_tagloop, postgres_db, tickets, write_csv):
    tagloop = make_tagloop(database_url=postgres_db, artifacts_url=f"s3://{bucket}/models")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(write_csv([list(r) for r in tickets]))))
    texts = [text for _, text in tickets]
    s3().pipe_file(f"{bucket}/batch-in/a.txt", ("\n".join(texts[:200]) + "\n").encode())
    s3().pipe_file(f"{bucket}/batch-in/more/b.txt", ("\n".join(texts[200:]) + "\n").encode())
    request = BatchRequest("desk", f"s3://{bucket}/batch-in/", f"s3://{bucket}/batch-out", shard_documents=50)
    job_id = tagloop.batch.submit(request)
    tagloop.start_workers()
    assert tagloop.queue.wait(job_id, timeout=120) == "COMPLETED", tagloop.jobs.show(job_id)["error"]
    fs = s3()
    out = f"{bucket}/batch-out/{job_id}"
    manifest = json.loads(fs.cat_file(f"{out}/{MANIFEST}"))
    assert manifest["documents"] == len(texts)
    seen = []
    for part in sorted(fs.glob(f"{out}/part-*.jsonl")):
        seen += [(r["File"], r["Line"]) for r in map(json.loads, fs.cat_file(part).decode().splitlines())]
    assert sorted(seen) == sorted(
        [("a.txt", i) for i in range(200)] + [("more/b.txt", i) for i in range(len(texts) - 200)]
    )


def test_bad_batch_input_on_s3(bucket, make_tagloop, postgres_db, tickets, write_csv):
    tagloop = make_tagloop(database_url=postgres_db, artifacts_url=f"s3://{bucket}/models")
    tagloop.training.train(TrainRequest(classifier="desk", data=str(write_csv([list(r) for r in tickets]))))
    with pytest.raises(InvalidRequest, match="does not exist"):
        tagloop.batch.submit(BatchRequest("desk", f"s3://{bucket}/nothing-here/", f"s3://{bucket}/out"))
    s3().pipe_file(f"{bucket}/bad/a.txt", b"fine\nbroken \xff line\n")
    job_id = tagloop.batch.submit(
        BatchRequest("desk", f"s3://{bucket}/bad/", f"s3://{bucket}/out", shard_documents=1)
    )
    tagloop.start_workers()
    assert tagloop.queue.wait(job_id, timeout=120) == "FAILED"
    assert "a.txt line 1 is not valid UTF-8" in tagloop.jobs.show(job_id)["error"]
    assert not s3().exists(f"{bucket}/out/{job_id}/{MANIFEST}")
    assert s3().glob(f"{bucket}/out/{job_id}/part-*") == []


def test_a_separate_process_reaches_s3_through_the_environment(bucket, tmp_path, tickets):
    data = tmp_path / "tickets.csv"
    data.write_bytes(tickets_csv(tickets))
    base = [sys.executable, "-m", "tagloop.cli", "--data-dir", str(tmp_path / "data")]
    base += ["--artifacts-url", f"s3://{bucket}/cli"]
    trained = subprocess.run(
        [*base, "train", "desk", "--data", str(data), "--json"], capture_output=True, text=True
    )
    assert trained.returncode == 0, trained.stderr
    assert s3().glob(f"{bucket}/cli/models/*/*/model.npz")
    out = subprocess.run(
        [*base, "classify", "desk", "refund my invoice", "--json"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Classes"][0]["Name"] == "BILLING"
