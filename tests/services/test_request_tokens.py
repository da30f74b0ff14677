"""ClientRequestTokens: a retried create answers as the first did, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from tagloop.errors import InvalidRequest, NotFound, RequestInProgress
from tagloop.services.request_tokens import TAKEOVER, RequestTokens, digest
from tagloop.storage.tables import RequestTokenRow, utcnow


@pytest.fixture
def tokens(make_tagloop, database_url):
    return make_tagloop(database_url=database_url).request_tokens


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict:
        self.calls += 1
        return {"JobId": f"job-{self.calls}", "JobStatus": "SUBMITTED"}


PARAMS = {"ClientRequestToken": "t-1", "JobName": "nightly", "InputDataConfig": {"S3Uri": "s3://b/in"}}


def test_a_retry_with_the_same_token_gets_the_first_answer_without_running_again(tokens):
    call = Counter()
    first = tokens.run("AKIA1", "StartDocumentClassificationJob", PARAMS, call)
    again = tokens.run("AKIA1", "StartDocumentClassificationJob", dict(reversed(PARAMS.items())), call)
    assert first == again == {"JobId": "job-1", "JobStatus": "SUBMITTED"}
    assert call.calls == 1


def test_tokens_belong_to_one_caller_and_one_operation(tokens):
    call = Counter()
    tokens.run("AKIA1", "StartDocumentClassificationJob", PARAMS, call)
    assert tokens.run("AKIA2", "StartDocumentClassificationJob", PARAMS, call)["JobId"] == "job-2"
    assert tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)["JobId"] == "job-3"
    assert call.calls == 3


def test_without_a_token_every_request_runs(tokens):
    call = Counter()
    params = {key: value for key, value in PARAMS.items() if key != "ClientRequestToken"}
    tokens.run("AKIA1", "CreateEndpoint", params, call)
    tokens.run("AKIA1", "CreateEndpoint", params | {"ClientRequestToken": ""}, call)
    assert call.calls == 2


def test_the_same_token_with_other_parameters_is_refused(tokens):
    call = Counter()
    tokens.run("AKIA1", "StartDocumentClassificationJob", PARAMS, call)
    with pytest.raises(InvalidRequest, match="other parameters"):
        tokens.run("AKIA1", "StartDocumentClassificationJob", PARAMS | {"JobName": "other"}, call)
    assert call.calls == 1


def test_a_failed_request_releases_its_token_so_its_retry_runs(tokens):
    def fails() -> dict:
        raise NotFound("no classifier 'desk'")

    with pytest.raises(NotFound):
        tokens.run("AKIA1", "CreateEndpoint", PARAMS, fails)
    call = Counter()
    assert tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)["JobId"] == "job-1"


def test_a_retry_while_the_first_runs_is_asked_to_wait_and_then_gets_its_answer(tokens):
    started, release = threading.Event(), threading.Event()
    answers: list[dict] = []

    def slow() -> dict:
        started.set()
        assert release.wait(30)
        return {"EndpointArn": "arn:1"}

    first = threading.Thread(
        target=lambda: answers.append(tokens.run("AKIA1", "CreateEndpoint", PARAMS, slow))
    )
    first.start()
    assert started.wait(30)
    call = Counter()
    with pytest.raises(RequestInProgress, match="still being handled"):
        tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)
    release.set()
    first.join(30)
    assert tokens.run("AKIA1", "CreateEndpoint", PARAMS, call) == answers[0] == {"EndpointArn": "arn:1"}
    assert call.calls == 0


def test_a_reservation_whose_request_died_is_taken_over(tokens):
    # a process killed mid-request leaves its reservation unanswered
    with tokens.database.transaction() as session:
        session.add(
            RequestTokenRow(
                caller="AKIA1",
                operation="CreateEndpoint",
                token="t-1",
                digest=digest(PARAMS),
                created_at=utcnow(),
            )
        )
    call = Counter()
    with pytest.raises(RequestInProgress):
        tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)
    with tokens.database.transaction() as session:
        session.execute(update(RequestTokenRow).values(created_at=utcnow() - TAKEOVER - timedelta(seconds=1)))
    assert tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)["JobId"] == "job-1"
    assert tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)["JobId"] == "job-1"


def test_answers_are_forgotten_after_the_kept_hours(make_tagloop, database_url):
    tokens = RequestTokens(make_tagloop(database_url=database_url).database, keep_hours=1)
    call = Counter()
    tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)
    with tokens.database.transaction() as session:
        session.execute(update(RequestTokenRow).values(created_at=utcnow() - timedelta(hours=2)))
    assert tokens.run("AKIA1", "CreateEndpoint", PARAMS, call)["JobId"] == "job-2"
    off = RequestTokens(tokens.database, keep_hours=0)
    assert off.run("AKIA1", "CreateEndpoint", PARAMS, call)["JobId"] == "job-3"
