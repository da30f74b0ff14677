"""No-auth (development) mode: loopback binds only, and only this machine's same-origin requests.

A real server on a loopback port (uvicorn in a thread) answers what a browser would send: a
DNS-rebinding page names itself in ``Host``; a drive-by page sends a ``text/plain`` POST with
its ``Origin``. And the real ``tagloop serve`` refuses to listen anywhere else without keys.
"""

from __future__ import annotations

import os
import subprocess
import sys

import cbor2
import httpx
import pytest

from tagloop.api.local_only import check_bind, refusal
from tagloop.api.server import create_app
from tagloop.errors import ConfigurationError
from tagloop.settings import Settings

CREATE = "/service/Comprehend_20171127/operation/CreateDocumentClassifier"


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory, tickets, serve_in_thread):
    """A server with authentication off on a loopback port, a key in its database, a CSV file."""
    import csv

    root = tmp_path_factory.mktemp("no-auth")
    data = root / "tickets.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(tickets)
    app = create_app(Settings(data_dir=root / "data", auth=False), start_workers=False)
    tagloop = app.state.tagloop
    tagloop.keys.create("someone", "admin")
    with serve_in_thread(app) as port:
        yield port, tagloop, data


def get(port: int, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)


def test_requests_to_its_own_loopback_names_are_answered(dev_server):
    port, _, _ = dev_server
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        response = get(port, "/v1/keys", host=host)
        assert response.status_code == 200, (host, response.text)
        assert [key["name"] for key in response.json()] == ["someone"]
    same_origin = get(
        port, "/v1/keys", origin=f"http://127.0.0.1:{port}", **{"sec-fetch-site": "same-origin"}
    )
    assert same_origin.status_code == 200
    assert get(port, "/metrics").status_code == 200  # open: only this machine can ask


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "rebound.attacker.example:{port}"},  # DNS rebinding: the page's own name
        {"host": "rebound.attacker.example"},
        {"host": "127.0.0.1:1"},  # another port: another server's origin
        {"host": "127.0.0.1.attacker.example:{port}"},
        {"host": "127.0.0.1:{port}:{port}"},
        {"origin": "http://attacker.example"},
        {"origin": "http://127.0.0.1:1"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
    ],
)
def test_foreign_hosts_and_origins_are_refused(dev_server, headers):
    port, _, _ = dev_server
    headers = {name: value.format(port=port) for name, value in headers.items()}
    for path in ("/v1/keys", "/healthz", "/metrics", "/openapi.json"):
        response = get(port, path, **headers)
        assert response.status_code == 403, (path, headers, response.text)
        assert response.json()["error"]["type"] == "AccessDeniedException"
        assert "someone" not in response.text


def test_a_drive_by_cbor_post_from_a_web_page_does_not_train(dev_server):
    """What a browser sends for a form-like `text/plain` POST (no CORS preflight) from a foreign page."""
    port, tagloop, data = dev_server
    body = cbor2.dumps(
        {
            "DocumentClassifierName": "planted",
            "DataAccessRoleArn": "arn:aws:iam::123456789012:role/unused",
            "InputDataConfig": {"S3Uri": f"file://{data}"},
            "LanguageCode": "en",
        }
    )
    for headers in (
        {"origin": "http://attacker.example", "sec-fetch-site": "cross-site"},
        {"origin": "http://attacker.example"},
        {"host": f"attacker.example:{port}"},  # rebinding: same-origin for the browser
    ):
        response = httpx.post(
            f"http://127.0.0.1:{port}{CREATE}",
            content=body,
            headers={"content-type": "text/plain", "smithy-protocol": "rpc-v2-cbor", **headers},
            timeout=10,
        )
        assert response.status_code == 403, (headers, response.content)
    assert tagloop.catalog.classifiers() == []


@pytest.mark.parametrize(
    ("client", "allowed"),
    [
        (("127.0.0.1", 5000), True),
        (("::1", 5000), True),
        (("192.0.2.7", 5000), False),
        (("10.0.0.2", 1), False),
    ],
)
def test_only_loopback_clients_are_answered(client, allowed):
    """Even when started another way (uvicorn --factory on 0.0.0.0 with TAGLOOP_AUTH=false)."""
    scope = {
        "type": "http",
        "scheme": "http",
        "client": client,
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000")],
    }
    assert (refusal(scope) is None) == allowed


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_are_allowed(host):
    check_bind(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.7", "example.org", "localhost.example.org"])
def test_other_binds_are_refused(host):
    with pytest.raises(ConfigurationError, match="loopback host only"):
        check_bind(host)


def test_serve_without_auth_refuses_a_public_bind(tmp_path, free_port):
    """`--no-auth` and TAGLOOP_AUTH=false are one switch: both refuse 0.0.0.0 with one line."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TAGLOOP_")}
    command = [sys.executable, "-m", "tagloop.cli", "--data-dir", str(tmp_path / "data"), "serve"]
    port = str(free_port())
    started = [
        subprocess.Popen(
            [*command, *flags, "--host", "0.0.0.0", "--port", port],
            env={**environment, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flags, extra in (([], {"TAGLOOP_AUTH": "false"}), (["--no-auth"], {}))
    ]
    for process in started:
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("the server started on 0.0.0.0 without authentication")
        assert process.returncode == 1, stderr
        assert stderr.startswith("error: authentication is off"), stderr
        assert "loopback host only" in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything
