"""S3 entries of the data-location allowlist allow their bucket and prefix only (real moto server)."""

from __future__ import annotations

import csv
import io
import json
import tarfile

import fsspec
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from fastapi.testclient import TestClient

from tagloop.api.server import create_app
from tagloop.errors import LocationNotAllowed
from tagloop.services.data_locations import DataLocations
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

ROLE = "arn:aws:iam::123456789012:role/comprehend"


def s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", skip_instance_cache=True)


def csv_bytes(rows) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def refusal(field: str, url: str) -> str:
    return f"{field} {url!r} is not in an allowed data location (setting TAGLOOP_ALLOWED_DATA_URLS)"


@pytest.fixture
def buckets(bucket, tickets):
    """``bucket`` holding the tickets under ``inbox/``, ``inbox2/`` and ``other/``; a second bucket."""
    fs = s3()
    data = csv_bytes(tickets)
    for key in ("inbox/tickets.csv", "inbox2/tickets.csv", "other/tickets.csv"):
        fs.pipe_file(f"{bucket}/{key}", data)
    second = f"{bucket}-b"
    fs.mkdir(second)
    fs.pipe_file(f"{second}/inbox/tickets.csv", data)
    return bucket, second


def test_an_s3_entry_allows_its_prefix_only(buckets, make_tagloop, postgres_db):
    bucket, second = buckets
    locations = DataLocations([f"s3://{bucket}/inbox/"])
    checked = locations.check(f"s3://{bucket}/inbox/tickets.csv", "S3Uri")
    assert checked == f"s3://{bucket}/inbox/tickets.csv"
    tagloop = make_tagloop(database_url=postgres_db, artifacts_url=f"s3://{bucket}/models")
    assert tagloop.training.train(TrainRequest(classifier="desk", data=checked))["status"] == "TRAINED"
    for url in (
        f"s3://{bucket}/other/tickets.csv",  # exists
        f"s3://{bucket}/other/missing.csv",
        f"s3://{bucket}/inbox2/tickets.csv",  # a sibling prefix
        f"s3://{bucket}/inbox/../other/tickets.csv",
        f"s3://{bucket}/inbox/%2e%2e/other/tickets.csv",
        f"s3://{bucket}//inbox/tickets.csv",
        f"s3://{second}/inbox/tickets.csv",  # the same prefix in another bucket
        f"s3a://{bucket}/inbox/tickets.csv",
        f"simplecache::s3://{bucket}/inbox/tickets.csv",
        f"s3://{bucket}",
    ):
        with pytest.raises(LocationNotAllowed) as caught:
            locations.check(url, "S3Uri")
        assert caught.value.message == refusal("S3Uri", url)


def signed(client: TestClient, key: dict, operation: str, body: dict):
    """A JSON 1.1 Comprehend call signed with SigV4, as boto3 signs it."""
    request = AWSRequest(
        method="POST",
        url="http://testserver/",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Comprehend_20171127.{operation}",
        },
    )
    SigV4Auth(Credentials(key["access_key_id"], key["secret"]), "comprehend", "us-east-1").add_auth(request)
    return client.post("/", content=request.body, headers=dict(request.headers.items()))


def test_the_comprehend_api_reads_and_writes_in_the_allowed_s3_prefix_only(buckets, tickets, tmp_path):
    bucket, second = buckets
    settings = Settings(
        data_dir=tmp_path / "data",
        artifacts_url=f"s3://{bucket}/models",
        allowed_data_urls=(f"s3://{bucket}/inbox/",),
    )
    app = create_app(settings)
    tagloop = app.state.tagloop
    key = tagloop.keys.create("admin", "admin")
    with TestClient(app) as client:
        for url in (f"s3://{bucket}/other/tickets.csv", f"s3://{bucket}/inbox2/tickets.csv"):
            response = signed(
                client,
                key,
                "CreateDocumentClassifier",
                {
                    "DocumentClassifierName": "desk",
                    "DataAccessRoleArn": ROLE,
                    "LanguageCode": "en",
                    "InputDataConfig": {"S3Uri": url},
                },
            )
            assert response.status_code == 400
            assert response.json() == {
                "__type": "InvalidRequestException",
                "message": refusal("InputDataConfig.S3Uri", url),
            }
        created = signed(
            client,
            key,
            "CreateDocumentClassifier",
            {
                "DocumentClassifierName": "desk",
                "DataAccessRoleArn": ROLE,
                "LanguageCode": "en",
                "InputDataConfig": {"S3Uri": f"s3://{bucket}/inbox/tickets.csv"},
            },
        )
        assert created.status_code == 200, created.text
        job = tagloop.jobs.list(limit=1)[0]
        assert tagloop.queue.wait(job["id"], timeout=120) == "COMPLETED"

        s3().pipe_file(f"{bucket}/inbox/batch/a.txt", b"printer jammed\nrefund my invoice\n")
        start = {
            "DocumentClassifierArn": created.json()["DocumentClassifierArn"],
            "DataAccessRoleArn": ROLE,
            "InputDataConfig": {"S3Uri": f"s3://{bucket}/inbox/batch/", "InputFormat": "ONE_DOC_PER_LINE"},
        }
        for url in (f"s3://{bucket}/out", f"s3://{second}/inbox/out", f"s3://{bucket}/inbox2/out"):
            response = signed(
                client, key, "StartDocumentClassificationJob", start | {"OutputDataConfig": {"S3Uri": url}}
            )
            assert response.status_code == 400
            assert response.json()["message"] == refusal("OutputDataConfig.S3Uri", url)
        started = signed(
            client,
            key,
            "StartDocumentClassificationJob",
            start | {"OutputDataConfig": {"S3Uri": f"s3://{bucket}/inbox/out/"}},
        )
        assert started.status_code == 200, started.text
        job_id = started.json()["JobId"]
        assert tagloop.queue.wait(job_id, timeout=120) == "COMPLETED", tagloop.jobs.show(job_id)["error"]
    fs = s3()
    tarball = f"{bucket}/inbox/out/123456789012-CLN-{job_id}/output/output.tar.gz"
    assert tagloop.jobs.show(job_id)["result"]["output"] == f"s3://{tarball}"
    with tarfile.open(fileobj=io.BytesIO(fs.cat_file(tarball)), mode="r:gz") as tar:
        lines = tar.extractfile("predictions.jsonl").read().decode().splitlines()
    assert [(json.loads(line)["File"], json.loads(line)["Line"]) for line in lines] == [
        ("a.txt", 0),
        ("a.txt", 1),
    ]
    assert fs.ls(f"{bucket}/inbox/out/123456789012-CLN-{job_id}/", detail=False) == [
        f"{bucket}/inbox/out/123456789012-CLN-{job_id}/output"
    ]  # the parts were removed
    assert not fs.exists(f"{bucket}/out") and not fs.exists(f"{bucket}/inbox2/out")
