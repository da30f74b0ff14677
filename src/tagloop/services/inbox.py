"""Inboxes: a watched folder or S3 prefix where a dropped file becomes a serving model.

``scan`` (the ticker part of ``serve`` and ``worker``, every ``TAGLOOP_INBOX_POLL_SECONDS``,
or ``tagloop inbox scan``) lists each enabled inbox and records every file by name and
fingerprint (size + modification time, or the S3 ETag) as ``seen``. A file is *claimed* once
its ``<name>.ready`` marker is there, or once two looks at least
``TAGLOOP_INBOX_STABLE_SECONDS`` apart saw it unchanged (a half-written upload keeps changing,
so it waits); the claim is a conditional UPDATE and the ``inbox`` job is enqueued in the SAME
transaction, so however many processes scan, one job exists per file.

:class:`InboxJob` then takes the file through its states, each step committed before the
next, so a worker killed at any moment leaves a state the next attempt resumes from:

=========  ==============================================================================
claimed    import the file (``TrainingService.prepare``: one transaction records the version
           and moves the file to ``training`` with the version's id: one version per file)
training   train that version (``TrainJob.train``, resumed on a retry), then ``deploying``
deploying  decide and deploy by the inbox's policy, record the ``inbox.processed`` event (and
           ``endpoint.deployed`` for an endpoint created or moved, as its deploy job would;
           a promotion records ``version.promoted``) and move the file to ``processed`` with
           its destination: ONE transaction
processed  move the file to ``processed/`` (a retry finds it moved already)
=========  ==============================================================================

A failure at any step records ``failed`` with the reason and an ``inbox.failed`` event, after
writing ``failed/<name>.error.json`` (every rejected row, or the reason); the file then moves
to ``failed/``. Files the inbox's writers are still writing by a temporary name (``.name``,
``*.part``, ``*.tmp``...) and symbolic links are never picked up.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tagloop.domain.arns import Arns
from tagloop.domain.inbox import (
    CLAIMED,
    DEPLOYING,
    ENDED,
    ERROR_SUFFIX,
    FAILED,
    FAILED_FOLDER,
    PROCESSED,
    PROCESSED_FOLDER,
    READY_SUFFIX,
    SEEN,
    STATES,
    TRAINING,
    WORKING,
    InboxSettings,
    claimable,
    destination,
    is_candidate,
)
from tagloop.domain.loop import LoopSettings
from tagloop.domain.metrics import Evaluation, evaluate, label_universe
from tagloop.domain.names import check_name
from tagloop.domain.progress import Progress
from tagloop.domain.promotion import Decision, decide
from tagloop.domain.records import DEFAULT_LABEL_DELIMITER, JobStatus, Mode, VersionStatus
from tagloop.errors import (
    AlreadyExists,
    DatasetInvalid,
    InvalidRequest,
    NotFound,
    ResourceInUse,
    ResourceUnavailable,
    RowIssue,
    Stopped,
    TagloopError,
)
from tagloop.jobs.port import JobContext, JobKindBase, JobQueue
from tagloop.recipes.base import predict
from tagloop.services.catalog import get_or_create_classifier
from tagloop.services.data_locations import DataLocations
from tagloop.services.loops import ensure_loop, loop_settings, promote_in
from tagloop.services.model_cache import ModelCache
from tagloop.services.notify_events import record_deployment
from tagloop.services.training import TrainingService, TrainJob, TrainRequest
from tagloop.settings import Settings
from tagloop.storage.database import Database
from tagloop.storage.events import EventRepository
from tagloop.storage.inbox import InboxRepository
from tagloop.storage.loops import LoopRepository
from tagloop.storage.repositories import (
    ClassifierRepository,
    EndpointRepository,
    ModelVersionRepository,
)
from tagloop.storage.tables import (
    ClassifierRow,
    EndpointRow,
    ImportProfileRow,
    InboxFileRow,
    InboxRow,
    JobRow,
    ModelVersionRow,
    utcnow,
)

INBOX_JOB = "inbox"
PROCESSED_EVENT, FAILED_EVENT = "inbox.processed", "inbox.failed"
IN_SERVICE = "IN_SERVICE"  # an endpoint's status (services/endpoints.py)
ENDED_JOBS = (JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.STOPPED.value)
ISSUES_STORED = 100
"""Rejected rows kept on the file's row (the error report beside the file has every one)."""
MAX_FILES_LISTED = 1_000
COUNTS_CACHE_SECONDS = 5.0
log = logging.getLogger(__name__)


def inbox_train_request(
    classifier: ClassifierRow,
    source: str,
    settings: InboxSettings,
    profile: str | None,
    on_issue: Callable[[str, RowIssue], None] | None,
) -> TrainRequest:
    """The one place an inbox file becomes a :class:`TrainRequest`.

    ``replace`` trains on the file alone; ``append`` adds the classifier's verified documents.
    The inbox's import profile, if any, reads the file (``TrainRequest.profile``)."""
    return TrainRequest(
        classifier=classifier.name,
        data=source,
        mode=Mode(classifier.mode),
        delimiter=classifier.label_delimiter,
        with_verified=settings.train == "append",
        on_issue=on_issue,
        profile=profile,
    )


def rejection(exc: DatasetInvalid, rows: list[RowIssue]) -> str:
    """Why a file was refused, counting every rejected row (the error's own message counts
    those it keeps); the first few are named."""
    parts = [f"{len(rows):,} row{'s' if len(rows) != 1 else ''} rejected"] if rows else []
    parts += [p for p in exc.problems if "rejected rows not listed" not in p]  # all are, here
    if not parts:
        return exc.message
    shown = "; ".join(str(issue) for issue in rows[:5])
    return "; ".join(parts) + (f" ({shown}{'; ...' if len(rows) > 5 else ''})" if shown else "")


# ---- the filesystem side --------------------------------------------------------------
@dataclass(frozen=True)
class Listed:
    name: str
    size: int
    fingerprint: str


def open_inbox(url: str) -> tuple[AbstractFileSystem, str]:
    """The inbox's filesystem and its root path (no trailing slash)."""
    fs, root = fsspec.core.url_to_fs(url)
    return fs, str(root).rstrip("/")


def is_local(fs: AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def listing(fs: AbstractFileSystem, root: str) -> tuple[list[Listed], set[str]]:
    """The files directly in the inbox (no sub-folders, no symbolic links) and every file name
    there (markers included)."""
    fs.invalidate_cache(root)  # s3fs keeps listings: a scan must see the prefix as it is now
    files: list[Listed] = []
    names: set[str] = set()
    try:
        entries = fs.ls(root, detail=True)
    except FileNotFoundError:
        bucket = root.split("/", 1)[0]
        if is_local(fs) or "/" not in root or not fs.exists(bucket):
            raise
        return [], set()  # an object store has no folders: a prefix with no objects yet is empty
    for entry in entries:
        if entry.get("type") != "file":
            continue
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        names.add(name)
        if entry.get("islink") or not is_candidate(name):
            continue  # a link could make the worker read any file it can: never followed
        size = int(entry.get("size") or 0)
        etag = entry.get("ETag") or entry.get("etag")
        if etag:
            fingerprint = f"etag:{str(etag).strip(chr(34))}:{size}"
        else:
            modified = entry.get("mtime") or entry.get("LastModified") or entry.get("created")
            fingerprint = f"{size}:{modified}"
        files.append(Listed(name, size, fingerprint[:128]))
    return files, names


def file_url(fs: AbstractFileSystem, path: str) -> str:
    """What TrainRequest reads: a local path as is, a remote one as its URL."""
    return path if is_local(fs) else str(fs.unstrip_protocol(path))


def write_atomically(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    """Write a whole file or none: a temporary name renamed (locally), one PUT (object stores)."""
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    if is_local(fs):
        temporary = f"{parent}/.{path.rsplit('/', 1)[-1]}.{os.getpid()}.tmp"
        with fs.open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    else:
        fs.pipe_file(path, data)


# ---- summaries ------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def inbox_summary(session: Session, row: InboxRow) -> dict[str, Any]:
    classifier = session.get_one(ClassifierRow, row.classifier_id)
    repo = InboxRepository(session)
    profile = None
    if row.profile_id is not None:
        found = session.get(ImportProfileRow, row.profile_id)
        profile = found.name if found is not None else None
    counts = {state: 0 for state in STATES}
    for (_, state), count in repo.counts(row.id).items():
        counts[state] = count
    failed = repo.last_error(row.id)
    settings = InboxSettings.from_dict(dict(row.settings or {}))
    return {
        "name": row.name,
        "classifier": classifier.name,
        "url": row.url,
        "profile": profile,
        "train": settings.train,
        "deploy": settings.deploy,
        "endpoint": settings.endpoint,
        "enabled": bool(row.enabled),
        "files": counts,
        "last_error": row.last_error or (f"{failed.name}: {failed.error}" if failed is not None else None),
        "created_at": _iso(row.created_at),
        "scanned_at": _iso(row.scanned_at),
    }


def file_summary(session: Session, row: InboxFileRow) -> dict[str, Any]:
    version = session.get(ModelVersionRow, row.version_id) if row.version_id is not None else None
    return {
        "id": row.id,
        "name": row.name,
        "state": row.state,
        "size": row.size,
        "fingerprint": row.fingerprint,
        "job_id": row.job_id,
        "version": version.name if version is not None else None,
        "endpoint": row.endpoint,
        "moved_to": row.moved_to,
        "error": row.error,
        "report": row.report,
        "seen_at": _iso(row.seen_at),
        "claimed_at": _iso(row.claimed_at),
        "finished_at": _iso(row.finished_at),
    }


@dataclass(frozen=True)
class FileContext:
    """What one step of the job needs to know about its file, read once."""

    file_id: int
    name: str
    state: str
    inbox: str
    url: str
    classifier: str
    classifier_id: int
    settings: InboxSettings
    profile: str | None
    version_id: int | None
    moved_to: str | None


class Superseded(Exception):
    """Another attempt of the file's job moved it on first: this one stops, changing nothing."""


@dataclass(frozen=True)
class Comparison:
    """The serving version and the new one evaluated on the same held-out documents."""

    baseline: Evaluation | None
    challenger: Evaluation | None
    documents: int
    excluded: int
    """Held-out documents of the new version left out: the serving version trained on them."""


class InboxService:
    def __init__(
        self,
        database: Database,
        training: TrainingService,
        models: ModelCache,
        queue: JobQueue,
        settings: Settings,
        data_locations: DataLocations,
    ) -> None:
        self.database = database
        self.training = training
        self.models = models
        self.queue = queue
        self.settings = settings
        self.data_locations = data_locations
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}"
        self._counts: tuple[float, dict[tuple[str, str], int]] | None = None
        self._counts_lock = threading.Lock()

    # ---- managing inboxes -------------------------------------------------------------
    def add(
        self,
        classifier: str,
        url: str,
        name: str | None = None,
        profile: str | None = None,
        train: str = "replace",
        deploy: str = "auto",
        endpoint: str | None = None,
        mode: Mode = Mode.MULTI_CLASS,
        from_network: bool = False,
    ) -> dict[str, Any]:
        """Watch ``url`` (a folder, or an S3 prefix) for ``classifier`` (made if new, in
        ``mode``). From the network the URL must lie in an allowed data location."""
        check_name("classifier", classifier)
        name = check_name("inbox", name or classifier)
        settings = InboxSettings(train=train, deploy=deploy, endpoint=endpoint)
        url = self._checked_url(url, from_network)
        with self.database.transaction() as session:
            repo = InboxRepository(session)
            if repo.find(name) is not None:
                raise AlreadyExists(f"inbox {name!r} exists already: choose another name (--name)")
            for other in repo.list():
                if _nested(other.url, url):
                    raise AlreadyExists(
                        f"inbox {other.name!r} watches {other.url}: an inbox cannot be inside "
                        "another one or hold one (each moves its files to its own processed/ and failed/)"
                    )
            classifier_row = get_or_create_classifier(session, classifier, mode, DEFAULT_LABEL_DELIMITER)
            profile_id = None
            if profile is not None:
                found = repo.profile(classifier_row.id, profile)
                if found is None:
                    raise NotFound(
                        f"classifier {classifier!r} has no import profile {profile!r} "
                        "(tagloop profiles add makes one)"
                    )
                profile_id = found.id
            if endpoint is not None:
                taken = EndpointRepository(session).find(endpoint)
                if taken is not None and taken.classifier_id != classifier_row.id:
                    raise InvalidRequest(f"endpoint {endpoint!r} serves another classifier")
            row = repo.add(
                name=name,
                classifier_id=classifier_row.id,
                url=url,
                profile_id=profile_id,
                settings=settings.to_dict(),
                enabled=True,
            )
            return inbox_summary(session, row)

    def _checked_url(self, url: str, from_network: bool) -> str:
        if not isinstance(url, str) or not url.strip():
            raise InvalidRequest("url: give a folder or an S3 prefix (s3://bucket/prefix/)")
        url = url.strip()
        if "::" in url:
            raise InvalidRequest("url: chained protocols (::) are not an inbox")
        if from_network:
            url = self.data_locations.check(url, "url")
        if url.startswith("file://"):
            url = url[len("file://") :]
        if "://" not in url:
            if not os.path.isabs(url):
                raise InvalidRequest(f"url: {url!r} is not an absolute path")
            url = os.path.normpath(url)
            if not os.path.isdir(url):
                raise InvalidRequest(f"url: {url} is not a folder: create it first")
            if not os.access(url, os.R_OK | os.W_OK | os.X_OK):
                raise InvalidRequest(
                    f"url: tagloop cannot read and write {url} (it moves each file to processed/ or failed/)"
                )
            return url
        if not url.startswith(("s3://", "gs://", "gcs://", "az://", "abfs://", "memory://")):
            raise InvalidRequest(
                f"url: {url.split('://', 1)[0]}:// is not a place tagloop watches (a folder, or s3://)"
            )
        return url.rstrip("/")

    def list(self) -> builtins.list[dict[str, Any]]:
        with self.database.reading() as session:
            return [inbox_summary(session, row) for row in InboxRepository(session).list()]

    def status(self, name: str, limit: int = 50, state: str | None = None) -> dict[str, Any]:
        """The inbox with its newest files (state, version, endpoint, where it went, error)."""
        if not 1 <= limit <= MAX_FILES_LISTED:
            raise InvalidRequest(f"limit: expected 1 to {MAX_FILES_LISTED:,}")
        if state is not None and state not in STATES:
            raise InvalidRequest(f"state: {state!r} is not one of {', '.join(STATES)}")
        with self.database.reading() as session:
            repo = InboxRepository(session)
            row = repo.get(name)
            files = [file_summary(session, f) for f in repo.files(row.id, limit, state)]
            return inbox_summary(session, row) | {"recent_files": files}

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        with self.database.transaction() as session:
            row = InboxRepository(session).get(name)
            row.enabled = enabled
            session.flush()
            return inbox_summary(session, row)

    def remove(self, name: str) -> dict[str, Any]:
        """Stop watching (the folder and its files stay); refused while a file is in work."""
        with self.database.transaction() as session:
            repo = InboxRepository(session)
            row = repo.get(name)
            working = sum(n for (_, state), n in repo.counts(row.id).items() if state in WORKING)
            if working:
                raise ResourceInUse(
                    f"inbox {name!r} has {working} file(s) in work: wait for them, or disable it first"
                )
            summary = inbox_summary(session, row)
            repo.delete(row)
            return summary

    # ---- scanning ---------------------------------------------------------------------
    def tick(self) -> None:
        """Scan every enabled inbox (the ticker part; errors are recorded on the inbox)."""
        self.scan()

    def scan(self, name: str | None = None) -> dict[str, Any]:
        """Look at the inbox (or every enabled one) once: record new files, claim complete
        ones and enqueue their jobs. Returns what each inbox saw."""
        with self.database.reading() as session:
            repo = InboxRepository(session)
            rows = [repo.get(name)] if name is not None else list(repo.list(enabled_only=True))
            targets = [(row.id, row.name, row.url, row.classifier_id) for row in rows]
        return {"inboxes": [self._scan_one(*target) for target in targets]}

    def _scan_one(self, inbox_id: int, name: str, url: str, classifier_id: int) -> dict[str, Any]:
        started = utcnow()
        result: dict[str, Any] = {"inbox": name, "seen": [], "claimed": [], "error": None}
        try:
            fs, root = open_inbox(url)
            files, names = listing(fs, root)
        except Exception as exc:  # an unreachable folder or bucket: recorded, retried next scan
            message = f"cannot list {url}: {type(exc).__name__}: {exc}"[:1000]
            log.warning("inbox %s: %s", name, message)
            with self.database.transaction() as session:
                row = session.get(InboxRow, inbox_id)
                if row is not None:
                    row.scanned_at, row.last_error = started, message
            return result | {"error": message}
        stable = self.settings.inbox_stable_seconds
        for listed in files:
            try:
                claimed = self._observe(
                    inbox_id, classifier_id, listed, listed.name + READY_SUFFIX in names, started, stable
                )
            except IntegrityError:  # another process recorded it at the same moment
                continue
            result["claimed" if claimed else "seen"].append(listed.name)
        present = {listed.name for listed in files}
        with self.database.transaction() as session:
            repo = InboxRepository(session)
            gone = [row.name for row in repo.seen_files(inbox_id) if row.name not in present]
            repo.forget_seen(inbox_id, gone)
            row = session.get(InboxRow, inbox_id)
            if row is not None:
                row.scanned_at, row.last_error = started, None
        return result

    def _observe(
        self,
        inbox_id: int,
        classifier_id: int,
        listed: Listed,
        has_marker: bool,
        scan_started: datetime,
        stable_seconds: float,
    ) -> bool:
        """Record one listed file; claim it (and enqueue its job) if it is complete. True if
        this call claimed it."""
        with self.database.transaction() as session:
            repo = InboxRepository(session)
            now = utcnow()
            row = repo.find_file(inbox_id, listed.name, listed.fingerprint)
            if row is not None and self._put_back(session, row):
                # the file was moved away by its finished job and is here again (put back from
                # failed/ after a fix, say, keeping its time): a new drop. The old row keeps its
                # history under a retired fingerprint, freeing the unique key.
                row.fingerprint = f"{listed.fingerprint[:100]}#{row.id}"
                session.flush()
                row = None
            if row is None:
                growing = next((r for r in repo.seen_files(inbox_id) if r.name == listed.name), None)
                if growing is not None:  # the same name, changed since the last look
                    growing.fingerprint, growing.size, growing.stable_since = (
                        listed.fingerprint,
                        listed.size,
                        now,
                    )
                    session.flush()
                    row = growing
                else:
                    row = repo.add_file(
                        inbox_id=inbox_id,
                        name=listed.name,
                        fingerprint=listed.fingerprint,
                        size=listed.size,
                        state=SEEN,
                        seen_at=now,
                        stable_since=now,
                    )
            if row.state != SEEN:
                return False  # in work or done (processed files are moved away)
            if not claimable(has_marker, row.stable_since, scan_started, now, stable_seconds):
                return False
            if not repo.claim(row.id, listed.fingerprint, claimed_at=now, claimed_by=self.owner):
                return False
            job_id = self.queue.enqueue(session, INBOX_JOB, {"file_id": row.id}, classifier_id=classifier_id)
            repo.transition(row.id, CLAIMED, when=(CLAIMED,), job_id=job_id)
            return True

    @staticmethod
    def _put_back(session: Session, row: InboxFileRow) -> bool:
        """Whether an ended file listed in the inbox again is a new drop: its job ended (a job
        still running or to be retried may yet move it)."""
        if row.state not in ENDED or row.moved_to is None or row.job_id is None:
            return False
        job = session.get(JobRow, row.job_id)
        return job is None or job.status in ENDED_JOBS

    # ---- processing a file (the inbox job) ---------------------------------------------
    def _context(self, file_id: int) -> FileContext | None:
        with self.database.reading() as session:
            row = session.get(InboxFileRow, file_id)
            if row is None:
                return None  # its inbox was removed
            inbox = session.get_one(InboxRow, row.inbox_id)
            classifier = session.get_one(ClassifierRow, inbox.classifier_id)
            profile = None
            if inbox.profile_id is not None:
                found = session.get(ImportProfileRow, inbox.profile_id)
                profile = found.name if found is not None else None
            return FileContext(
                file_id=row.id,
                name=row.name,
                state=row.state,
                inbox=inbox.name,
                url=inbox.url,
                classifier=classifier.name,
                classifier_id=classifier.id,
                settings=InboxSettings.from_dict(dict(inbox.settings or {})),
                profile=profile,
                version_id=row.version_id,
                moved_to=row.moved_to,
            )

    def process(
        self,
        file_id: int,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Take a claimed file to ``processed`` or ``failed`` from whatever step it reached."""
        report = progress or (lambda fraction, message: None)
        stop = should_stop or (lambda: False)
        context = self._context(file_id)
        if context is None:
            return {"file_id": file_id, "state": "gone"}
        issues: builtins.list[RowIssue] = []
        try:
            if context.state == CLAIMED:
                report(0.0, f"importing {context.name}")
                self._import(context, issues)
            context = self._context(file_id) or context
            if context.state == TRAINING:
                self._train(context, report, stop)
            context = self._context(file_id) or context
            if context.state == DEPLOYING:
                report(0.92, "deploying")
                self._deploy(context, stop)
        except Superseded:
            return {"file_id": file_id, "state": "superseded"}
        except Stopped:
            self._fail(file_id, "stopped on request", [])
            self._finish_move(file_id)
            raise
        except DatasetInvalid as exc:
            rows = issues or list(exc.issues)
            problems = [p for p in exc.problems if "rejected rows not listed" not in p]
            self._fail(file_id, rejection(exc, rows), rows, problems)
        except FileNotFoundError:
            self._fail(file_id, f"{context.name} was removed from the inbox before it was imported", [])
        except TagloopError as exc:
            self._fail(file_id, exc.message, [])
        self._finish_move(file_id)
        report(1.0, "done")
        with self.database.reading() as session:
            row = InboxRepository(session).file(file_id)
            return {key: value for key, value in file_summary(session, row).items() if key != "report"}

    def _import(self, context: FileContext, issues: builtins.list[RowIssue]) -> None:
        """claimed → training: the version is recorded with its data in the same transaction."""
        fs, root = open_inbox(context.url)
        source = file_url(fs, f"{root}/{context.name}")

        def heard(_: str, issue: RowIssue) -> None:
            issues.append(issue)

        with self.database.transaction() as session:
            classifier = ClassifierRepository(session).get(context.classifier)
            request = inbox_train_request(classifier, source, context.settings, context.profile, heard)
            version = self.training.prepare(session, request)
            if not InboxRepository(session).transition(
                context.file_id, TRAINING, when=(CLAIMED,), version_id=version.id
            ):
                raise Superseded  # another attempt imported it meanwhile: this version rolls back

    def _train(self, context: FileContext, report: Progress, stop: Callable[[], bool]) -> None:
        """training → deploying: the version trains (again from the start after a crash)."""
        assert context.version_id is not None
        with self.database.reading() as session:
            status = ModelVersionRepository(session).get(context.version_id).status
        if status != VersionStatus.TRAINED.value:
            TrainJob(self.training).train(
                context.version_id,
                lambda fraction, message: report(0.05 + 0.85 * fraction, message),
                stop,
                resume=True,
            )
        with self.database.transaction() as session:
            InboxRepository(session).transition(context.file_id, DEPLOYING, when=(TRAINING,))

    def _deploy(self, context: FileContext, stop: Callable[[], bool]) -> None:
        """deploying → processed: the decision, the deployment, the event and the file's
        destination, in one transaction."""
        assert context.version_id is not None
        with self.database.reading() as session:
            version = ModelVersionRepository(session).get(context.version_id)
            mode = Mode(session.get_one(ClassifierRow, version.classifier_id).mode)
        if version.status != VersionStatus.TRAINED.value:
            raise ResourceUnavailable(f"version {version.name} is {version.status}: {version.message or ''}")
        self.models.get(version, verify=True)  # a model that does not load is never deployed
        fs, root = open_inbox(context.url)
        taken = fs.exists(f"{root}/{PROCESSED_FOLDER}/{context.name}")
        moved_to = destination(PROCESSED_FOLDER, context.name, taken, context.file_id)
        for _ in range(3):  # a baseline that changed under the evaluation is evaluated again
            baseline_id = self._baseline(context)
            compared = self._compare(version, baseline_id, mode, stop) if baseline_id else None
            if stop():
                raise Stopped("stopped on request")
            with self.database.transaction() as session:
                if self._baseline(context, session) != baseline_id:
                    continue
                repo = InboxRepository(session)
                current = repo.file(context.file_id)
                if current.state != DEPLOYING:
                    return  # another attempt concluded it
                classifier = session.get_one(ClassifierRow, context.classifier_id)
                version = ModelVersionRepository(session).get(context.version_id)
                outcome = self._apply(session, context, classifier, version, compared)
                payload = self._processed_payload(context, classifier, version, outcome, moved_to)
                repo.transition(
                    context.file_id,
                    PROCESSED,
                    when=(DEPLOYING,),
                    endpoint=outcome["endpoint"],
                    report=payload,
                    moved_to=moved_to,
                    finished_at=utcnow(),
                    error=None,
                )
                EventRepository(session).add(
                    PROCESSED_EVENT, payload, classifier_id=classifier.id, endpoint=outcome["endpoint"]
                )
                return
        raise ResourceInUse("the serving version kept changing while the new one was evaluated")

    def _baseline(self, context: FileContext, session: Session | None = None) -> int | None:
        """What the new version is compared with: the loop's champion, else (pinned endpoints)
        the version the inbox's endpoint (or the first of the classifier's) serves."""
        if session is None:
            with self.database.reading() as reading:
                return self._baseline(context, reading)
        loop = LoopRepository(session).find(context.classifier_id)
        if loop is not None:
            return loop.active_version_id
        targets = self._targets(session, context)
        return targets[0].version_id if targets else None

    def _targets(self, session: Session, context: FileContext) -> builtins.list[EndpointRow]:
        endpoints = [
            e for e in EndpointRepository(session).list() if e.classifier_id == context.classifier_id
        ]
        if context.settings.endpoint is not None:
            return [e for e in endpoints if e.name == context.settings.endpoint] or endpoints
        return endpoints

    def _compare(
        self, version: ModelVersionRow, baseline_id: int, mode: Mode, stop: Callable[[], bool]
    ) -> Comparison:
        """Both models on the new version's held-out documents that the serving version did not
        train on: a file that repeats the old data (the usual case: the old rows and new ones)
        would otherwise test the serving version on its own training documents."""
        with self.database.reading() as session:
            baseline = ModelVersionRepository(session).get(baseline_id)
            if version.test_dataset_id is None:
                return Comparison(None, None, 0, 0)
            rows = InboxRepository(session).unseen_test_documents(
                version.test_dataset_id, baseline.train_dataset_id
            )
            held_out = int((version.documents or {}).get("test", 0))
        if not rows:
            return Comparison(None, None, 0, held_out)
        texts = [text for text, _ in rows]
        gold = [list(labels) for _, labels in rows]
        evaluations = []
        for row in (baseline, version):
            model = self.models.get(row)
            labels = list(row.labels)
            predicted: builtins.list[builtins.list[str]] = []
            for _, picks in predict(model, texts):
                predicted.extend([labels[i] for i in doc] for doc in picks)
                if stop():
                    raise Stopped("stopped on request")
            evaluations.append(evaluate(mode, label_universe(labels, gold), gold, predicted))
        return Comparison(evaluations[0], evaluations[1], len(rows), held_out - len(rows))

    def _decision(
        self, session: Session, context: FileContext, version: ModelVersionRow, compared: Comparison | None
    ) -> Decision:
        """The inbox's policy: ``auto`` with a loop follows the loop's rule; otherwise the new
        version must be better on the held-out documents by the loop's (or the default) metric."""
        loop = LoopRepository(session).find(context.classifier_id)
        rule = loop_settings(loop) if loop is not None else LoopSettings()
        if context.settings.deploy == "better" or loop is None:
            rule = LoopSettings(metric=rule.metric, min_gain=0.0, max_label_drop=1.0)
        if self._baseline(context, session) is None:
            return Decision(True, "nothing serves yet: the new version is the first", passed=True)
        if compared is None or compared.baseline is None or compared.challenger is None:
            return Decision(
                False,
                "not compared: the new version has no held-out document the serving version did not train on",
            )
        decided = decide(rule, compared.baseline, compared.challenger)
        excluded = f", {compared.excluded:,} it trained on left out" if compared.excluded else ""
        where = f" (on {compared.documents:,} held-out documents{excluded})"
        return dataclasses.replace(decided, reason=decided.reason + where)

    def _apply(
        self,
        session: Session,
        context: FileContext,
        classifier: ClassifierRow,
        version: ModelVersionRow,
        compared: Comparison | None,
    ) -> dict[str, Any]:
        """Deploy by the policy inside the caller's transaction; what was done."""
        policy = context.settings.deploy
        reason_of = f"inbox {context.inbox}: {context.name}"
        if policy == "never":
            return {
                "deployment": "none",
                "reason": "the inbox's deploy policy is never",
                "endpoint": None,
                "endpoints": [],
                "serves_new": False,
            }
        endpoints_repo = EndpointRepository(session)
        mine = [e for e in endpoints_repo.list() if e.classifier_id == classifier.id]
        decision = self._decision(session, context, version, compared)
        loop = LoopRepository(session).find(classifier.id, lock=True)
        if not mine:
            name = context.settings.endpoint or classifier.name
            if endpoints_repo.find(name) is not None:
                raise InvalidRequest(f"endpoint {name!r} serves another classifier: set the inbox's endpoint")
            loop = loop or ensure_loop(session, classifier)
            if loop.active_version_id is None or decision.promote:
                promote_in(session, classifier, loop, version, reason_of)
            session.refresh(loop)
            assert loop.active_version_id is not None
            endpoints_repo.add(
                name=name,
                classifier_id=classifier.id,
                version_id=loop.active_version_id,
                desired_version_id=None,
                desired_inference_units=1,
                status=IN_SERVICE,
                follows=True,
            )
            record_deployment(session, name, loop.active_version_id, None)  # as a deploy job does
            served = loop.active_version_id == version.id
            reason = "the classifier had no endpoint: created" + ("" if served else f"; {decision.reason}")
            return {
                "deployment": "created",
                "reason": reason,
                "endpoint": name,
                "endpoints": [name],
                "serves_new": served,
            }
        if not decision.promote:
            return {
                "deployment": "kept",
                "reason": decision.reason,
                "endpoint": None,
                "endpoints": [],
                "serves_new": False,
            }
        if loop is not None:
            moved = promote_in(session, classifier, loop, version, reason_of)["endpoints"]
            return {
                "deployment": "promoted",
                "reason": decision.reason,
                "endpoint": moved[0] if moved else None,
                "endpoints": moved,
                "serves_new": bool(moved),
            }
        targets = self._targets(session, context)
        now = utcnow()
        for endpoint in targets:
            previous_id = endpoint.version_id
            endpoint.version_id, endpoint.desired_version_id = version.id, None
            endpoint.status, endpoint.message, endpoint.updated_at = IN_SERVICE, None, now
            record_deployment(session, endpoint.name, version.id, previous_id)
        session.flush()
        names = [e.name for e in targets]
        return {
            "deployment": "moved",
            "reason": decision.reason,
            "endpoint": names[0] if names else None,
            "endpoints": names,
            "serves_new": bool(names),
        }

    def _processed_payload(
        self,
        context: FileContext,
        classifier: ClassifierRow,
        version: ModelVersionRow,
        outcome: dict[str, Any],
        moved_to: str,
    ) -> dict[str, Any]:
        per_label = dict(version.per_label or {})
        worst = min(per_label.items(), key=lambda item: float(item[1].get("f1", 0.0)), default=None)
        return {
            "inbox": context.inbox,
            "file": context.name,
            "file_id": context.file_id,
            "classifier": classifier.name,
            "version": version.name,
            "version_id": version.id,
            "model_arn": Arns(self.settings.aws_region, self.settings.aws_account_id).classifier(
                classifier.name, version.name
            ),
            "metrics": dict(version.metrics or {}),
            "worst_label": {"label": worst[0], "f1": worst[1].get("f1")} if worst else None,
            "documents": dict(version.documents or {}),
            "warnings": list(version.warnings or []),
            "moved_to": moved_to,
        } | outcome

    def _fail(
        self,
        file_id: int,
        reason: str,
        issues: builtins.list[RowIssue],
        problems: builtins.list[str] | None = None,
    ) -> None:
        """Record the file failed (with its ``inbox.failed`` event) after writing its error
        report beside where it goes; nothing happens to a file that ended already."""
        context = self._context(file_id)
        if context is None or context.state in ENDED:
            return
        fs, root = open_inbox(context.url)
        taken = fs.exists(f"{root}/{FAILED_FOLDER}/{context.name}")
        moved_to = destination(FAILED_FOLDER, context.name, taken, file_id)
        rows = [{"line": issue.line, "reason": issue.reason} for issue in issues]
        document = {
            "inbox": context.inbox,
            "file": context.name,
            "classifier": context.classifier,
            "reason": reason,
            "rejected_rows": len(rows),
            "rows": rows,
            "problems": list(problems or []),
            "failed_at": utcnow().isoformat(),
        }
        write_atomically(
            fs,
            f"{root}/{moved_to}{ERROR_SUFFIX}",
            json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8"),
        )
        payload = {
            "inbox": context.inbox,
            "file": context.name,
            "file_id": file_id,
            "classifier": context.classifier,
            "reason": reason,
            "rejected_rows": len(rows),
            "rows": rows[:ISSUES_STORED],
            "moved_to": moved_to,
            "error_report": f"{moved_to}{ERROR_SUFFIX}",
        }
        with self.database.transaction() as session:
            if InboxRepository(session).transition(
                file_id,
                FAILED,
                when=(SEEN, *WORKING),
                error=reason[:10_000],
                report=payload,
                moved_to=moved_to,
                finished_at=utcnow(),
            ):
                event = payload | {"rows": rows[:10]}
                EventRepository(session).add(FAILED_EVENT, event, classifier_id=context.classifier_id)

    def _finish_move(self, file_id: int) -> None:
        """Move an ended file to where its row says (idempotent: a retry finds it moved), and
        drop its ``.ready`` marker."""
        context = self._context(file_id)
        if context is None or context.state not in ENDED or context.moved_to is None:
            return
        fs, root = open_inbox(context.url)
        source, target = f"{root}/{context.name}", f"{root}/{context.moved_to}"
        if fs.exists(source) and not fs.exists(target):
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(source, target)
        marker = source + READY_SUFFIX
        if fs.exists(marker):
            fs.rm(marker)

    def abandon(self, file_id: int, message: str) -> None:
        """The job gave up or was stopped before it began: the file fails with the reason."""
        try:
            self._fail(file_id, message, [])
            self._finish_move(file_id)
        except Exception:  # the store is unreachable: the row still says failed once recorded
            log.exception("inbox file %s: could not record its failure", file_id)

    # ---- figures ------------------------------------------------------------------------
    def file_counts(self) -> dict[tuple[str, str], int]:
        """Files per (inbox, state), read at most every few seconds (``/metrics``)."""
        with self._counts_lock:
            if self._counts is not None and time.monotonic() - self._counts[0] < COUNTS_CACHE_SECONDS:
                return self._counts[1]
            with self.database.reading() as session:
                names = {row.id: row.name for row in InboxRepository(session).list()}
                counts = {
                    (names[inbox_id], state): count
                    for (inbox_id, state), count in InboxRepository(session).counts().items()
                    if inbox_id in names
                }
            self._counts = (time.monotonic(), counts)
            return counts


def _nested(one: str, other: str) -> bool:
    """Whether one inbox location lies inside the other (or they are the same)."""
    a, b = one.rstrip("/") + "/", other.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


class InboxJob(JobKindBase):
    """The ``inbox`` job kind: one claimed file, from import to its move."""

    kind = INBOX_JOB

    def __init__(self, inbox: InboxService) -> None:
        self.inbox = inbox

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        return self.inbox.process(int(payload["file_id"]), context.progress, context.should_stop)

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        self.inbox.abandon(int(payload["file_id"]), message or f"its job ended {status}")
