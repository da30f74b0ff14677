"""Idempotent creates: the ClientRequestToken of Comprehend's create and start operations.

boto3 fills ``ClientRequestToken`` with a fresh UUID for each call of CreateDocumentClassifier,
CreateEndpoint, StartDocumentClassificationJob, CreateFlywheel and CreateDataset, and sends the
same one again when it retries that call (a timeout, a dropped connection, a 5xx). Without a
memory of tokens, the retry of a request that did succeed would start a second batch job, or
fail with "already exists" although the caller's resource was created. So the first request
with a token reserves it (per caller: the access key), its answer is kept for
TAGLOOP_REQUEST_TOKEN_HOURS, and a retry with the same token and the same parameters gets that
answer again without running anything. The same token with other parameters is refused; a
retry that arrives while the first is still running is asked to wait (TooManyRequestsException,
which boto3 retries); a request that failed releases its token, so its retry runs afresh; a
reservation whose request died with its process is taken over after a while.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from tagloop.errors import InvalidRequest, RequestInProgress
from tagloop.storage.database import Database
from tagloop.storage.request_tokens import RequestTokenRepository
from tagloop.storage.tables import utcnow

TOKEN = "ClientRequestToken"
TAKEOVER = timedelta(minutes=15)
"""A reservation without an answer this old belongs to a request that died: taken over."""


def digest(params: dict[str, Any]) -> str:
    """The request's parameters, token left out, in a canonical form."""
    rest = {key: value for key, value in params.items() if key != TOKEN}
    return hashlib.sha256(orjson.dumps(rest, default=repr, option=orjson.OPT_SORT_KEYS)).hexdigest()


class RequestTokens:
    def __init__(self, database: Database, keep_hours: float) -> None:
        self.database = database
        self.keep = timedelta(hours=keep_hours)

    def run(
        self,
        caller: str,
        operation: str,
        params: dict[str, Any],
        call: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """``call()``'s answer; with a token in ``params``, at most once per token."""
        token = params.get(TOKEN)
        if not isinstance(token, str) or not token or self.keep <= timedelta(0):
            return call()
        wanted = digest(params)
        reserved = self._reserve(caller, operation, token, wanted)
        if isinstance(reserved, dict):
            return reserved
        try:
            response = call()
        except BaseException:
            with self.database.transaction() as session:
                RequestTokenRepository(session).release(reserved)
            raise
        with self.database.transaction() as session:
            RequestTokenRepository(session).answer(reserved, response)
        return response

    def _reserve(self, caller: str, operation: str, token: str, wanted: str) -> int | dict[str, Any]:
        """The id of this request's reservation, or the answer kept for the token."""
        now = utcnow()
        try:
            with self.database.transaction() as session:
                tokens = RequestTokenRepository(session)
                tokens.forget_before(now - self.keep)
                found = tokens.find(caller, operation, token)
                if found is None:
                    return tokens.add(caller, operation, token, wanted)
                if found.digest != wanted:
                    raise InvalidRequest(
                        f"ClientRequestToken {token!r} was used for another {operation} request "
                        "with other parameters: use a new token for a new request"
                    )
                if found.response is not None:
                    return dict(found.response)
                if found.created_at > now - TAKEOVER:
                    raise RequestInProgress(
                        f"a {operation} request with ClientRequestToken {token!r} is still being "
                        "handled; try again shortly"
                    )
                found.created_at = now  # its first request died: this one takes it over
                return found.id
        except IntegrityError as exc:  # a twin reserved it between our read and our insert
            raise RequestInProgress(
                f"a {operation} request with ClientRequestToken {token!r} is being handled; try again shortly"
            ) from exc
