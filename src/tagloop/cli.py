"""The ``tagloop`` command line (Typer + Rich).

Results go to stdout (one JSON document, or JSON lines, with ``--json``); progress, warnings
and errors go to stderr. User mistakes exit with status 1 and a one-line reason, no traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tagloop.errors import ConfigurationError, DatasetInvalid, TagloopError

if TYPE_CHECKING:
    from tagloop.domain.predictions import Prediction

app = typer.Typer(
    name="tagloop",
    help="Text classification with a human in the loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


class State:
    """Settings given as global CLI options; they override TAGLOOP_* variables."""

    overrides: ClassVar[dict[str, Any]] = {}


def _settings() -> Any:
    from tagloop.settings import Settings

    return Settings(**State.overrides)


@contextmanager
def _tagloop() -> Iterator[Any]:
    from tagloop.app import Tagloop

    instance = Tagloop(_settings())
    try:
        yield instance
    finally:
        instance.close()


# The CLI's error mapping: every TagloopError (and every translated library error) is one line
# on stderr, "error: <message>", and this exit status (Typer's usage errors exit with 2); a
# rejected file adds one line per rejected row. The CLI's user runs tagloop: the messages
# may name paths and the database's reason, which the HTTP doors keep to the server's log.
EXIT_STATUS = 1


def _fail(exc: TagloopError) -> None:
    stderr.print(f"[red]error:[/red] {exc.message}", markup=True, highlight=False)
    if isinstance(exc, DatasetInvalid):
        for issue in exc.issues[:50]:
            stderr.print(f"  {exc.source}:{issue.line}: {issue.reason}", markup=False, highlight=False)
        if len(exc.issues) > 50:
            stderr.print(f"  ... and {len(exc.issues) - 50} more", markup=False)
    raise typer.Exit(EXIT_STATUS)


def _environment_error(exc: Exception) -> TagloopError | None:
    """The errors a user's environment causes (files, database, object store, settings), as
    one-line errors."""
    from botocore.exceptions import BotoCoreError, ClientError
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, BotoCoreError | ClientError):  # before OSError: some are both
        return ConfigurationError(f"cannot use the object store: {exc}")
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return ConfigurationError(f"{exc.strerror or exc}{where}")
    if isinstance(exc, OperationalError):
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return ConfigurationError(f"cannot use the database: {reason}")
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        return ConfigurationError(f"invalid settings: {problems}")
    return None


def _guard(function: Callable[[], T]) -> T:
    try:
        return function()
    except TagloopError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    except Exception as exc:
        translated = _environment_error(exc)
        if translated is None:
            raise
        _fail(translated)
        raise  # unreachable: _fail exits


@contextmanager
def _progress(enabled: bool = True) -> Iterator[Callable[[float, str], None]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not (enabled and stderr.is_terminal),
    )
    with progress:
        task = progress.add_task("starting", total=1.0)

        def update(fraction: float, message: str) -> None:
            progress.update(task, completed=fraction, description=message)

        yield update


def _emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")


def _warn(warnings: list[str] | None) -> None:
    for warning in warnings or []:
        stderr.print(f"[yellow]warning:[/yellow] {warning}", markup=True, highlight=False)


def _metrics_table(metrics: dict[str, float] | None, title: str) -> None:
    if not metrics:
        stdout.print(f"{title}: no metrics (no test documents)")
        return
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    stdout.print(table)


@app.callback()
def main(
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (TAGLOOP_DATA_DIR).")] = None,
    database_url: Annotated[str | None, typer.Option(help="Metadata DB URL (TAGLOOP_DATABASE_URL).")] = None,
    artifacts_url: Annotated[
        str | None, typer.Option(help="Artifact store URL (TAGLOOP_ARTIFACTS_URL).")
    ] = None,
) -> None:
    """tagloop: train, evaluate and serve text classifiers."""
    overrides = {"data_dir": data_dir, "database_url": database_url, "artifacts_url": artifacts_url}
    State.overrides = {key: value for key, value in overrides.items() if value is not None}


@app.command()
def train(
    classifier: Annotated[str, typer.Argument(help="Classifier name (created on first training).")],
    data: Annotated[str, typer.Option("--data", help="Training file: path or fsspec URL.")],
    test: Annotated[
        str | None, typer.Option("--test", help="Test file; default: a stratified 10% split.")
    ] = None,
    mode: Annotated[str, typer.Option(help="multi-class or multi-label.")] = "multi-class",
    delimiter: Annotated[str, typer.Option(help="Joins the labels of a multi-label row.")] = "|",
    version_name: Annotated[str | None, typer.Option(help="Name of the new version (default v<N>).")] = None,
    format: Annotated[str | None, typer.Option(help="comprehend-csv, csv (header) or jsonl.")] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Column(s) holding the text, comma-separated (joined).")
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="Column holding the label(s).")] = None,
    background: Annotated[
        bool, typer.Option("--background", help="Queue the training job and return its id at once.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Train a new version of CLASSIFIER from a labelled file and evaluate it."""
    from tagloop.domain.records import Mode
    from tagloop.services.training import TrainRequest

    unattended: list[str] = []

    def run() -> dict[str, Any]:
        request = TrainRequest(
            classifier=classifier,
            data=data,
            test=test,
            mode=Mode.parse(mode),
            delimiter=delimiter,
            version_name=version_name,
            format=format,
            text_columns=_columns(text_column),
            label_column=label_column,
        )
        with _tagloop() as tagloop:
            if background:
                submission = tagloop.training.submit(request)
                unattended.extend(filter(None, [tagloop.jobs.unattended()]))
                return tagloop.jobs.show(submission.job_id)
            with _progress() as progress:
                return tagloop.training.train(request, progress)

    result = _guard(run)
    if background:
        if as_json:
            _emit_json(result)
        else:
            stdout.print(result["id"])
            stderr.print(f"queued job {result['id']} training {result['classifier']} {result['version']}")
        _warn(unattended)  # nothing would run it: say so, and how to start a worker
        return
    _warn(result.get("warnings"))
    if as_json:
        keys = (
            "classifier",
            "version",
            "status",
            "metrics",
            "labels",
            "documents",
            "train_seconds",
            "warnings",
        )
        _emit_json({key: result[key] for key in keys})
        return
    stdout.print(
        f"trained {result['classifier']} {result['version']}: {len(result['labels'])} labels, "
        f"{result['documents']['train']} training and {result['documents']['test']} test documents "
        f"in {result['train_seconds']:.1f} s"
    )
    _metrics_table(result["metrics"], "test set")


def _columns(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if value else ()


@app.command()
def evaluate(
    classifier: Annotated[str, typer.Argument()],
    data: Annotated[str, typer.Option("--data", help="Labelled file to evaluate on.")],
    version: Annotated[str | None, typer.Option(help="Version name; default: newest trained.")] = None,
    format: Annotated[str | None, typer.Option(help="comprehend-csv, csv (header) or jsonl.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Column(s) holding the text.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Column holding the label(s).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure a trained version on a labelled file (Comprehend's metrics)."""

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return tagloop.predictions.evaluate(
                classifier, data, version, format, _columns(text_column), label_column
            )

    result = _guard(run)
    _warn(result.get("warnings"))
    if as_json:
        _emit_json(result)
        return
    _metrics_table(
        result["metrics"], f"{result['classifier']} {result['version']} on {result['documents']} documents"
    )


@app.command()
def classify(
    classifier: Annotated[str, typer.Argument()],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; none: read stdin, one per line.")] = None,
    version: Annotated[str | None, typer.Option(help="Version name; default: newest trained.")] = None,
    top: Annotated[int | None, typer.Option(help="Only the best K classes per document.")] = None,
    processes: Annotated[
        int, typer.Option(help="Processes extracting features for long inputs (0: one per CPU, up to 4).")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Classify texts given as arguments, or stdin one document per line."""

    def run() -> int:
        from tagloop.domain import comprehend

        failures = 0
        with _tagloop() as tagloop:
            _, model = tagloop.predictions.model(classifier, version)
            source = texts if texts else (line.rstrip("\r\n") for line in sys.stdin)
            write = sys.stdout.write
            workers = processes or min(4, os.cpu_count() or 1)
            for prediction in tagloop.predictions.classify(model, source, top, processes=workers):
                if prediction.error is not None:
                    failures += 1
                if as_json:  # as Comprehend answers, and an AWS SDK reports an error
                    document = (
                        comprehend.client_error(prediction.error)
                        if prediction.error is not None
                        else comprehend.result(prediction)
                    )
                    write(orjson.dumps(document).decode())
                    write("\n")
                else:
                    write(_human_result(prediction) + "\n")
            sys.stdout.flush()
        return failures

    failures = _guard(run)
    if failures:
        stderr.print(f"[red]error:[/red] {failures} document(s) could not be classified", markup=True)
        raise typer.Exit(EXIT_STATUS)


def _human_result(prediction: Prediction) -> str:
    if prediction.error is not None:
        return f"ERROR\t{prediction.error.message}"
    shown = zip(prediction.labels[:3], prediction.scores[:3], strict=True)
    return "\t".join(f"{name}:{score:.3f}" for name, score in shown)


@app.command()
def classifiers(as_json: JsonOption = False) -> None:
    """List classifiers."""

    def run() -> list[dict[str, Any]]:
        with _tagloop() as tagloop:
            return tagloop.catalog.classifiers()

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    table = Table("name", "mode", "versions", "latest trained")
    for row in result:
        table.add_row(row["name"], row["mode"], str(row["versions"]), row["latest_trained_version"] or "-")
    stdout.print(table)


@app.command()
def versions(
    classifier: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Argument(help="Show one version in full.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the model versions of CLASSIFIER, or show one in full."""

    def run() -> Any:
        with _tagloop() as tagloop:
            if version is not None:
                return tagloop.catalog.version(classifier, version)
            return tagloop.catalog.versions(classifier)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    rows = [result] if version is not None else result
    table = Table("version", "status", "accuracy", "macro F1", "train", "test", "seconds", "message")
    for row in rows:
        metrics = row.get("metrics") or {}
        table.add_row(
            row["version"],
            row["status"],
            f"{metrics['Accuracy']:.4f}" if metrics else "-",
            f"{metrics['F1Score']:.4f}" if metrics else "-",
            str((row.get("documents") or {}).get("train", "-")),
            str((row.get("documents") or {}).get("test", "-")),
            f"{row['train_seconds']:.1f}" if row.get("train_seconds") else "-",
            row.get("message") or "",
        )
    stdout.print(table)


@app.command()
def batch(
    classifier: Annotated[str, typer.Argument()],
    input: Annotated[str, typer.Option("--input", help="File, folder or fsspec URL (s3://...).")],
    output: Annotated[str, typer.Option("--output", help="Folder or URL; results go to <output>/<job id>/.")],
    input_format: Annotated[
        str, typer.Option(help="ONE_DOC_PER_LINE or ONE_DOC_PER_FILE.")
    ] = "ONE_DOC_PER_LINE",
    version: Annotated[str | None, typer.Option(help="Version name; default: newest trained.")] = None,
    shard_documents: Annotated[int, typer.Option(help="Documents (or files) per shard.")] = 20_000,
    background: Annotated[
        bool, typer.Option("--background", help="Queue the job and return its id.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Classify a large input in parallel shards (Comprehend's StartDocumentClassificationJob)."""
    from tagloop.services.batch import BatchRequest

    def run() -> dict[str, Any]:
        request = BatchRequest(classifier, input, output, input_format.upper(), version, shard_documents)
        with _tagloop() as tagloop:
            job_id = tagloop.batch.submit(request)
            if background:
                return tagloop.jobs.show(job_id)
            tagloop.start_workers()
            with _progress() as progress:
                job = tagloop.jobs.wait(job_id, progress=progress)
            if job["status"] != "COMPLETED":
                raise TagloopError(f"batch job {job_id} {job['status']}: {job['error']}")
            return job

    result = _guard(run)
    if as_json:
        _emit_json(result)
    elif background:
        stdout.print(result["id"])
    else:
        manifest = result["result"]
        stdout.print(f"classified {manifest['documents']} documents into {manifest['output']}")


jobs_app = typer.Typer(help="Background jobs: list, show, stop, retry.", invoke_without_command=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.callback()
def jobs_list(
    context: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    if context.invoked_subcommand is not None:
        return

    def run() -> list[dict[str, Any]]:
        with _tagloop() as tagloop:
            return tagloop.jobs.list(limit, status.upper() if status else None)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    table = Table("id", "kind", "status", "progress", "classifier", "version", "created", "error")
    for row in result:
        table.add_row(
            row["id"],
            row["kind"],
            row["status"],
            f"{row['progress']:.0%}",
            row["classifier"] or "-",
            row["version"] or "-",
            (row["created_at"] or "")[:19],
            row["error"] or "",
        )
    stdout.print(table)


def _job_action(action: str, job_id: str, as_json: bool) -> None:
    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return getattr(tagloop.jobs, action)(job_id)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    for key, value in result.items():
        if value is not None:
            stdout.print(f"{key}: {value}", markup=False, highlight=False)


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Show one job: status, progress, error, what it produced."""
    _job_action("show", job_id, as_json)


@jobs_app.command("stop")
def jobs_stop(job_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Stop a job: at once if it has not started, within seconds if it runs."""
    _job_action("stop", job_id, as_json)


@jobs_app.command("retry")
def jobs_retry(job_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Queue a FAILED or STOPPED job again."""
    _job_action("retry", job_id, as_json)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once (default TAGLOOP_JOB_WORKERS).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run the queued jobs, then exit.")] = False,
) -> None:
    """Run queued jobs until interrupted (Ctrl-C stops after the running jobs' current step)."""
    if concurrency is not None:
        State.overrides["job_workers"] = concurrency

    def run() -> None:
        with _tagloop() as tagloop:
            if once:
                ran = tagloop.queue.run_until_idle()
                stderr.print(f"ran {ran} job(s)")
                return
            stderr.print(
                f"{tagloop.queue.name} worker: {tagloop.settings.job_workers} job(s) at once; Ctrl-C stops"
            )
            tagloop.queue.serve_forever()

    _guard(run)


@app.command()
def workers(as_json: JsonOption = False) -> None:
    """List the processes that run jobs (`tagloop serve`, `tagloop worker`) and when each was last seen."""

    def run() -> list[dict[str, Any]]:
        with _tagloop() as tagloop:
            return tagloop.jobs.workers()

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    if not result:
        stderr.print("no worker has announced itself: start `tagloop worker` (or `tagloop serve`)")
        return
    table = Table("host", "pid", "kind", "jobs", "started (UTC)", "last seen")
    for row in result:
        seen = f"{row['seconds_since_seen']:.0f} s ago"
        table.add_row(
            row["host"],
            str(row["pid"]),
            row["kind"],
            str(row["concurrency"]),
            row["started_at"][:16].replace("T", " "),
            seen if row["alive"] else f"{seen}: gone?",
        )
    stdout.print(table)


@app.command()
def predictions(
    endpoint: Annotated[str | None, typer.Argument(help="Endpoint name; none: every endpoint.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="From a date (2026-11-30), a date and time (UTC) or a duration ago (30m, 24h, 7d)."
        ),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Only predictions whose best label is this.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List logged predictions, newest first: when, id, best label and score, version, text.

    The text is shown cut to 80 characters (whole with --json); it is empty when
    TAGLOOP_LOG_PREDICTION_TEXT is off."""

    def run() -> list[dict[str, Any]]:
        with _tagloop() as tagloop:
            return tagloop.prediction_history.page(endpoint, since, label, limit)[0]

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    if not result:
        stderr.print("no logged predictions match")
        return
    write = sys.stdout.write
    for row in result:
        text = " ".join((row["text"] or "").split())
        shown = text if len(text) <= 80 else text[:79] + "…"
        score = f"{row['score']:.3f}" if row["score"] is not None else "-"
        version = f"{row['classifier'] or '-'} {row['version'] or '-'}"
        fields = (
            row["created_at"][:19],
            row["id"],
            row["endpoint"],
            version,
            row["label"] or "-",
            score,
            shown,
        )
        write("\t".join(fields) + "\n")


endpoints_app = typer.Typer(help="Endpoints: names that point at one model version.", no_args_is_help=True)
app.add_typer(endpoints_app, name="endpoints")
keys_app = typer.Typer(help="API keys (scopes classify, review, admin).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _print_rows(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(row.get(column) if row.get(column) is not None else "-") for column in columns))
    stdout.print(table)


def _run_and_print(action: Callable[[Any], Any], as_json: bool, columns: tuple[str, ...]) -> None:
    def run() -> Any:
        with _tagloop() as tagloop:
            return action(tagloop)

    result = _guard(run)
    if as_json:
        _emit_json(result)
    elif result is not None:
        _print_rows(result if isinstance(result, list) else [result], columns)


ENDPOINT_COLUMNS = ("name", "classifier", "version", "status", "desired_inference_units", "updated_at")
KEY_COLUMNS = ("access_key_id", "name", "scope", "created_at", "revoked_at")


@endpoints_app.command("create")
def endpoints_create(
    name: Annotated[str, typer.Argument()],
    classifier: Annotated[str, typer.Option(help="Classifier to serve.")],
    version: Annotated[str | None, typer.Option(help="Version; default: newest trained.")] = None,
    inference_units: Annotated[
        int, typer.Option(help="Recorded like Comprehend's DesiredInferenceUnits.")
    ] = 1,
    as_json: JsonOption = False,
) -> None:
    """Create an endpoint serving a trained version (waits until its model is loaded)."""
    _run_and_print(
        lambda t: _deployed(t, t.endpoints.create(name, classifier, version, inference_units)),
        as_json,
        ENDPOINT_COLUMNS,
    )


def _deployed(tagloop: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """Run (or wait for) the endpoint's deploy job; the endpoint as it is afterwards."""
    if summary.get("job_id"):
        tagloop.queue.run_now(summary["job_id"])
    return tagloop.endpoints.show(summary["name"])


@endpoints_app.command("update")
def endpoints_update(
    name: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Option(help="Version; default: newest trained.")] = None,
    inference_units: Annotated[int | None, typer.Option(help="New desired inference units.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Move an endpoint to another version: once its model is loaded, every server switches
    within a second; a model that cannot load leaves the current one serving."""
    _run_and_print(
        lambda t: _deployed(t, t.endpoints.update(name, version, inference_units)), as_json, ENDPOINT_COLUMNS
    )


@endpoints_app.command("delete")
def endpoints_delete(name: Annotated[str, typer.Argument()]) -> None:
    """Delete an endpoint (its versions stay)."""
    _run_and_print(lambda t: t.endpoints.delete(name), False, ENDPOINT_COLUMNS)


@endpoints_app.command("list")
def endpoints_list(as_json: JsonOption = False) -> None:
    """List endpoints."""
    _run_and_print(lambda t: t.endpoints.list(), as_json, ENDPOINT_COLUMNS)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for: letters, digits, hyphens (1-63).")],
    scope: Annotated[str, typer.Option(help="classify, review or admin.")] = "classify",
    as_json: JsonOption = False,
) -> None:
    """Create an API key; its secret is printed once and cannot be shown again."""

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return tagloop.keys.create(name, scope)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    stdout.print(f"access key id: {result['access_key_id']}\nsecret:        {result['secret']}", markup=False)
    stderr.print("the secret is shown only now: store it safely")


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """List API keys (never their secrets)."""
    _run_and_print(lambda t: t.keys.list(), as_json, KEY_COLUMNS)


@keys_app.command("revoke")
def keys_revoke(access_key_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Revoke an API key (every server refuses it within seconds)."""
    _run_and_print(lambda t: t.keys.revoke(access_key_id), as_json, KEY_COLUMNS)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (needed once per release on PostgreSQL)."""
    from tagloop.app import Tagloop
    from tagloop.storage import migrate

    def run() -> str | None:
        instance = Tagloop(_settings(), check_schema=False)
        try:
            current = migrate.upgrade(instance.database, revision)
            ensure_schema = getattr(instance.queue, "ensure_schema", None)
            if ensure_schema is not None and ensure_schema():
                stderr.print("installed the Procrastinate job tables")
            return current
        finally:
            instance.close()

    stderr.print(f"database schema at revision {_guard(run)}")


@app.command()
def demo(as_json: JsonOption = False) -> None:
    """Create the demo classifier (IT service-desk tickets) if it does not exist."""
    from tagloop.demo import ensure_demo

    def run() -> dict[str, Any] | None:
        with _tagloop() as tagloop:
            return ensure_demo(tagloop)

    result = _guard(run)
    if as_json:
        _emit_json(result)
    elif result:
        stderr.print(f"demo classifier {result['classifier']} {result['version']} ready")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    with_demo: Annotated[bool, typer.Option("--demo", help="Create the demo classifier first.")] = False,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Development only: no API keys (loopback hosts only).")
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (a line per request costs throughput; /metrics counts them anyway).",
        ),
    ] = False,
) -> None:
    """Run the HTTP server (and, on the local queue, the job workers)."""
    from tagloop.api.local_only import check_bind
    from tagloop.api.run import run_server
    from tagloop.demo import ensure_demo, ensure_first_admin_key

    if no_auth:
        State.overrides["auth"] = False
    settings = _guard(_settings)
    if not settings.auth:  # --no-auth and TAGLOOP_AUTH=false alike: loopback only
        _guard(lambda: check_bind(host))

    def prepare() -> None:
        """Migrate the embedded DB (or check the schema) once, before server processes start."""
        with _tagloop() as tagloop:
            result = ensure_demo(tagloop) if with_demo else None
            if result:
                stderr.print(f"demo classifier {result['classifier']} {result['version']} ready")
            if tagloop.database.is_embedded and tagloop.endpoints.list() == [] and result:
                _deployed(tagloop, tagloop.endpoints.create(result["classifier"], result["classifier"]))
                stderr.print(f"endpoint {result['classifier']} serves it")
            embedded = tagloop.database.is_embedded
            created = ensure_first_admin_key(tagloop) if embedded and settings.auth else None
            if created:
                _announce_admin_key(created, host, port)
            if not settings.auth:
                stderr.print(
                    "authentication is off (development): only requests from this machine to "
                    f"127.0.0.1, localhost or [::1] on port {port} are answered",
                    markup=False,
                    highlight=False,
                )

    _guard(prepare)
    for key, value in State.overrides.items():
        os.environ[f"TAGLOOP_{key.upper()}"] = str(value)
    run_server(host, port, workers, access_log)


def _announce_admin_key(created: dict[str, Any], host: str, port: int) -> None:
    """Say where the first admin key's secret is, never the secret: a server's log is often a file."""
    import shlex

    file = shlex.quote(str(Path(created["file"]).resolve()))
    where = f"[{host}]" if ":" in host else host
    stderr.print(
        f"created the first admin API key {created['access_key_id']}; its secret is in {file} "
        "(mode 0600), never in this log. Try:\n"
        f"  SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"secret\"])' {file})\n"
        f'  curl -H "Authorization: Bearer $SECRET" http://{where}:{port}/v1/endpoints',
        markup=False,
        highlight=False,
    )


def run() -> None:
    app()


if __name__ == "__main__":
    run()
