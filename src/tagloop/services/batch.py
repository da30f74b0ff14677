"""Batch classification (Comprehend's StartDocumentClassificationJob) as sharded jobs.

A ``batch`` job lists the input (a file, a folder or any fsspec URL), cuts it into shards
at line boundaries (``ONE_DOC_PER_LINE``) or groups of files (``ONE_DOC_PER_FILE``) and
spawns one ``batch_shard`` job per shard; workers classify shards in parallel. Each shard
writes its JSON lines to ``<output>/<job id>/part-NNNNN.jsonl`` in one atomic write, so
a shard redone after a crash replaces its part and every document appears exactly once.
When all shards complete, ``manifest.json`` is written last: its presence marks a
complete output. A failed or stopped job removes its parts.

A job submitted through a network API is ``confined``: its input and output were checked
against the allowed data locations (``services/data_locations.py``), and every file it lists,
reads or writes later is confirmed again just before, so a link put in the way since the
check refuses the job instead of leading outside the allowlist.

Output lines follow Comprehend (``domain/comprehend.py``): ``{"File": ..., "Line": ...,
"Classes": [...]}`` (``Labels`` for multi-label; ``Line`` counts from 0 and is absent for one
document per file); a document that cannot be classified gets ``ErrorCode`` and ``ErrorMessage``.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
import orjson

from tagloop.domain import comprehend
from tagloop.errors import InvalidRequest, Stopped
from tagloop.jobs.port import AwaitChildren, JobContext, JobKindBase, JobQueue
from tagloop.services.catalog import resolve_version
from tagloop.services.data_locations import DataLocations
from tagloop.services.datasets import DAMAGED_STREAM_ERRORS, damaged_compressed_file
from tagloop.services.model_cache import ModelCache
from tagloop.services.predictions import PredictionService
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository

ONE_DOC_PER_LINE = "ONE_DOC_PER_LINE"
ONE_DOC_PER_FILE = "ONE_DOC_PER_FILE"
INPUT_FORMATS = (ONE_DOC_PER_LINE, ONE_DOC_PER_FILE)
MANIFEST = "manifest.json"
COMPRESSED = (".gz", ".bz2", ".xz", ".zst")


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


class BatchService:
    def __init__(
        self,
        database: Database,
        queue: JobQueue,
        models: ModelCache,
        predictions: PredictionService,
        locations: DataLocations | None = None,
    ) -> None:
        self.database = database
        self.queue = queue
        self.models = models
        self.predictions = predictions
        self.locations = locations or DataLocations(())

    def submit(self, request: BatchRequest) -> str:
        """Check the request and enqueue the batch job; returns its id."""
        if request.input_format not in INPUT_FORMATS:
            raise InvalidRequest(f"input format must be one of {', '.join(INPUT_FORMATS)}")
        if request.shard_documents < 1:
            raise InvalidRequest("shard size must be at least 1 document")
        fs, files, _ = list_inputs(request.input)  # fail now, with a clear message, if it is not there
        if request.confined:
            confirmed_inputs(fs, files, self.locations)
        fsspec.core.url_to_fs(request.output)
        job_id = uuid.uuid4().hex
        with self.database.transaction() as session:
            classifier = ClassifierRepository(session).get(request.classifier)
            version = resolve_version(session, classifier, request.version)
            payload = {
                "version_id": version.id,
                "input": request.input,
                "output_dir": f"{request.output.rstrip('/')}/{job_id}",
                "input_format": request.input_format,
                "shard_documents": request.shard_documents,
                "name": request.name,
            }
            if request.confined:
                payload["confined"] = True
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
        if payload.get("confined"):
            common["confined"] = True
        context.spawn(BatchShardJob.kind, [{**common, **shard, "shard": i} for i, shard in enumerate(shards)])
        return AwaitChildren(len(shards))

    def children_finished(
        self, payload: dict[str, Any], results: list[dict[str, Any] | None]
    ) -> dict[str, Any]:
        parts = [result for result in results if result]
        manifest = {
            "output": payload["output_dir"],
            "documents": sum(part["documents"] for part in parts),
            "errors": sum(part["errors"] for part in parts),
            "parts": [part["part"] for part in parts],
            "input": payload["input"],
            "input_format": payload["input_format"],
        }
        if payload.get("confined"):
            self.locations.confirm(payload["output_dir"], "batch output")
        ArtifactStore(payload["output_dir"]).write_bytes(MANIFEST, json.dumps(manifest, indent=2).encode())
        return manifest

    def abandoned(self, payload: dict[str, Any], status: str, message: str) -> None:
        """Remove the parts of a failed or stopped batch: nothing may pass for a complete output."""
        if payload.get("confined") and not self.locations.allows_as_is(payload["output_dir"]):
            return  # a link now leads elsewhere: delete nothing there
        ArtifactStore(payload["output_dir"]).delete_prefix("")


class BatchShardJob(JobKindBase):
    """Classifies one shard and writes its part file atomically."""

    kind = "batch_shard"

    def __init__(
        self, database: Database, models: ModelCache, predictions: PredictionService, locations: DataLocations
    ) -> None:
        self.database = database
        self.models = models
        self.predictions = predictions
        self.locations = locations

    def run(self, context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        with self.database.reading() as session:
            version = ModelVersionRepository(session).get(int(payload["version_id"]))
            model = self.models.get(version)
        names, texts = self._documents(payload)
        top = self.predictions.answer_top(model)  # the best 3 classes a line, as Comprehend writes
        lines: list[bytes] = []
        errors = 0
        chunk = 2_000
        for start in range(0, len(texts), chunk):
            if context.should_stop():
                raise Stopped("stopped on request")
            batch = texts[start : start + chunk]
            for (file, line), prediction in zip(
                names[start : start + chunk], self.predictions.classify(model, batch, top), strict=True
            ):
                if prediction.error is not None:
                    errors += 1
                line_record = comprehend.output_line(prediction, file, line)
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


def _decode(raw: bytes, name: str, line: int | None) -> str:
    try:
        return raw.decode("utf-8-sig" if line in (0, None) else "utf-8")
    except UnicodeDecodeError as exc:
        where = f"{name} line {line}" if line is not None else name
        raise InputUnreadable(f"{where} is not valid UTF-8 (byte {exc.start})") from exc
