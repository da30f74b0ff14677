"""A2I's resources as tagloop keeps them: worker task templates (HumanTaskUi), flow
definitions, and human loops, which are review tasks (``ReviewService``) with a loop name.

- A task UI is a Liquid HTML template (``services/task_templates.py`` checks it parses).
  The name ``tagloop`` is reserved: a flow whose ``HumanTaskUiArn`` names it shows its loops
  on tagloop's own keyboard-first review page instead of a template.
- A flow definition says how many answers a loop needs (TaskCount 1-3), how long a task is
  offered (TaskAvailabilityLifetimeInSeconds) and held by a reviewer (TaskTimeLimitInSeconds),
  and where a completed loop's ``output.json`` goes. ``RoleArn`` and ``WorkteamArn`` are only
  recorded. The labels reviewers choose from on tagloop's page come from tags: ``tagloop:classifier``
  names a classifier (its newest version's labels), ``tagloop:labels`` lists labels separated
  by ``/`` (tag values cannot hold commas or ``|``), ``tagloop:mode`` is ``MULTI_CLASS``
  (default) or ``MULTI_LABEL``.
- Output location: ``OutputConfig.S3OutputPath`` is used when it lies inside the data
  locations the operator allows (``TAGLOOP_ALLOWED_DATA_URLS`` or the artifact store);
  otherwise the loop's output goes to the artifact store, under ``human-loops/``. An API
  caller never makes the server write anywhere else.
- A completed loop's ``output.json`` is written at
  ``<output>/<flow name>/YYYY/MM/DD/hh/mm/ss/<loop name>/output.json`` (the loop's creation
  time, UTC) in A2I's shape, by the listener ReviewService calls after the task completes.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from tagloop.domain.a2i import A2iArns
from tagloop.domain.records import Mode
from tagloop.domain.review import NewTask
from tagloop.errors import (
    AlreadyExists,
    Conflict,
    InvalidRequest,
    NotFound,
    ResourceInUse,
    ServiceUnavailable,
)
from tagloop.services.data_locations import DataLocations
from tagloop.services.review import ReviewService
from tagloop.services.task_templates import check_template
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database
from tagloop.storage.human_loops import IN_PROGRESS, HumanLoopRepository, PageRequest
from tagloop.storage.tables import FlowDefinitionRow, HumanTaskUiRow, ReviewAnswerRow, ReviewTaskRow

log = logging.getLogger(__name__)

TAGLOOP_PAGE = "tagloop"
"""The reserved task UI name: loops of its flows are shown on tagloop's own review page."""
CLASSIFIER_TAG, LABELS_TAG, MODE_TAG = "tagloop:classifier", "tagloop:labels", "tagloop:mode"
LABEL_SEPARATOR = "/"
OUTPUT_FOLDER = "human-loops"  # in the artifact store, for flows whose S3OutputPath is not allowed
MAX_INPUT_BYTES = 3 * 1024 * 1024  # A2I's limit on InputContent
TEXT_KEYS = ("taskObject", "text", "Text", "sentence", "document", "content")
SHOWN_TEXT_CHARS = 100_000


@dataclass(frozen=True)
class TaskUi:
    name: str
    content: str
    status: str
    created_at: datetime
    tags: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class FlowRequest:
    name: str
    task_ui: str  # a task UI's name, or TAGLOOP_PAGE
    title: str
    description: str
    task_count: int
    output_path: str
    availability_seconds: int | None = None
    time_limit_seconds: int | None = None
    role_arn: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # what AWS takes and tagloop only records


@dataclass(frozen=True)
class Flow:
    id: int
    name: str
    task_ui: str
    title: str
    description: str
    task_count: int
    availability_seconds: int
    time_limit_seconds: int
    output_path: str  # as the caller gave it
    output_root: str  # where output.json files go
    role_arn: str | None
    status: str
    created_at: datetime
    labels: list[str]
    classifier: str | None
    classifier_id: int | None
    mode: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Loop:
    task_id: str
    name: str
    flow: str
    status: str
    created_at: datetime
    input_content: Any
    failure_reason: str | None
    failure_code: str | None
    output_uri: str | None


@dataclass(frozen=True)
class LoopTask:
    task_id: str
    loop_name: str
    template: str | None
    input_content: Any
    status: str
    title: str
    description: str


def _task_ui(row: HumanTaskUiRow) -> TaskUi:
    return TaskUi(row.name, row.content, row.status, row.created_at, list(row.tags or []))


def _tag(tags: list[dict[str, str]], key: str) -> str | None:
    return next((tag.get("Value", "") for tag in tags if tag.get("Key") == key), None)


def loop_text(input_content: Any) -> str:
    """A readable text of a loop's input for lists and tagloop's page: its ``taskObject``,
    ``text`` (or a like key) when it is a string, else the JSON itself."""
    if isinstance(input_content, str):
        return input_content[:SHOWN_TEXT_CHARS]
    if isinstance(input_content, dict):
        for key in TEXT_KEYS:
            if isinstance(input_content.get(key), str):
                return str(input_content[key])[:SHOWN_TEXT_CHARS]
    return json.dumps(input_content, ensure_ascii=False)[:SHOWN_TEXT_CHARS]


def parse_input(text: str) -> Any:
    """A loop's InputContent (a JSON document of at most 3 MB) parsed, or InvalidRequest."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_INPUT_BYTES:
        raise InvalidRequest(f"InputContent is {size:,} bytes; at most {MAX_INPUT_BYTES:,} are allowed")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRequest("InputContent must be a valid JSON document") from None


def output_key(flow: str, loop: str, created_at: datetime) -> str:
    """Where a loop's output.json goes under its flow's output location (A2I's layout)."""
    return f"{flow}/{created_at.astimezone(UTC).strftime('%Y/%m/%d/%H/%M/%S')}/{loop}/output.json"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def answer_content(row: ReviewAnswerRow, mode: str) -> Any:
    """What an answer's ``answerContent`` is in output.json: what the template's form submitted,
    or for an answer given on tagloop's page what a crowd-classifier would have submitted
    (``{"category": {"label": ...}}``, multi-label ``{"category": {"labels": [...]}}``)."""
    if row.answer_content is not None:
        return row.answer_content
    labels = list(row.labels or [])
    if mode == "MULTI_LABEL":
        return {"category": {"labels": labels}}
    return {"category": {"label": labels[0] if labels else None}}


class HumanLoopService:
    """Task UIs, flow definitions and human loops (review tasks with a loop name)."""

    def __init__(
        self,
        database: Database,
        locations: DataLocations,
        artifacts_url: str,
        arns: A2iArns,
        review: ReviewService | None = None,
    ) -> None:
        self.database = database
        self.arns = arns
        self.locations = locations
        self.default_output = f"{artifacts_url.rstrip('/')}/{OUTPUT_FOLDER}"
        self.review = review
        if review is not None:
            review.add_listener(self._completed)

    # --- task UIs -----------------------------------------------------------------------

    def create_task_ui(self, name: str, content: str, tags: list[dict[str, str]] | None = None) -> TaskUi:
        if name == TAGLOOP_PAGE:
            raise AlreadyExists(
                f"the task UI name {TAGLOOP_PAGE!r} is reserved for tagloop's own review page"
            )
        check_template(content)
        with _unique(f"HumanTaskUi {name!r} already exists"), self.database.transaction() as session:
            repository = HumanLoopRepository(session)
            if repository.task_ui(name) is not None:
                raise AlreadyExists(f"HumanTaskUi {name!r} already exists")
            return _task_ui(repository.add_task_ui(name, content, list(tags or [])))

    def task_ui(self, name: str) -> TaskUi:
        with self.database.reading() as session:
            row = HumanLoopRepository(session).task_ui(name)
            if row is None:
                raise NotFound(f"HumanTaskUi {name!r} does not exist")
            return _task_ui(row)

    def delete_task_ui(self, name: str) -> None:
        with self.database.transaction() as session:
            repository = HumanLoopRepository(session)
            row = repository.task_ui(name)
            if row is None:
                raise NotFound(f"HumanTaskUi {name!r} does not exist")
            if repository.flows_using(row.id):
                raise ResourceInUse(f"HumanTaskUi {name!r} is used by a flow definition: delete that first")
            repository.delete_task_ui(row)

    def task_uis(self, page: PageRequest) -> tuple[list[TaskUi], str | None]:
        with self.database.reading() as session:
            rows, token = HumanLoopRepository(session).task_uis(page)
            return [_task_ui(row) for row in rows], token

    # --- flow definitions ---------------------------------------------------------------

    def create_flow(self, request: FlowRequest) -> Flow:
        output_root = self._output_root(request.output_path)
        mode = (_tag(request.tags, MODE_TAG) or "MULTI_CLASS").upper().replace("-", "_")
        if mode not in ("MULTI_CLASS", "MULTI_LABEL"):
            raise InvalidRequest(f"tag {MODE_TAG} must be MULTI_CLASS or MULTI_LABEL")
        taken = f"FlowDefinition {request.name!r} already exists"
        with _unique(taken), self.database.transaction() as session:
            repository = HumanLoopRepository(session)
            if repository.flow(request.name) is not None:
                raise AlreadyExists(taken)
            ui_id = None
            if request.task_ui != TAGLOOP_PAGE:
                ui = repository.task_ui(request.task_ui)
                if ui is None:
                    raise NotFound(f"HumanTaskUi {request.task_ui!r} does not exist")
                ui_id = ui.id
            classifier_id, labels = self._labels(repository, request.tags)
            row = repository.add_flow(
                name=request.name,
                task_ui_id=ui_id,
                classifier_id=classifier_id,
                labels=labels,
                title=request.title,
                description=request.description,
                task_count=request.task_count,
                availability_seconds=request.availability_seconds or 864_000,
                time_limit_seconds=request.time_limit_seconds or 3_600,
                output_path=request.output_path,
                role_arn=request.role_arn,
                config={
                    **request.config,
                    "output_root": output_root,
                    "mode": mode,
                    "tags": request.tags,
                    "classifier": _tag(request.tags, CLASSIFIER_TAG),
                },
            )
            return self._flow(repository, row)

    def flow(self, name: str) -> Flow:
        with self.database.reading() as session:
            repository = HumanLoopRepository(session)
            return self._flow(repository, self._flow_row(repository, name))

    def flows(self, page: PageRequest) -> tuple[list[Flow], str | None]:
        with self.database.reading() as session:
            repository = HumanLoopRepository(session)
            rows, token = repository.flows(page)
            return [self._flow(repository, row) for row in rows], token

    def delete_flow(self, name: str) -> None:
        with self.database.transaction() as session:
            repository = HumanLoopRepository(session)
            row = self._flow_row(repository, name)
            if repository.active_loops(row.id):
                raise ResourceInUse(f"FlowDefinition {name!r} has human loops in progress: stop them first")
            repository.delete_flow(row)

    def _output_root(self, path: str) -> str:
        """The flow's output location: S3OutputPath when allowed, else the artifact store."""
        try:
            return self.locations.check(path.rstrip("/") or path, "OutputConfig.S3OutputPath").rstrip("/")
        except InvalidRequest:
            return self.default_output

    @staticmethod
    def _labels(repository: HumanLoopRepository, tags: list[dict[str, str]]) -> tuple[int | None, list[str]]:
        labels_tag = _tag(tags, LABELS_TAG)
        classifier = _tag(tags, CLASSIFIER_TAG)
        labels = [label.strip() for label in (labels_tag or "").split(LABEL_SEPARATOR) if label.strip()]
        if classifier is None:
            return None, list(dict.fromkeys(labels))
        found = repository.classifier_labels(classifier)
        if found is None:
            raise NotFound(f"tag {CLASSIFIER_TAG} names no classifier: {classifier!r}")
        row, own = found
        return row.id, list(dict.fromkeys(labels or own))

    @staticmethod
    def _flow_row(repository: HumanLoopRepository, name: str) -> FlowDefinitionRow:
        row = repository.flow(name)
        if row is None:
            raise NotFound(f"FlowDefinition {name!r} does not exist")
        return row

    @staticmethod
    def _flow(repository: HumanLoopRepository, row: FlowDefinitionRow) -> Flow:
        ui = repository.task_ui_by_id(row.task_ui_id) if row.task_ui_id is not None else None
        config = dict(row.config or {})
        return Flow(
            id=row.id,
            name=row.name,
            task_ui=ui.name if ui is not None else TAGLOOP_PAGE,
            title=row.title,
            description=row.description,
            task_count=row.task_count,
            availability_seconds=row.availability_seconds,
            time_limit_seconds=row.time_limit_seconds,
            output_path=row.output_path,
            output_root=str(config.get("output_root") or ""),
            role_arn=row.role_arn,
            status=row.status,
            created_at=row.created_at,
            labels=list(row.labels or []),
            classifier=config.get("classifier"),
            classifier_id=row.classifier_id,
            mode=str(config.get("mode") or "MULTI_CLASS"),
            config=config,
        )

    # --- human loops --------------------------------------------------------------------

    def start_loop(self, name: str, flow_name: str, content: str) -> Loop:
        """Start a human loop: one review task holding the loop's input. A name in use is
        refused (Conflict) unless the loop it names has the same flow and input: starting it
        again then answers the loop that exists (a retried request)."""
        parsed = parse_input(content)
        with self.database.reading() as session:
            repository = HumanLoopRepository(session)
            flow = self._flow(repository, self._flow_row(repository, flow_name))
            existing = repository.loop(name)
            if existing is not None:
                return self._same_loop(repository, existing, flow, parsed)
        if flow.status != "Active":
            raise ResourceInUse(f"FlowDefinition {flow_name!r} is {flow.status}")
        if self.review is None:
            raise ServiceUnavailable("human review is not running in this process")
        task = NewTask(
            text=loop_text(parsed),
            mode=Mode(flow.mode),
            choices=tuple(flow.labels),
            reason="a2i",
            classifier_id=flow.classifier_id,
            required=flow.task_count,
            lease_seconds=flow.time_limit_seconds,
            lifetime_seconds=flow.availability_seconds,
            loop_name=name,
            flow_definition_id=flow.id,
            input_content=parsed,
        )
        try:
            self.review.add_tasks([task])
        except (IntegrityError, Conflict):  # the same name started at the same moment
            with self.database.reading() as session:
                repository = HumanLoopRepository(session)
                existing = repository.loop(name)
                if existing is None:
                    raise
                return self._same_loop(repository, existing, flow, parsed)
        return self.loop(name)

    def _same_loop(
        self, repository: HumanLoopRepository, row: ReviewTaskRow, flow: Flow, parsed: Any
    ) -> Loop:
        if row.flow_definition_id != flow.id or row.input_content != parsed:
            raise Conflict(
                f"a human loop named {row.loop_name!r} exists with other input: "
                "human loop names must be unique"
            )
        return self._loop(repository, row)

    def stop_loop(self, name: str) -> None:
        """Stop a loop in progress (a stopped or finished one stays as it is)."""
        loop = self.loop(name)
        if loop.status not in (IN_PROGRESS,):
            return
        if self.review is None:
            raise ServiceUnavailable("human review is not running in this process")
        self.review.stop(loop.task_id)

    def loop(self, name: str) -> Loop:
        for attempt in (1, 2):
            with self.database.reading() as session:
                repository = HumanLoopRepository(session)
                row = repository.loop(name)
                if row is None:
                    raise NotFound(f"human loop {name!r} does not exist")
                unwritten = row.status == "Completed" and row.output_uri is None
                if attempt == 2 or not (unwritten or self._expired_unswept([row])):
                    return self._loop(repository, row)
                task_id = row.id
            if unwritten:
                with contextlib.suppress(Exception):  # logged by the listener's first try; retried later
                    self.write_output(task_id)
            else:
                self._sweep_expired()
        raise AssertionError("unreachable")

    def loops(self, flow: str | None, page: PageRequest) -> tuple[list[Loop], str | None]:
        for attempt in (1, 2):
            with self.database.reading() as session:
                repository = HumanLoopRepository(session)
                flow_id = self._flow_row(repository, flow).id if flow is not None else None
                rows, token = repository.loops(flow_id, page)
                if attempt == 2 or not self._expired_unswept(rows):
                    return [self._loop(repository, row) for row in rows], token
            self._sweep_expired()
        raise AssertionError("unreachable")

    def _expired_unswept(self, rows: Sequence[ReviewTaskRow]) -> bool:
        """Whether one of these loops has outlived its TaskAvailabilityLifetimeInSeconds but is
        still InProgress because no sweep ran since: it must be described as Failed already."""
        if self.review is None:
            return False
        now = self.review.clock()
        return any(
            row.status == IN_PROGRESS and row.expires_at is not None and row.expires_at <= now for row in rows
        )

    def _sweep_expired(self) -> None:
        assert self.review is not None
        self.review.sweep()

    def delete_loop(self, name: str) -> None:
        with self.database.transaction() as session:
            repository = HumanLoopRepository(session)
            row = repository.loop(name)
            if row is None:
                raise NotFound(f"human loop {name!r} does not exist")
            if row.status in (IN_PROGRESS, "Stopping"):
                raise InvalidRequest(f"human loop {name!r} is {row.status}: stop it before deleting it")
            repository.delete_loop(row)

    @staticmethod
    def _loop(repository: HumanLoopRepository, row: ReviewTaskRow) -> Loop:
        flow = repository.flow_by_id(row.flow_definition_id) if row.flow_definition_id is not None else None
        return Loop(
            task_id=row.id,
            name=str(row.loop_name),
            flow=flow.name if flow is not None else "",
            status=row.status,
            created_at=row.created_at,
            input_content=row.input_content,
            failure_reason=row.failure_reason,
            failure_code=row.failure_code,
            output_uri=row.output_uri,
        )

    def _loop_task(self, repository: HumanLoopRepository, task_id: str) -> tuple[ReviewTaskRow, Flow] | None:
        """A loop's task row and its flow (None for any other task)."""
        task = repository.session.get(ReviewTaskRow, task_id)
        if task is None or task.loop_name is None or task.flow_definition_id is None:
            return None
        flow = repository.flow_by_id(task.flow_definition_id)
        return (task, self._flow(repository, flow)) if flow is not None else None

    def task_of(self, task_id: str) -> LoopTask:
        """What a reviewer's page needs of a loop's task: its template (None: tagloop's own
        page shows it), input, status and the flow's title and description."""
        with self.database.reading() as session:
            repository = HumanLoopRepository(session)
            found = self._loop_task(repository, task_id)
            if found is None:
                raise NotFound(f"no human loop task {task_id!r}")
            task, flow = found
            ui = repository.task_ui(flow.task_ui) if flow.task_ui != TAGLOOP_PAGE else None
            template = ui.content if ui is not None else None
            return LoopTask(
                task.id,
                str(task.loop_name),
                template,
                task.input_content,
                task.status,
                flow.title,
                flow.description,
            )

    def _completed(self, task_id: str) -> None:
        self.write_output(task_id)

    def retry_outputs(self, limit: int = 100) -> int:
        """Write the output.json of completed loops whose write failed when they completed (an
        unreachable output store): a part of the periodic work, and of describing such a loop.
        Returns how many were written; a store still failing is logged and tried again later."""
        with self.database.reading() as session:
            pending = HumanLoopRepository(session).unwritten_outputs(limit)
        written = 0
        for task_id in pending:
            try:
                written += self.write_output(task_id) is not None
            except Exception:
                log.warning("human loop task %s: output.json still cannot be written", task_id, exc_info=True)
        return written

    def write_output(self, task_id: str) -> str | None:
        """Write a completed loop's output.json (A2I's shape and place) and record where it
        went; what the review service calls once a task completes. Other tasks: nothing."""
        with self.database.reading() as session:
            repository = HumanLoopRepository(session)
            found = self._loop_task(repository, task_id)
            if found is None:
                return None
            task, flow = found
            answers = repository.answers(task_id)
            document = {
                "flowDefinitionArn": self.arns.flow(flow.name),
                "humanAnswers": [
                    {
                        "acceptanceTime": _iso(answer.leased_at),
                        "answerContent": answer_content(answer, flow.mode),
                        "submissionTime": _iso(answer.answered_at),
                        "timeSpentInSeconds": round(float(answer.time_spent), 3)
                        if answer.time_spent is not None
                        else _seconds(answer.leased_at, answer.answered_at),
                        "workerId": answer.reviewer,
                        "workerMetadata": {
                            "identityData": {
                                "identityProviderType": "tagloop",
                                "issuer": "tagloop",
                                "sub": answer.reviewer,
                            }
                        },
                    }
                    for answer in answers
                ],
                "humanLoopName": task.loop_name,
                "inputContent": task.input_content,
            }
            root = flow.output_root or self.default_output
            key = output_key(flow.name, str(task.loop_name), task.created_at)
        if root != self.default_output:
            self.locations.confirm(root, "OutputConfig.S3OutputPath")  # nothing swapped in since
        stored = ArtifactStore(root).write_bytes(key, json.dumps(document, ensure_ascii=False).encode())
        uri = f"{root}/{key}"
        with self.database.transaction() as session:
            HumanLoopRepository(session).set_output(task_id, uri)
        log.debug("human loop %s: output written (%s bytes)", task.loop_name, stored.size)
        return uri


@contextmanager
def _unique(message: str) -> Iterator[None]:
    """A name taken by a concurrent request at the same moment: AlreadyExists, as when it was
    taken before."""
    try:
        yield
    except IntegrityError:
        raise AlreadyExists(message) from None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)
