"""The HTTP server: health endpoint served by the real app over a real loopback socket."""

from __future__ import annotations

import json
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import boto3
import botocore.exceptions
import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from tagloop.api.server import create_app
from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.repositories import PredictionRepository
from tagloop.storage.tables import PredictionRow, utcnow


def test_healthz_in_process(settings):
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_answers_on_loopback(tmp_path):
    """A fresh install: the first admin key's secret goes to a 0600 file, never to the log."""
    port = _free_port()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "tagloop.cli", "--data-dir", str(data_dir), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start within 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        assert (data_dir / "tagloop.db").exists()
        key = json.loads((data_dir / "admin-key.json").read_text())
        endpoints = httpx.get(
            f"http://127.0.0.1:{port}/v1/endpoints", headers={"Authorization": f"Bearer {key['secret']}"}
        )
        assert endpoints.status_code == 200
    finally:
        process.terminate()
        _, log = process.communicate(timeout=10)
    log = log.decode()
    assert key["secret"] not in log
    assert f"its secret is in {(data_dir / 'admin-key.json').resolve()}" in log
    assert key["access_key_id"] in log
    for path in (data_dir, data_dir / "admin-key.json", data_dir / "tagloop.db"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def _listening_sockets(port: int) -> int:
    """How many sockets listen on ``port`` (Linux's /proc/net/tcp, state 0A)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A")


def test_workers_each_listen_and_share_new_connections(tmp_path):
    """With --workers 2 every worker has its own SO_REUSEPORT socket: the kernel spreads new
    connections over both (uvicorn's one shared socket let one worker take a whole burst)."""
    port = _free_port()
    command = [sys.executable, "-m", "tagloop.cli", "--data-dir", str(tmp_path), "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 60
        answered: set[int] = set()
        while len(answered) < 2:  # both workers up and reached over fresh connections
            try:
                answered.add(httpx.get(url, timeout=1).json()["process"])
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, f"only processes {answered} answered"
            time.sleep(0.05)
        seen = [httpx.get(url, timeout=5).json()["process"] for _ in range(40)]
        assert set(seen) == answered and min(seen.count(pid) for pid in answered) >= 5
        assert process.pid not in answered  # the parent supervises, workers serve
        assert _listening_sockets(port) == 2  # one per worker (uvicorn alone would have one, shared)
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_a_damaged_model_answers_503_without_paths_after_a_restart(tmp_path, tickets_csv, caplog):
    """Finding 8: a byte of a served model file flipped, the server restarted: classify
    answered 500 with the file's absolute path while the endpoint said IN_SERVICE."""
    settings = Settings(data_dir=tmp_path / "data")
    first = Tagloop(settings)
    try:
        first.training.train(TrainRequest(classifier="desk", data=str(tickets_csv)))
        first.queue.run_now(first.endpoints.create("help", "desk", "v1")["job_id"])
        key = first.keys.create("admin", "admin")
        path = Path(first.catalog.version("desk", "v1")["artifact"]["path"])
    finally:
        first.close()
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))

    app = create_app(settings, start_workers=False)  # the restart
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        bearer = {"Authorization": f"Bearer {key['secret']}"}
        message = (
            "endpoint 'help' is FAILED: its model version v1 failed to load (file damaged); "
            "see the server log"
        )
        for _ in range(2):  # the first request finds the damage, the second the FAILED endpoint
            response = httpx.post(
                f"{url}/v1/endpoints/help/classify", json={"text": "printer"}, headers=bearer
            )
            assert response.status_code == 503, response.text
            assert response.json()["error"] == {"type": "ResourceUnavailableException", "message": message}
        shown = httpx.get(f"{url}/v1/endpoints/help", headers=bearer).json()
        assert shown["status"] == "FAILED" and "failed to load (file damaged)" in shown["message"]

        comprehend = boto3.client(
            "comprehend",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=key["secret"],
        )
        arn = "arn:aws:comprehend:us-east-1:123456789012:document-classifier-endpoint/help"
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            comprehend.classify_document(Text="printer", EndpointArn=arn)
        assert caught.value.response["Error"] == {"Code": "ResourceUnavailableException", "Message": message}
        described = comprehend.describe_endpoint(EndpointArn=arn)["EndpointProperties"]
        assert described["Status"] == "FAILED" and described["Message"] == shown["message"]

        metrics = httpx.get(f"{url}/metrics", headers=bearer).text
        assert 'tagloop_endpoint_failed{endpoint="help"} 1.0' in metrics
        assert 'tagloop_model_load_failures_total{endpoint="help"} 1.0' in metrics
        for answer in (response.text, str(caught.value.response), shown, described, metrics):
            assert str(tmp_path) not in str(answer)
        assert str(path) in caplog.text  # the path is for the server's log only
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_metrics_need_the_metrics_token_or_an_admin_key(tmp_path):
    """/metrics names endpoints and labels: not for anyone; /healthz stays open."""
    app = create_app(
        Settings(data_dir=tmp_path / "data", metrics_token="prometheus-token"), start_workers=False
    )
    tagloop = app.state.tagloop
    admin, classify = (tagloop.keys.create(scope, scope)["secret"] for scope in ("admin", "classify"))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401
        assert "TAGLOOP_METRICS_TOKEN" in anonymous.json()["error"]["message"]
        assert "tagloop_requests" not in anonymous.text
        for secret, status in (("not-the-token", 401), (classify, 403)):
            assert client.get("/metrics", headers={"Authorization": f"Bearer {secret}"}).status_code == status
        for secret in ("prometheus-token", admin):
            scraped = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
            assert scraped.status_code == 200
            assert 'tagloop_requests_total{method="GET",route="/healthz",status="200"} 1.0' in scraped.text


def test_without_a_metrics_token_an_admin_key_reads_metrics(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data"), start_workers=False)
    admin = app.state.tagloop.keys.create("admin", "admin")["secret"]
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).status_code == 200


@pytest.mark.parametrize("docs", [True, False])
def test_api_docs_are_public_unless_turned_off(tmp_path, docs):
    app = create_app(Settings(data_dir=tmp_path / "data", api_docs=docs), start_workers=False)
    with TestClient(app) as client:
        paths = ("/openapi.json", "/docs", "/redoc", "/docs-assets/swagger-ui-bundle.js")
        statuses = {path: client.get(path).status_code for path in paths}
        assert statuses == dict.fromkeys(statuses, 200 if docs else 404)
        if docs:
            assert "/v1/keys" in client.get("/openapi.json").json()["paths"]


LOADED = re.compile(r"(?:src|href)\s*=\s*[\"']([^\"']+)[\"']|url:\s*'([^']+)'|spec-url=\"([^\"]+)\"")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_everything_from_the_server_itself(tmp_path, page):
    """Without internet the pages still work: every script, style, icon and schema they load is
    a path on this server, and each answers with its content."""
    app = create_app(Settings(data_dir=tmp_path / "data"), start_workers=False)
    with TestClient(app) as client:
        html = client.get(page).text
        loaded = {next(group for group in match if group) for match in LOADED.findall(html)}
        scripts = {url for url in loaded if url.endswith(".js")}
        assert scripts and "/openapi.json" in loaded, html
        for url in loaded:
            assert url.startswith("/") and not url.startswith("//"), url
            response = client.get(url)
            assert response.status_code == 200, url
            assert CONTENT_TYPES[Path(url).suffix] in response.headers["content-type"], url
            assert len(response.content) > 1_000, url
        if page == "/docs":
            assert "/docs-assets/swagger-ui.css" in loaded
            assert b"SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").content
            assert client.get("/docs/oauth2-redirect").status_code == 200
        missing = client.get("/docs-assets/nothing.js")
        assert missing.status_code == 404 and "error" in missing.json()  # the API's error shape


def test_a_server_deletes_predictions_older_than_the_retention(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data", prediction_retention_days=7), start_workers=False)
    tagloop = app.state.tagloop
    logged = {"endpoint": "desk", "version_id": None, "text": "t", "result": '{"Classes": []}'}
    rows = [
        logged
        | {"id": "old", "top_label": None, "top_score": None, "created_at": utcnow() - timedelta(days=8)},
        logged
        | {"id": "new", "top_label": None, "top_score": None, "created_at": utcnow() - timedelta(days=6)},
    ]
    with tagloop.database.transaction() as session:
        PredictionRepository(session).add_many(rows)

    def left() -> list[str]:
        with tagloop.database.reading() as session:
            return list(session.scalars(select(PredictionRow.id).order_by(PredictionRow.id)))

    assert left() == ["new", "old"]
    with TestClient(app):  # starting deletes what is too old (and every hour after)
        deadline = time.monotonic() + 30
        while left() != ["new"]:
            assert time.monotonic() < deadline, left()
            time.sleep(0.05)
