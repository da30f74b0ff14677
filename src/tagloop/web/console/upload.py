"""``/console/upload``: a labelled file from the browser becomes a new classifier, or a new
version of one, the way ``tagloop train`` makes it (admins).

The file is written to a private folder of the data dir under its own (cleaned) name, so the
format is inferred from its suffix as the CLI infers it, and imported by
``TrainingService.submit`` in one transaction (a bad file leaves nothing behind); the copy is
deleted either way. The form comes back (status 200: a browser logs any other as an error)
with every rejected row shown, line by line, with the CLI's own message
(``RowIssue``), naming the uploaded file instead of the server's copy.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from tagloop.domain.records import DEFAULT_LABEL_DELIMITER, Mode
from tagloop.errors import DatasetInvalid, InvalidRequest, RowIssue
from tagloop.services.training import TrainRequest
from tagloop.storage.private import open_private, private_folder
from tagloop.web.console.common import AdminSession, see_other
from tagloop.web.render import page
from tagloop.web.security import tagloop_of

router = APIRouter(include_in_schema=False)
FORMATS = ("", "comprehend-csv", "csv", "jsonl")
ROWS_SHOWN = 500  # rejected rows listed on the page (the count says how many in all)
CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class UploadForm:
    """The form as sent (shown again with the errors)."""

    classifier: str = ""
    mode: str = "multi-class"
    format: str = ""
    text_columns: str = ""
    label_column: str = ""
    delimiter: str = DEFAULT_LABEL_DELIMITER
    errors: dict[str, str] = field(default_factory=dict)


def clean_name(name: str | None) -> str:
    """The uploaded file's name, safe as a file name here, its suffix kept (it tells the format
    and the compression)."""
    cleaned = _UNSAFE.sub("-", (name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip(".-")
    return cleaned[-100:] or "upload.csv"


def _text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def read_form(form: FormData) -> tuple[UploadForm, UploadFile | None]:
    sent = UploadForm(
        classifier=_text(form, "classifier", 63),
        mode=_text(form, "mode") or "multi-class",
        format=_text(form, "format"),
        text_columns=_text(form, "text_columns", 1_000),
        label_column=_text(form, "label_column"),
        delimiter=_text(form, "delimiter", 10) or DEFAULT_LABEL_DELIMITER,
    )
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        sent.errors["file"] = "choose a labelled file (CSV, JSON lines; .gz or .bz2 compressed)"
        upload = None
    if not sent.classifier:
        sent.errors["classifier"] = "name the classifier (a new name creates it)"
    if sent.format not in FORMATS:
        sent.errors["format"] = f"format: one of {', '.join(f for f in FORMATS if f)}"
    return sent, upload


def _copy(upload: UploadFile, folder: Path) -> Path:
    """The upload written to ``folder`` (0700) under its cleaned name (0600)."""
    private_folder(folder)
    path = folder / clean_name(upload.filename)
    upload.file.seek(0)
    with open(open_private(path, os.O_WRONLY | os.O_TRUNC), "wb") as out:
        shutil.copyfileobj(upload.file, out, CHUNK)
    return path


def submit(tagloop: Any, sent: UploadForm, upload: UploadFile) -> tuple[str | None, list[str], str | None]:
    """Import and queue the training (blocking); the job id, or the rejected rows and the error."""
    folder = tagloop.settings.data_dir / "uploads" / secrets.token_hex(8)
    rejected: list[str] = []
    name = clean_name(upload.filename)
    try:
        path = _copy(upload, folder)

        def note(source: str, issue: RowIssue) -> None:
            if len(rejected) < ROWS_SHOWN:
                rejected.append(f"{name}:{issue.line}: {issue.reason}")

        try:
            request = TrainRequest(
                classifier=sent.classifier,
                data=str(path),
                mode=Mode.parse(sent.mode),
                delimiter=sent.delimiter,
                format=sent.format or None,
                text_columns=tuple(
                    column.strip() for column in sent.text_columns.split(",") if column.strip()
                ),
                label_column=sent.label_column or None,
                on_issue=note,
            )
            submission = tagloop.training.submit(request)
        except DatasetInvalid as exc:
            if not rejected:  # heard through the error only (a check of the whole file)
                rejected = [f"{name}:{issue.line}: {issue.reason}" for issue in exc.issues[:ROWS_SHOWN]]
            return None, rejected, exc.message.replace(str(path), name)
        except InvalidRequest as exc:
            return None, rejected, exc.message.replace(str(path), name)
        return submission.job_id, [], None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _page(request: Request, session: Any, sent: UploadForm, **context: Any) -> Response:
    classifiers = await run_in_threadpool(tagloop_of(request).catalog.classifiers)
    context.setdefault("rejected", [])
    context.setdefault("problem", None)
    return await page(
        request,
        "console/upload.html",
        "Upload",
        session=session,
        active="upload",
        form=sent,
        formats=FORMATS,
        classifiers=[found["name"] for found in classifiers],
        shown=ROWS_SHOWN,
        **context,
    )


@router.get("/console/upload")
async def upload_page(request: Request, session: AdminSession, classifier: str = "") -> Response:
    return await _page(request, session, UploadForm(classifier=classifier[:63]))


@router.post("/console/upload")
async def upload(request: Request, session: AdminSession) -> Response:
    sent, file = read_form(await request.form())
    if sent.errors or file is None:
        return await _page(request, session, sent)
    job_id, rejected, problem = await run_in_threadpool(submit, tagloop_of(request), sent, file)
    if job_id is None:
        return await _page(request, session, sent, rejected=rejected, problem=problem)
    return see_other(f"/console/jobs/{job_id}?done=uploaded")
