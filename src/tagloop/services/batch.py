"""Batch classification (Comprehend's StartDocumentClassificationJob) as sharded jobs.

A ``batch`` job lists the input (a file, a folder or any fsspec URL), cuts it into shards
at line boundaries (``ONE_DOC_PER_LINE``) or groups of files (``ONE_DOC_PER_FILE``) and
spawns one ``batch_shard`` job per shard; workers classify shards in parallel. Each shard
writes its JSON lines to ``<job folder>/part-NNNNN.jsonl`` in one atomic write, so a shard
redone after a crash replaces its part and every document appears exactly once. When all
shards complete, the output is finished in the job's layout, in one atomic write that marks
it complete:

- ``tagloop`` (the default of ``tagloop batch``): the job folder is ``<output>/<job id>/``;
  ``manifest.json`` (documents, errors, the parts in order) is written last, next to the parts;
- ``comprehend`` (jobs started through StartDocumentClassificationJob, ``tagloop batch
  --layout comprehend``): as Comprehend writes it, the job folder is
  ``<output>/<account id>-CLN-<job id>/`` and holds only ``output/output.tar.gz``, a gzipped
  tar of ``predictions.jsonl`` (then ``predictions-1.jsonl``, ``predictions-2.jsonl``, ... when
  the output is larger than ``member_bytes`` per file: the parts, in order, never split). The
  tarball is written, then the loose parts are removed; a tarball already there when the job
  is finished again (a crash in between) is complete, and is kept. Its URI is what
  DescribeDocumentClassificationJob returns as ``OutputDataConfig.S3Uri``. The tarball is
  built in memory (it is compressed: about a tenth of the JSON lines).

A failed or stopped job removes its job folder, whatever the layout: nothing that passes for
a complete output is left.

A job submitted through a network API is ``confined``: its input and output were checked
against the allowed data locations (``services/data_locations.py``), and every file it lists,
reads or writes later is confirmed again just before, so a link put in the way since the
check refuses the job instead of leading outside the allowlist.

Output lines follow Comprehend (``domain/comprehend.py``): ``{"File": ..., "Line": ...,
"Classes": [...]}`` (``Labels`` for multi-label; ``Line`` counts from 0 and is absent for one
document per file); a document that cannot be classified gets ``ErrorCode`` and ``ErrorMessage``.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
import orjson
from sqlalchemy.orm import Session

from tagloop.domain import comprehend
from tagloop.domain.routing import RoutingPolicy
from tagloop.errors import InvalidRequest, Stopped
from tagloop.jobs.port import AwaitChildren, JobContext, JobKindBase, JobQueue
from tagloop.services.catalog import resolve_version
from tagloop.services.data_locations import DataLocations
from tagloop.services.datasets import DAMAGED_STREAM_ERRORS, damaged_compressed_file
from tagloop.services.endpoints import Serving
from tagloop.services.model_cache import ModelCache
from tagloop.services.notify_events import record_batch
from tagloop.services.predictions import PredictionService
from tagloop.services.routing import Write, route_batch
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, EndpointRepository, ModelVersionRepository
from tagloop.storage.tables import JobRow

ONE_DOC_PER_LINE = "ONE_DOC_PER_LINE"
ONE_DOC_PER_FILE = "ONE_DOC_PER_FILE"
INPUT_FORMATS = (ONE_DOC_PER_LINE, ONE_DOC_PER_FILE)
MANIFEST = "manifest.json"
COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
TAGLOOP_LAYOUT = "tagloop"
COMPREHEND_LAYOUT = "comprehend"
LAYOUTS = (TAGLOOP_LAYOUT, COMPREHEND_LAYOUT)
TARBALL = "output/output.tar.gz"  # in the job folder, as Comprehend names it
PREDICTIONS = "predictions"  # the tarball's files: predictions.jsonl, predictions-1.jsonl, ...
MEMBER_BYTES = 1 << 30  # JSON lines per file in the tarball before the next file starts


class InputUnreadable(InvalidRequest):
    """The batch input is missing, unreadable, empty or not UTF-8."""


@dataclass(frozen=True)
class BatchRequest:
    classifier: str
    input: str
    output: str
    input_format: str = ONE_DOC_PER_LINE
    version: str | None = None
    shard_documents: int = 20_000
    name: str | None = None
    confined: bool = False  # through a network API: input/output checked; files confirmed on use
    layout: str = TAGLOOP_LAYOUT  # or COMPREHEND_LAYOUT: output/output.tar.gz, as Comprehend writes
    member_bytes: int = MEMBER_BYTES  # comprehend layout: bytes of JSON lines per file in the tarball
    routing: str | None = None  # an endpoint of the classifier whose routing policy routes the documents
    flywheel: str | None = None  # started on a flywheel (Comprehend's FlywheelArn): reported back


def confirmed_inputs(fs: Any, files: list[str], locations: DataLocations) -> None:
    """Refuse a confined job whose input lists a file outside the allowlist (or a link)."""
    for path in files:
        locations.confirm(fs.unstrip_protocol(path), "batch input")


def list_inputs(url: str) -> tuple[Any, list[str], str]:
    """The filesystem, the sorted input files under ``url`` (hidden files skipped), the root."""
    try:
        fs, root = fsspec.core.url_to_fs(url)
        if not fs.exists(root):
            raise InputUnreadable(f"input {url} does not exist")
        if fs.isdir(root):
            files = sorted(
                path
                for path in fs.find(root)
                if not posixpath.basename(path).startswith((".", "_")) and not fs.isdir(path)
            )
        else:
            files = [root]
    except PermissionError as exc:
        raise InputUnreadable(f"input {url} cannot be read: permission denied") from exc
    if not files:
        raise InputUnreadable(f"input {url} holds no files")
    return fs, files, root if len(files) > 1 or files[0] != root else posixpath.dirname(root)


def display_name(path: str, root: str) -> str:
    """A file's name in the output: its path relative to the input folder."""
    return posixpath.relpath(path, root) if root else posixpath.basename(path)


def line_shards(fs: Any, path: str, per_shard: int, name: str) -> list[dict[str, Any]]:
    """Cut a file into shards of ``per_shard`` lines: byte ranges that start at a line start.

    Shards carry the file's full URL (with its protocol), so any worker can open it.
    """
    url = fs.unstrip_protocol(path)
    if path.endswith(COMPRESSED):
        return [{"path": url, "name": name, "start": 0, "end": None, "first_line": 0, "compression": "infer"}]
    shards, start, offset, lines, first_line = [], 0, 0, 0, 0
    try:
        with fs.open(path, "rb") as handle:
            while block := handle.read(8 << 20):
                position = 0
                while True:
                    newline = block.find(b"\n", position)
                    if newline < 0:
                        break
                    lines += 1
                    position = newline + 1
                    if lines - first_line == per_shard:
                        end = offset + position
                        shards.append(
                            {"path": url, "name": name, "start": start, "end": end, "first_line": first_line}
                        )
                        start, first_line = end, lines
                offset += len(block)
    except PermissionError as exc:
        raise InputUnreadable(f"input file {path} cannot be read: permission denied") from exc
    if offset > start:
        shards.append({"path": url, "name": name, "start": start, "end": offset, "first_line": first_line})
    return shards


def job_folder(output: str, job_id: str, layout: str, account_id: str) -> str:
    """Where a job's files go under its ``output``: ``<job id>/``, or Comprehend's
    ``<account id>-CLN-<job id>/``."""
    folder = f"{account_id}-CLN-{job_id}" if layout == COMPREHEND_LAYOUT else job_id
    return f"{output.rstrip('/')}/{folder}"


def member_name(number: int) -> str:
    """The name of the tarball's ``number``-th file (from 0), as Comprehend names them."""
    return f"{PREDICTIONS}.jsonl" if number == 0 else f"{PREDICTIONS}-{number}.jsonl"


class BatchService:
    def __init__(
        self,
        database: Database,
        queue: JobQueue,
        models: ModelCache,
        predictions: PredictionService,
        locations: DataLocations | None = None,
        account_id: str = "123456789012",
    ) -> None:
        self.database = database
        self.queue = queue
        self.models = models
        self.predictions = predictions
        self.locations = locations or DataLocations(())
        self.account_id = account_id  # the Comprehend layout's folder names carry it

    def submit(self, request: BatchRequest) -> str:
        """Check the request and enqueue the batch job; returns its id."""
        if request.input_format not in INPUT_FORMATS:
            raise InvalidRequest(f"input format must be one of {', '.join(INPUT_FORMATS)}")
        if request.shard_documents < 1:
            raise InvalidRequest("shard size must be at least 1 document")
        if request.layout not in LAYOUTS:
            raise InvalidRequest(f"output layout must be one of {', '.join(LAYOUTS)}")
        if request.member_bytes < 1:
            raise InvalidRequest("the tarball's files must hold at least 1 byte each")
        fs, files, _ = list_inputs(request.input)  # fail now, with a clear message, if it is not there
        if request.confined:
            confirmed_inputs(fs, files, self.locations)
        fsspec.core.url_to_fs(request.output)
        job_id = uuid.uuid4().hex
        with self.database.transaction() as session:
            classifier = ClassifierRepository(session).get(request.classifier)
            version = resolve_version(session, classifier, request.version)
            folder = job_folder(request.output, job_id, request.layout, self.account_id)
            payload = {
                "version_id": version.id,
                "input": request.input,
                "output_dir": folder,  # the job folder: parts go here, a failed job removes it
                "output_uri": f"{folder}/{TARBALL}" if request.layout == COMPREHEND_LAYOUT else folder,
                "input_format": request.input_format,
                "shard_documents": request.shard_documents,
                "name": request.name,
            }
            if request.layout == COMPREHEND_LAYOUT:
                payload |= {"layout": COMPREHEND_LAYOUT, "member_bytes": request.member_bytes}
            if request.confined:
                payload["confined"] = True
            if request.routing is not None:
                payload["routing"] = _routing(session, request.routing, classifier.id)
            if request.flywheel is not None:
                payload["flywheel"] = request.flywheel
            return self.queue.enqueue(
                session, BatchJob.kind, payload, id=job_id, classifier_id=classifier.id, version_id=version.id
            )


class BatchJob(JobKindBase):
    """Plans the shards of a batch classification and spawns them."""

    kind = "batch"

    def __init__(self, locations: DataLocations) -> None:
        self.locations = locations

    def run(self, context: JobContext, payload: dict[str, Any]) -> AwaitChildren:
        fs, files, root = list_inputs(payload["input"])
        if payload.get("confined"):
            confirmed_inputs(fs, files, self.locations)
        shards: list[dict[str, Any]] = []
        if payload["input_format"] == ONE_DOC_PER_LINE:
            for number, path in enumerate(files):
                if context.should_stop():
                    raise Stopped("stopped on request")
                shards.extend(line_shards(fs, path, payload["shard_documents"], display_name(path, root)))
                context.progress(0.05 * (number + 1) / len(files), f"planned {len(shards)} shards")
        else:
            step = payload["shard_documents"]
            shards = [
                {
                    "paths": [fs.unstrip_protocol(path) for path in files[i : i + step]],
                    "names": [display_name(path, root) for path in files[i : i + step]],
                }
                for i in range(0, len(files), step)
            ]
        if not shards:
            raise InputUnreadable(f"input {payload['input']} holds no documents")
        common = {key: payload[key] for key in ("version_id", "input_format", "output_dir")}
        common |= {key: payload[key] for key in ("routing", "layout") if key in payload}
        if payload.get("confined"):
            common["confined"] = True
        context.spawn(BatchShardJob.kind, [{**common, **shard, "shard": i} for i, shard in enumerate(shards)])
        return AwaitChildren(len(shards))

    def children_finished(
        self, payload: dict[str, Any], results: list[dict[str, Any] | None]
    ) -> dict[str, Any]:
        parts = [result for result in results if result]
        manifest = {
            "output": payload.get("output_uri") or payload["output_dir"],
            "documents": sum(part["documents"] for part in parts),
            "errors": sum(part["errors"] for part in parts),
            "parts": [part["part"] for part in parts],
            "input": payload["input"],
            "input_format": payload["input_format"],
        }
        if payload.get("confined"):
            self.locations.confirm(payload["output_dir"], "batch output")
        store = ArtifactStore(payload["output_dir"])
        if payload.get("layout") == COMPREHEND_LAYOUT:
            return manifest | {"layout": COMPREHEND_LAYOUT, "parts": self._tarball(payload, store, parts)}
        store.write_bytes(MANIFEST, json.dumps(manifest, indent=2).encode())
        return manifest

    def _tarball(
        self, payload: dict[str, Any], store: ArtifactStore, parts: list[dict[str, Any]]
    ) -> list[str]:
        """Write Comprehend's ``output/output.tar.gz`` from the parts, then remove the parts;
        the names of the tarball's files."""
        if payload.get("confined"):  # the folder written into, link by link
            self.locations.confirm(f"{payload['output_dir']}/{TARBALL.rpartition('/')[0]}", "batch output")
        tarball = store.path(TARBALL)
        paths = [store.path(part["part"]) for part in parts]
        if store.exists(tarball):  # written before a crash, before the parts were removed: complete
            with tarfile.open(fileobj=io.BytesIO(store.read_bytes(tarball)), mode="r:gz") as tar:
                names = tar.getnames()
        else:
            limit = int(payload.get("member_bytes") or MEMBER_BYTES)
            groups: list[list[tuple[str, int]]] = []
            size = 0
            for path in paths:
                part_size = int(store.fs.size(path))
                if not groups or (size > 0 and size + part_size > limit):  # a part is never split
                    groups.append([])
                    size = 0
                groups[-1].append((path, part_size))
                size += part_size
            names = [member_name(number) for number in range(len(groups))]
            store.write_bytes(TARBALL, _tar_gz(store, list(zip(names, groups, strict=True))))
        for path in paths:
            if store.exists(path):
                store.fs.rm(path)
        return names

    def ended(self, session: Session, job_id: str) -> None:
        """``batch.completed`` / ``batch.failed``, with the job's final status (notifications)."""
        job = session.get(JobRow, job_id, populate_existing=True)
        if job is not None:
            record_batch(session, job)

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        """Remove the parts of a failed or stopped batch: nothing may pass for a complete output."""
        if payload.get("confined") and not self.locations.allows_as_is(payload["output_dir"]):
            return  # a link now leads elsewhere: delete nothing there
        ArtifactStore(payload["output_dir"]).delete_prefix("")


class BatchShardJob(JobKindBase):
    """Classifies one shard and writes its part file atomically."""

    kind = "batch_shard"

    def __init__(
        self,
        database: Database,
        models: ModelCache,
        predictions: PredictionService,
        locations: DataLocations,
        write_tasks: Write | None = None,
    ) -> None:
        self.database = database
        self.models = models
        self.predictions = predictions
        self.locations = locations
        self.write_tasks = write_tasks  # ReviewService.add_tasks: routed documents' review tasks

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        with self.database.reading() as session:
            version = ModelVersionRepository(session).get(int(payload["version_id"]))
            model = self.models.get(version)
        routing = payload.get("routing")
        serving = policy = None
        if routing is not None and self.write_tasks is not None:
            policy = RoutingPolicy.from_dict(routing["policy"])
            endpoint = routing["endpoint"]
            serving = Serving(endpoint, "", version.name, version.id, model, policy, version.classifier_id)
        native = payload.get("layout", TAGLOOP_LAYOUT) == TAGLOOP_LAYOUT  # Comprehend's lines say nothing
        names, texts = self._documents(payload)
        top = self.predictions.answer_top(model)  # the best 3 classes a line, as Comprehend writes
        lines: list[bytes] = []
        errors = 0
        chunk = 2_000
        for start in range(0, len(texts), chunk):
            if context.should_stop():
                raise Stopped("stopped on request")
            batch = texts[start : start + chunk]
            predictions = list(self.predictions.classify(model, batch, top))
            reviews: list[dict[str, Any] | None] = [None] * len(batch)
            if serving is not None and policy is not None and self.write_tasks is not None:
                seed = f"{payload['output_dir']}:{payload['shard']}:{start}"  # the same again on a retry
                reviews = route_batch(
                    serving, policy, batch, predictions, seed, self.database, self.write_tasks
                )
            for (file, line), prediction, review in zip(
                names[start : start + chunk], predictions, reviews, strict=True
            ):
                if prediction.error is not None:
                    errors += 1
                line_record = comprehend.output_line(prediction, file, line)
                if review is not None and native:
                    line_record["review"] = review
                lines.append(orjson.dumps(line_record))  # UTF-8, unescaped, like ensure_ascii=False
            context.progress(min(0.99, (start + len(batch)) / max(1, len(texts))), "classifying")
        part = f"part-{int(payload['shard']):05d}.jsonl"
        data = b"\n".join(lines) + b"\n" if lines else b""
        if payload.get("confined"):
            self.locations.confirm(payload["output_dir"], "batch output")
        ArtifactStore(payload["output_dir"]).write_bytes(part, data)
        return {"part": part, "documents": len(lines), "errors": errors}

    def _documents(self, payload: dict[str, Any]) -> tuple[list[tuple[str, int | None]], list[str]]:
        names: list[tuple[str, int | None]] = []
        texts: list[str] = []
        path, name = payload.get("path", ""), payload.get("name", "")
        if payload.get("confined"):
            for checked in payload.get("paths") or [payload["path"]]:
                self.locations.confirm(checked, "batch input")
        try:
            if payload["input_format"] == ONE_DOC_PER_FILE:
                for path, name in zip(payload["paths"], payload["names"], strict=True):
                    with fsspec.open(path, "rb", compression="infer") as handle:
                        raw = handle.read()
                    texts.append(_decode(raw, name, None))
                    names.append((name, None))
                return names, texts
            path = payload["path"]
            with fsspec.open(path, "rb", compression=payload.get("compression")) as handle:
                handle.seek(payload["start"])
                end = payload["end"]
                raw = handle.read() if end is None else handle.read(end - payload["start"])
        except FileNotFoundError as exc:
            raise InputUnreadable(
                f"input file {exc.filename or ''} cannot be opened: no such file (a broken link, or removed)"
            ) from exc
        except PermissionError as exc:
            raise InputUnreadable(f"input file cannot be read: permission denied ({exc.filename})") from exc
        except (*DAMAGED_STREAM_ERRORS, OSError) as exc:
            reason = damaged_compressed_file(path, exc)
            if reason is None:
                raise
            raise InputUnreadable(f"{name}: {reason}") from exc
        name = payload["name"]
        for offset, line in enumerate(raw.split(b"\n")):
            number = payload["first_line"] + offset
            text = _decode(line.rstrip(b"\r"), name, number)
            if text.strip():
                names.append((name, number))
                texts.append(text)
        return names, texts

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        """A shard that gives up fails its batch, whose ``abandoned`` removes the parts."""

    def children_finished(
        self, payload: dict[str, Any], results: list[dict[str, Any] | None]
    ) -> dict[str, Any]:
        raise NotImplementedError("shards have no children")


def _routing(session: Any, endpoint: str, classifier_id: int) -> dict[str, Any]:
    """What a job routed by ``endpoint``'s policy carries: the endpoint and its policy now."""
    row = EndpointRepository(session).get(endpoint)
    if row.classifier_id != classifier_id:
        raise InvalidRequest(f"routing: endpoint {endpoint!r} serves another classifier")
    policy = RoutingPolicy.from_dict(row.routing) if row.routing else RoutingPolicy()
    if not policy.active:
        raise InvalidRequest(
            f"routing: endpoint {endpoint!r} routes nothing (see `tagloop endpoints routing`)"
        )
    return {"endpoint": endpoint, "policy": policy.to_dict()}


def _tar_gz(store: ArtifactStore, members: list[tuple[str, list[tuple[str, int]]]]) -> bytes:
    """A gzipped tar holding, for each ``(name, parts)``, one file: those parts, concatenated
    (streamed from the store: only the compressed tarball is held whole)."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, parts in members:
            info = tarfile.TarInfo(name)
            info.size = sum(size for _, size in parts)
            info.mtime = now
            info.mode = 0o644
            tar.addfile(info, _Concatenated(store, [path for path, _ in parts]))
    return buffer.getvalue()


class _Concatenated:
    """The files at ``paths`` read one after another, as one file (what tarfile reads from)."""

    def __init__(self, store: ArtifactStore, paths: list[str]) -> None:
        self.store = store
        self.paths = list(paths)
        self.current: Any = None

    def read(self, size: int = -1) -> bytes:
        chunks: list[bytes] = []
        wanted = size
        while wanted != 0:
            if self.current is None:
                if not self.paths:
                    break
                self.current = self.store.fs.open(self.paths.pop(0), "rb")
            chunk = self.current.read(wanted if wanted > 0 else -1)
            if not chunk:
                self.current.close()
                self.current = None
                continue
            chunks.append(chunk)
            if wanted > 0:
                wanted -= len(chunk)
        return b"".join(chunks)


def _decode(raw: bytes, name: str, line: int | None) -> str:
    try:
        return raw.decode("utf-8-sig" if line in (0, None) else "utf-8")
    except UnicodeDecodeError as exc:
        where = f"{name} line {line}" if line is not None else name
        raise InputUnreadable(f"{where} is not valid UTF-8 (byte {exc.start})") from exc
