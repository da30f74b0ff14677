"""What the A2I tests share: a live server per test module (its APIs may write under
``allowed/``), keys of each scope, boto3 clients signing with them, and loop task rows as
ReviewService stores them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from sqlalchemy import select

from tagloop.api.server import create_app
from tagloop.app import Tagloop
from tagloop.services.human_loops import FlowRequest
from tagloop.settings import Settings
from tagloop.storage.tables import ReviewTaskRow

REGION, ACCOUNT = "us-east-1", "123456789012"


@dataclass
class A2iServer:
    url: str
    keys: dict[str, dict[str, Any]]
    tagloop: Tagloop
    root: Path

    def client(
        self, service: str, scope: str = "admin", checked: bool = True, secret: str | None = None
    ) -> Any:
        """A boto3 client signing with a tagloop key; ``checked=False`` leaves out botocore's
        own parameter checks, so that the server's are what refuses."""
        key = self.keys[scope]
        return boto3.client(
            service,
            endpoint_url=self.url,
            aws_access_key_id=key["access_key_id"],
            aws_secret_access_key=secret or key["secret"],
            region_name=REGION,
            config=Config(parameter_validation=checked, retries={"max_attempts": 1}),
        )

    def flow(self, name: str, task_ui: str = "tagloop", title: str = "Route tickets", **changes: Any) -> Any:
        """A flow definition made through the service, its output in ``allowed/out/``."""
        values: dict[str, Any] = dict(
            name=name,
            task_ui=task_ui,
            title=title,
            description="Choose a team",
            task_count=1,
            output_path=f"file://{self.root}/allowed/out/",
        )
        return self.tagloop.human_loops.create_flow(FlowRequest(**(values | changes)))

    def bearer(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]['secret']}"}

    def loop_row(
        self,
        flow: str,
        content: Any,
        name: str | None = None,
        status: str = "InProgress",
        created_at: datetime | None = None,
    ) -> str:
        """A human loop's review task as ReviewService stores one; returns its id."""
        task_id = str(uuid.uuid4())
        with self.tagloop.database.transaction() as session:
            session.add(
                ReviewTaskRow(
                    id=task_id,
                    text="",
                    mode="MULTI_CLASS",
                    choices=[],
                    reason="a2i",
                    status=status,
                    queue="review" if status == "InProgress" else None,
                    loop_name=name or f"loop-{task_id[:8]}",
                    flow_definition_id=self.tagloop.human_loops.flow(flow).id,
                    input_content=content,
                    created_at=created_at or datetime.now(UTC),
                )
            )
        return task_id

    def loop_task(self, loop_name: str) -> str:
        """The review task of a human loop (one started through the A2I API, say)."""
        query = select(ReviewTaskRow.id).where(ReviewTaskRow.loop_name == loop_name)
        with self.tagloop.database.transaction() as session:
            return str(session.scalars(query).one())


@pytest.fixture(scope="module")
def a2i(tmp_path_factory, serve_in_thread) -> Any:
    root = tmp_path_factory.mktemp("a2i")
    (root / "allowed").mkdir()
    app = create_app(Settings(data_dir=root / "data", allowed_data_urls=(f"file://{root}/allowed/",)))
    tagloop = app.state.tagloop
    keys = {scope: tagloop.keys.create(scope, scope) for scope in ("classify", "review", "admin")}
    with serve_in_thread(app) as port:
        yield A2iServer(f"http://127.0.0.1:{port}", keys, tagloop, root)


def error_code(info: pytest.ExceptionInfo) -> str:
    return str(info.value.response["Error"]["Code"])


@pytest.fixture(scope="session")
def code() -> Any:
    """``code(caught)``: the AWS error name of a botocore ClientError."""
    return error_code


@pytest.fixture(scope="session")
def status() -> Any:
    """``status(caught)``: the HTTP status of a botocore ClientError."""
    return lambda info: info.value.response["ResponseMetadata"]["HTTPStatusCode"]
