"""The ``tagloop`` command line (Typer + Rich).

Results go to stdout (one JSON document, or JSON lines, with ``--json``); progress, warnings
and errors go to stderr. User mistakes exit with status 1 and a one-line reason, no traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from tagloop.errors import ConfigurationError, DatasetInvalid, InvalidRequest, TagloopError

if TYPE_CHECKING:  # imported where used: `tagloop --help` stays fast
    from tagloop.app import Tagloop
    from tagloop.domain.predictions import Prediction
    from tagloop.errors import RowIssue
    from tagloop.settings import Settings

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
    errors_file: ClassVar[str | None] = None  # where `train --errors` writes every rejected row


def _settings() -> Settings:
    from tagloop.settings import Settings

    return Settings(**State.overrides)


@contextmanager
def _tagloop() -> Iterator[Tagloop]:
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


ROWS_LISTED = 50  # rejected rows listed on stderr; `--errors FILE` writes every one


def _fail(exc: TagloopError) -> None:
    stderr.print(f"[red]error:[/red] {exc.message}", markup=True, highlight=False)
    if isinstance(exc, DatasetInvalid):
        for issue in exc.issues[:ROWS_LISTED]:
            where = f"{exc.source}:{issue.member}" if issue.member else exc.source
            stderr.print(f"  {where}:{issue.line}: {issue.reason}", markup=False, highlight=False)
        if State.errors_file is not None:
            stderr.print(f"  every rejected row is in {State.errors_file}", markup=False, highlight=False)
        elif len(exc.issues) > ROWS_LISTED:
            stderr.print(
                f"  ... and {len(exc.issues) - ROWS_LISTED:,} more: only the first {ROWS_LISTED} rejected "
                "rows are shown here; --errors FILE writes every one to a file",
                markup=False,
                highlight=False,
            )
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


@contextmanager
def _output_file(path: str, keep_on_error: bool = False) -> Iterator[IO[str]]:
    """A text file written under a temporary name in its folder and renamed over ``path`` once
    complete; when the command fails, kept only with ``keep_on_error`` (it holds what went wrong)."""
    target = Path(path)
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed or removed below)
            "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", delete=False
        )
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with handle:
            yield handle
    except BaseException:
        if keep_on_error:
            os.replace(handle.name, target)
        else:
            Path(handle.name).unlink(missing_ok=True)
        raise
    os.replace(handle.name, target)


def _print_table(table: Table) -> None:
    """Print a table; piped, at its natural width (a pipe's console is 80 columns wide)."""
    if stdout.is_terminal:
        stdout.print(table)
        return
    natural = Console(width=100_000).measure(table).maximum
    Console(soft_wrap=True, width=max(80, natural)).print(table)


def _id_column(table: Table, header: str) -> None:
    """A column of ids: never cut nor wrapped, so what is shown can be copied back."""
    table.add_column(header, no_wrap=True, overflow="fold", min_width=len(header))


def _metrics_table(metrics: dict[str, float] | None, title: str) -> None:
    if not metrics:
        stdout.print(f"{title}: no metrics (no test documents)")
        return
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    _print_table(table)


def _quiet_library_warnings() -> None:
    """Python warnings of libraries (scikit-learn's UserWarnings and the like) go to the logger
    ``py.warnings``, which a command does not print: its user acts on tagloop's own warnings.
    ``serve`` and ``worker`` keep them, in their log."""
    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


@app.callback()
def main(
    context: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (TAGLOOP_DATA_DIR).")] = None,
    database_url: Annotated[str | None, typer.Option(help="Metadata DB URL (TAGLOOP_DATABASE_URL).")] = None,
    artifacts_url: Annotated[
        str | None, typer.Option(help="Artifact store URL (TAGLOOP_ARTIFACTS_URL).")
    ] = None,
) -> None:
    """tagloop: train, evaluate and serve text classifiers."""
    overrides = {"data_dir": data_dir, "database_url": database_url, "artifacts_url": artifacts_url}
    State.overrides = {key: value for key, value in overrides.items() if value is not None}
    if context.invoked_subcommand not in ("serve", "worker"):
        _quiet_library_warnings()


@app.command()
def train(
    classifier: Annotated[str, typer.Argument(help="Classifier name (created on first training).")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Training file: path or fsspec URL. Without it, --with-verified retrains on the "
            "latest version's data.",
        ),
    ] = None,
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
    errors: Annotated[
        str | None,
        typer.Option(
            "--errors",
            metavar="FILE",
            help=f"Write every rejected row to FILE (the error lists the first {ROWS_LISTED}).",
        ),
    ] = None,
    with_verified: Annotated[
        bool,
        typer.Option(
            "--with-verified",
            help="Also train on the classifier's verified documents (review answers, feedback).",
        ),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Read --data (and --test) through this import profile of the classifier "
            "(`tagloop profiles`); a profile reading a database needs no --data.",
        ),
    ] = None,
    self_training: Annotated[
        bool,
        typer.Option(
            "--self-training",
            help="Multi-class: also learn from the classifier's unlabelled pool, labelled by the "
            "model's own predictions (kept by the loop's next versions).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Train a new version of CLASSIFIER from a labelled file and evaluate it."""
    from tagloop.domain.records import Mode
    from tagloop.recipes.tfidf_linear import TfidfLinearParams
    from tagloop.services.training import TrainRequest

    unattended: list[str] = []

    def train_with(on_issue: Callable[[str, RowIssue], None] | None) -> dict[str, Any]:
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
            on_issue=on_issue,
            with_verified=with_verified,
            profile=profile,
            params=TfidfLinearParams(self_training=self_training),
        )
        with _tagloop() as tagloop:
            if background:
                submission = tagloop.training.submit(request)
                unattended.extend(filter(None, [tagloop.jobs.unattended()]))
                return tagloop.jobs.show(submission.job_id)
            with _progress() as progress:
                return tagloop.training.train(request, progress)

    def run() -> dict[str, Any]:
        if errors is None:
            return train_with(None)
        with _output_file(errors, keep_on_error=True) as rejected:
            State.errors_file = errors

            def write(source: str, row: RowIssue) -> None:
                where = f"{source}:{row.member}" if row.member else source
                rejected.write(f"{where}:{row.line}: {row.reason}\n")

            return train_with(write)

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
    verified = {k: result["documents"].get(k) for k in ("review", "feedback") if k in result["documents"]}
    if verified:
        stdout.print(
            "verified documents in training: "
            + ", ".join(f"{count} from {origin}" for origin, count in verified.items())
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
    errors: Annotated[
        str | None,
        typer.Option(
            "--errors",
            metavar="FILE",
            help="Write the misclassified documents to FILE, as JSON lines (line, text, labels, "
            "predicted, scores).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure a trained version on a labelled file (Comprehend's metrics)."""

    def evaluate_with(misclassified: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        with _tagloop() as tagloop:
            return tagloop.predictions.evaluate(
                classifier, data, version, format, _columns(text_column), label_column, misclassified
            )

    def run() -> dict[str, Any]:
        if errors is None:
            return evaluate_with(None)
        with _output_file(errors) as handle:
            count = 0

            def write(record: dict[str, Any]) -> None:
                nonlocal count
                count += 1
                handle.write(orjson.dumps(record).decode() + "\n")

            result = evaluate_with(write)
        stderr.print(f"{count} misclassified document(s) written to {errors}", markup=False, highlight=False)
        return result

    result = _guard(run)
    _warn(result.get("warnings"))
    if as_json:
        _emit_json(result)
        return
    _metrics_table(
        result["metrics"], f"{result['classifier']} {result['version']} on {result['documents']} documents"
    )
    _evaluation_details(result.get("per_label"), result.get("confusion_matrix"))


@app.command()
def classify(
    classifier: Annotated[str, typer.Argument()],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts; none: read stdin, one per line.")] = None,
    version: Annotated[str | None, typer.Option(help="Version name; default: newest trained.")] = None,
    top: Annotated[
        int | None, typer.Option(help="Only the best K classes per document (0: every class).")
    ] = None,
    with_text: Annotated[
        bool, typer.Option("--with-text", help="Print each input text beside its answer.")
    ] = False,
    processes: Annotated[
        int, typer.Option(help="Processes extracting features for long inputs (0: one per CPU, up to 4).")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Classify texts given as arguments, or stdin one document per line."""

    def run() -> int:
        from tagloop.domain import comprehend

        if top is not None and top < 0:
            raise InvalidRequest(f"--top must be 0 (every class) or more, not {top}")
        if processes < 0:
            raise InvalidRequest(f"--processes must be 0 (one per CPU) or more, not {processes}")
        failures = 0
        with _tagloop() as tagloop:
            _, model = tagloop.predictions.model(classifier, version)
            if not texts and sys.stdin.isatty():
                stderr.print(
                    "reading documents from stdin, one per line; end with Ctrl-D "
                    f'(or give them as arguments: tagloop classify {classifier} "some text")',
                    markup=False,
                    highlight=False,
                )
            source: Iterable[str] = texts if texts else (line.rstrip("\r\n") for line in sys.stdin)
            shown: deque[str] = deque()  # with --with-text: the texts read but not yet answered
            if with_text:
                source = _remembered(source, shown)
            write = sys.stdout.write
            workers = processes or min(4, os.cpu_count() or 1)
            for prediction in tagloop.predictions.classify(model, source, top, processes=workers):
                if prediction.error is not None:
                    failures += 1
                text = shown.popleft() if with_text else None
                if as_json:  # as Comprehend answers, and an AWS SDK reports an error
                    document = (
                        comprehend.client_error(prediction.error)
                        if prediction.error is not None
                        else comprehend.result(prediction)
                    )
                    if text is not None:
                        document = {"Text": text, **document}
                    write(orjson.dumps(document).decode())
                    write("\n")
                else:
                    answer = _human_result(prediction, top)
                    write(f"{answer}\t{_one_line(text)}\n" if text is not None else answer + "\n")
            sys.stdout.flush()
        return failures

    failures = _guard(run)
    if failures:
        stderr.print(f"[red]error:[/red] {failures} document(s) could not be classified", markup=True)
        raise typer.Exit(EXIT_STATUS)


def _remembered(texts: Iterable[str], kept: deque[str]) -> Iterator[str]:
    """``texts``, each also appended to ``kept`` (the caller takes them back in order)."""
    for text in texts:
        kept.append(text)
        yield text


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _human_result(prediction: Prediction, top: int | None = None) -> str:
    if prediction.error is not None:
        return f"ERROR\t{prediction.error.message}"
    limit = 3 if top is None else (top or None)
    shown = zip(prediction.labels[:limit], prediction.scores[:limit], strict=True)
    return "\t".join(f"{name}:{score:.3f}" for name, score in shown)


classifiers_app = typer.Typer(help="Classifiers: list, delete.", invoke_without_command=True)
app.add_typer(classifiers_app, name="classifiers")


@classifiers_app.callback()
def classifiers(context: typer.Context, as_json: JsonOption = False) -> None:
    """List classifiers."""
    if context.invoked_subcommand is not None:
        return

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
    _print_table(table)


@classifiers_app.command("delete")
def classifiers_delete(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Delete a classifier with all its versions, documents and model files (refused while an
    endpoint serves one of its versions or one is training)."""

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return tagloop.training.delete_classifier(name)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    stderr.print(
        f"deleted classifier {result['classifier']}: {result['versions']} version(s), "
        f"{result['documents']} document(s)",
        markup=False,
        highlight=False,
    )


class _VersionsGroup(TyperGroup):
    """``tagloop versions CLASSIFIER [VERSION]`` lists or shows (the ``show`` command), while
    ``tagloop versions delete ...`` deletes: a first word that names no command is a classifier."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.command_path, "CLASSIFIER [VERSION] [--json] | delete CLASSIFIER VERSION")


versions_app = typer.Typer(
    cls=_VersionsGroup,
    help="Model versions of a classifier: tagloop versions CLASSIFIER [VERSION]; delete.",
    no_args_is_help=True,
)
app.add_typer(versions_app, name="versions")


@versions_app.command("show")
def versions(
    classifier: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Argument(help="Show one version in full.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the model versions of CLASSIFIER, or show one in full (also without the word show)."""

    def run() -> Any:
        with _tagloop() as tagloop:
            if version is not None:
                return tagloop.catalog.version(classifier, version)
            return tagloop.catalog.versions(classifier)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    if version is not None:
        _version_details(result)
        if result["status"] == "TRAINED":
            stderr.print(
                f"plots: tagloop report {classifier} --version {version} --html report.html",
                markup=False,
                highlight=False,
            )
        return
    table = Table("version", "status", "accuracy", "macro F1", "train", "test", "seconds", "message")
    for row in result:
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
    _print_table(table)


@versions_app.command("delete")
def versions_delete(
    classifier: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
) -> None:
    """Delete a model version and its files (refused while it trains or an endpoint serves it)."""

    def run() -> None:
        with _tagloop() as tagloop:
            tagloop.training.delete_version(classifier, version)

    _guard(run)
    stderr.print(f"deleted {classifier} {version}", markup=False, highlight=False)


MATRIX_LABELS = 20  # a text confusion matrix shows at most this many labels


def _version_details(row: dict[str, Any]) -> None:
    """One version for a reader: what it is, its metrics, per-label figures, confusion matrix."""
    documents = row.get("documents") or {}
    seconds = f", trained in {row['train_seconds']:.1f} s" if row.get("train_seconds") else ""
    stdout.print(
        f"{row['classifier']} {row['version']}: {row['status']}, {row['mode']}, {len(row['labels'] or [])} "
        f"labels, {documents.get('train', 0)} training and {documents.get('test', 0)} test documents"
        f"{seconds}",
        markup=False,
        highlight=False,
    )
    if row.get("message"):
        stdout.print(f"message: {row['message']}", markup=False, highlight=False)
    for warning in row.get("warnings") or []:
        stdout.print(f"warning: {warning}", markup=False, highlight=False)
    if row["status"] != "TRAINED":
        return
    _metrics_table(row.get("metrics"), "test set")
    _evaluation_details(row.get("per_label"), row.get("confusion_matrix"))


def _evaluation_details(
    per_label: dict[str, dict[str, float]] | None, confusion: dict[str, Any] | None
) -> None:
    """The per-label table, and the confusion matrix as text (multi-label: each label's counts)."""
    if not per_label:
        return
    multi_label = confusion is not None and confusion.get("type") == "multi_label"
    cells = (
        dict(zip(confusion["labels"], confusion["confusion_matrix"], strict=True))
        if confusion is not None and multi_label
        else {}
    )
    table = Table(title="per label")
    table.add_column("label", overflow="fold")
    for name in ("precision", "recall", "F1", "support", *(("TP", "FP", "FN") if multi_label else ())):
        table.add_column(name, justify="right")
    for label, figures in per_label.items():
        counts = []
        if label in cells:
            (_, false_positive), (false_negative, true_positive) = cells[label]
            counts = [str(true_positive), str(false_positive), str(false_negative)]
        table.add_row(
            label,
            f"{figures['precision']:.4f}",
            f"{figures['recall']:.4f}",
            f"{figures['f1']:.4f}",
            str(figures["support"]),
            *counts,
        )
    _print_table(table)
    if confusion and not multi_label:
        _confusion_matrix(confusion["labels"], confusion["confusion_matrix"])
        _most_confused(confusion["labels"], confusion["confusion_matrix"])


def _confusion_matrix(labels: list[str], matrix: list[list[int]]) -> None:
    """Rows: true labels; columns: predicted, numbered (the numbers stand for the rows' labels).
    Over MATRIX_LABELS labels, the ones with most test documents are shown."""
    order = list(range(len(labels)))
    note = ""
    if len(labels) > MATRIX_LABELS:
        order = sorted(order, key=lambda i: -sum(matrix[i]))[:MATRIX_LABELS]
        order.sort()
        note = f" (the {MATRIX_LABELS} labels with most test documents of {len(labels)}; --json for all)"
    table = Table(title=f"confusion matrix: rows true, columns predicted{note}")
    table.add_column("#", justify="right")
    table.add_column("true label", overflow="ellipsis", max_width=24)
    for column in range(len(order)):
        table.add_column(str(column + 1), justify="right")
    for number, i in enumerate(order, start=1):
        table.add_row(
            str(number),
            labels[i],
            *(str(matrix[i][j]) if matrix[i][j] else "." for j in order),
        )
    _print_table(table)


@app.command()
def batch(
    classifier: Annotated[str, typer.Argument()],
    input: Annotated[str, typer.Option("--input", help="File, folder or fsspec URL (s3://...).")],
    output: Annotated[
        str, typer.Option("--output", help="Folder or URL; results go under it (see --layout).")
    ],
    input_format: Annotated[
        str, typer.Option(help="ONE_DOC_PER_LINE or ONE_DOC_PER_FILE.")
    ] = "ONE_DOC_PER_LINE",
    version: Annotated[str | None, typer.Option(help="Version name; default: newest trained.")] = None,
    shard_documents: Annotated[int, typer.Option(help="Documents (or files) per shard.")] = 20_000,
    layout: Annotated[
        str,
        typer.Option(
            help="tagloop: <output>/<job id>/part-*.jsonl + manifest.json; comprehend: as Comprehend "
            "writes it, <output>/<account id>-CLN-<job id>/output/output.tar.gz holding predictions.jsonl."
        ),
    ] = "tagloop",
    background: Annotated[
        bool, typer.Option("--background", help="Queue the job and return its id.")
    ] = False,
    routing: Annotated[
        str | None,
        typer.Option(help="Route documents to review by this endpoint's routing policy (lines say so)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Classify a large input in parallel shards (Comprehend's StartDocumentClassificationJob)."""
    from tagloop.services.batch import BatchRequest

    unattended: list[str] = []

    def run() -> dict[str, Any]:
        request = BatchRequest(
            classifier,
            input,
            output,
            input_format.upper(),
            version,
            shard_documents,
            layout=layout.lower(),
            routing=routing,
        )
        with _tagloop() as tagloop:
            job_id = tagloop.batch.submit(request)
            if background:
                unattended.extend(filter(None, [tagloop.jobs.unattended()]))
                return tagloop.jobs.show(job_id)
            tagloop.start_workers()
            with _progress() as progress:
                job = tagloop.jobs.wait(job_id, progress=progress)
            if job["status"] != "COMPLETED":
                raise TagloopError(f"batch job {job_id} {job['status']}: {job['error']}")
            return job

    result = _guard(run)
    _warn(unattended)  # queued with nothing to run it: say so, and how to start a worker
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
        from tagloop.domain.records import JobStatus

        statuses = [member.value for member in JobStatus]
        if status is not None and status.upper() not in statuses:
            raise InvalidRequest(f"unknown job status {status!r}: use one of {', '.join(statuses)}")
        if limit < 1:
            raise InvalidRequest(f"--limit must be 1 or more, not {limit}")
        with _tagloop() as tagloop:
            return tagloop.jobs.list(limit, status.upper() if status else None)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    table = Table()
    _id_column(table, "id")
    for name in ("kind", "status", "progress", "classifier", "version", "created", "error"):
        table.add_column(name, overflow="fold")
    for row in result:
        table.add_row(
            row["id"],
            row["kind"],
            row["status"],
            f"{row['progress']:.0%}",
            row["classifier"] or "-",
            row["version"] or "-",
            (row["created_at"] or "")[:19].replace("T", " "),
            row["error"] or "",
        )
    _print_table(table)


JobIdArgument = Annotated[str, typer.Argument(help="Job id, or any unique start of it.")]


def _job_action(action: str, job_id: str, as_json: bool) -> None:
    """Show, stop or retry the job ``job_id`` names: its whole id or any unique start of it."""

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return getattr(tagloop.jobs, action)(tagloop.jobs.resolve(job_id))

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    for key, value in result.items():
        if value is not None:
            stdout.print(f"{key}: {value}", markup=False, highlight=False)


@jobs_app.command("show")
def jobs_show(job_id: JobIdArgument, as_json: JsonOption = False) -> None:
    """Show one job: status, progress, error, what it produced."""
    _job_action("show", job_id, as_json)


@jobs_app.command("stop")
def jobs_stop(job_id: JobIdArgument, as_json: JsonOption = False) -> None:
    """Stop a job: at once if it has not started, within seconds if it runs."""
    _job_action("stop", job_id, as_json)


@jobs_app.command("retry")
def jobs_retry(job_id: JobIdArgument, as_json: JsonOption = False) -> None:
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
            tagloop.start_ticker()  # the learning loop's triggers (TAGLOOP_LOOP_TICK_SECONDS)
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


ID_COLUMNS = ("access_key_id",)  # shown whole: commands take them back


def _print_rows(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    table = Table()
    for column in columns:
        if column in ID_COLUMNS:
            _id_column(table, column)
        else:
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(column) if row.get(column) is not None else "-") for column in columns))
    _print_table(table)


def _run_and_print(action: Callable[[Tagloop], Any], as_json: bool, columns: tuple[str, ...]) -> None:
    def run() -> Any:
        with _tagloop() as tagloop:
            return action(tagloop)

    result = _guard(run)
    if as_json:
        _emit_json(result)
    elif result is not None:
        _print_rows(result if isinstance(result, list) else [result], columns)


ENDPOINT_COLUMNS = (
    "name",
    "classifier",
    "version",
    "follows",
    "status",
    "desired_inference_units",
    "updated_at",
)
KEY_COLUMNS = ("access_key_id", "name", "scope", "created_at", "revoked_at")


@endpoints_app.command("create")
def endpoints_create(
    name: Annotated[str, typer.Argument()],
    classifier: Annotated[str, typer.Option(help="Classifier to serve.")],
    version: Annotated[str | None, typer.Option(help="Version; default: newest trained.")] = None,
    inference_units: Annotated[
        int, typer.Option(help="Recorded like Comprehend's DesiredInferenceUnits.")
    ] = 1,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Serve the classifier's champion, moving when one is promoted (default without --version).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an endpoint serving a trained version (waits until its model is loaded). Without
    --version it follows the classifier's champion; with one it is pinned there."""
    _run_and_print(
        lambda t: _deployed(
            t, t.endpoints.create(name, classifier, version, inference_units, follow=True if follow else None)
        ),
        as_json,
        ENDPOINT_COLUMNS,
    )


def _deployed(tagloop: Tagloop, summary: dict[str, Any]) -> dict[str, Any]:
    """Run (or wait for) the endpoint's deploy job; the endpoint as it is afterwards."""
    if summary.get("job_id"):
        tagloop.queue.run_now(summary["job_id"])
    return tagloop.endpoints.show(summary["name"])


@endpoints_app.command("update")
def endpoints_update(
    name: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Option(help="Version; default: newest trained.")] = None,
    inference_units: Annotated[int | None, typer.Option(help="New desired inference units.")] = None,
    follow: Annotated[
        bool | None,
        typer.Option("--follow/--pin", help="Follow the classifier's champion, or pin to a version."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Move an endpoint to another version: once its model is loaded, every server switches
    within a second; a model that cannot load leaves the current one serving."""
    _run_and_print(
        lambda t: _deployed(t, t.endpoints.update(name, version, inference_units, follow=follow)),
        as_json,
        ENDPOINT_COLUMNS,
    )


@endpoints_app.command("delete")
def endpoints_delete(name: Annotated[str, typer.Argument()]) -> None:
    """Delete an endpoint (its versions stay)."""
    _run_and_print(lambda t: t.endpoints.delete(name), False, ENDPOINT_COLUMNS)


@endpoints_app.command("list")
def endpoints_list(as_json: JsonOption = False) -> None:
    """List endpoints."""
    _run_and_print(lambda t: t.endpoints.list(), as_json, ENDPOINT_COLUMNS)


ROUTING_COLUMNS = ("setting", "value")
UNSET = ("none", "off", "")


def _unit_or_none(option: str, value: str) -> float | None:
    if value.strip().lower() in UNSET:
        return None
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected a number from 0 to 1 or 'none', got {value!r}", param_hint=option
        ) from None


def _routing_changes(
    threshold: str | None,
    margin: str | None,
    band: str | None,
    labels: list[str] | None,
    audit: float | None,
    required: int | None,
    lease_seconds: int | None,
    lifetime_seconds: str | None,
) -> dict[str, Any]:
    """The settings the options change (a setting left out keeps its value)."""
    changes: dict[str, Any] = {}
    if threshold is not None:
        changes["threshold"] = _unit_or_none("--threshold", threshold)
    if margin is not None:
        changes["margin"] = _unit_or_none("--margin", margin)
    if band is not None:
        bounds = None if band.strip().lower() in UNSET else band.split(",")
        if bounds is not None and len(bounds) != 2:
            raise typer.BadParameter(f"expected LOW,HIGH or 'none', got {band!r}", param_hint="--band")
        changes["band"] = None if bounds is None else [_unit_or_none("--band", bound) for bound in bounds]
    if labels is not None:
        changes["labels"] = [label for label in labels if label.strip().lower() not in UNSET]
    if audit is not None:
        changes["audit"] = audit
    if required is not None:
        changes["required"] = required
    if lease_seconds is not None:
        changes["lease_seconds"] = lease_seconds
    if lifetime_seconds is not None:
        unset = lifetime_seconds.strip().lower() in UNSET
        if not unset and not lifetime_seconds.strip().isdigit():
            raise typer.BadParameter(
                f"expected seconds or 'none', got {lifetime_seconds!r}", param_hint="--lifetime"
            )
        changes["lifetime_seconds"] = None if unset else int(lifetime_seconds)
    return changes


@endpoints_app.command("routing")
def endpoints_routing(
    name: Annotated[str, typer.Argument()],
    threshold: Annotated[
        str | None, typer.Option(help="Route when the best score is below this (0-1; 'none': off).")
    ] = None,
    margin: Annotated[
        str | None, typer.Option(help="Multi-class: route when the two best differ by less (0-1; 'none').")
    ] = None,
    band: Annotated[
        str | None, typer.Option(help="Multi-label: route when a label's score is in LOW,HIGH ('none').")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Route always when this is predicted (repeat; 'none')."),
    ] = None,
    audit: Annotated[
        float | None, typer.Option(help="Share of other predictions routed for audit (0-1).")
    ] = None,
    required: Annotated[int | None, typer.Option(help="Answers each task needs (1-3).")] = None,
    lease_seconds: Annotated[
        int | None, typer.Option("--lease", help="Seconds a reviewer holds a task.")
    ] = None,
    lifetime_seconds: Annotated[
        str | None, typer.Option("--lifetime", help="Seconds a task waits for answers ('none': forever).")
    ] = None,
    off: Annotated[
        bool, typer.Option("--off", help="Turn routing off (every setting back to its default).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show or change an endpoint's review routing policy: options change only the settings
    they name; every server follows the change within a second."""
    changes = _routing_changes(
        threshold, margin, band, label, audit, required, lease_seconds, lifetime_seconds
    )

    def run(tagloop: Tagloop) -> dict[str, Any]:
        if off:
            return tagloop.endpoints.set_routing(name, None)
        current = tagloop.endpoints.routing(name)
        if not changes:
            return current
        kept = {key: value for key, value in current.items() if key not in ("endpoint", "active")}
        return tagloop.endpoints.set_routing(name, kept | changes)

    def rows(tagloop: Tagloop) -> Any:
        policy = run(tagloop)
        if as_json:
            return policy
        return [{"setting": key, "value": _setting_text(value)} for key, value in policy.items()]

    _run_and_print(rows, as_json, ROUTING_COLUMNS)


def _setting_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


review_app = typer.Typer(
    help="Human review: the task queue, answers, agreement, export of verified documents, feedback.",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")


@review_app.command("feedback")
def review_feedback(
    classifier: Annotated[str, typer.Argument(help="The classifier the feedback is about.")],
    file: Annotated[
        str, typer.Argument(help='{"classifier": ..., "sentences": [...]} or JSON lines; path or fsspec URL.')
    ],
    comment: Annotated[str | None, typer.Option(help="A comment every task carries.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a moderator review task (reason feedback) for each sentence of a feedback file,
    with the prediction of what the classifier serves now."""
    import fsspec

    from tagloop.services.feedback import Verdict, parse_feedback_file

    def run(tagloop: Tagloop) -> dict[str, Any]:
        try:
            with fsspec.open(file, "rt", encoding="utf-8", compression="infer") as handle:
                content = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"{file}: cannot read it ({exc.__class__.__name__})") from exc
        named, sentences = parse_feedback_file(content, file)
        if named is not None and named != classifier:
            raise InvalidRequest(f"{file} is feedback for {named!r}, not {classifier!r}")
        if not sentences:
            raise InvalidRequest(f"{file}: no sentences")
        step = tagloop.settings.max_classify_documents
        for start in range(0, len(sentences), step):  # every sentence checked before any task is made
            tagloop.feedback.check_texts(sentences[start : start + step], start)
        task_ids: list[str] = []
        version = None
        for start in range(0, len(sentences), step):
            made = tagloop.feedback.on_texts(
                classifier, sentences[start : start + step], Verdict(comment=comment)
            )
            task_ids += made["task_ids"]
            version = made["version"]
        return {"classifier": classifier, "version": version, "task_ids": task_ids}

    result = _guard(lambda: _with_tagloop(run))
    if as_json:
        _emit_json(result)
    else:
        stdout.print(
            f"{len(result['task_ids'])} feedback tasks for {classifier} (version {result['version']}):"
        )
        for task_id in result["task_ids"]:
            stdout.print(task_id)


def _with_tagloop(action: Callable[[Tagloop], T]) -> T:
    with _tagloop() as tagloop:
        return action(tagloop)


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
def keys_revoke(
    access_key_id: Annotated[str, typer.Argument(help="Access key id, or any unique start of it.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke an API key (every server refuses it within seconds)."""
    _run_and_print(lambda t: t.keys.revoke(t.keys.resolve(access_key_id)), as_json, KEY_COLUMNS)


users_app = typer.Typer(help="People of the web UI (roles reviewer, moderator, admin).", no_args_is_help=True)
app.add_typer(users_app, name="users")
USER_COLUMNS = ("name", "role", "disabled", "created_at", "last_login_at", "locked_until")
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]


def _new_password(from_stdin: bool) -> str:
    """The password from stdin's first line, or asked twice on the terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidRequest("no terminal to ask for the password: pass --password-stdin, send it on stdin")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and . _ @ - (1-63).")],
    role: Annotated[str, typer.Option(help="reviewer, moderator or admin.")] = "reviewer",
    password_stdin: PasswordStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Create a web UI user (asks for the password on a terminal)."""
    password = _guard(lambda: _new_password(password_stdin))
    _run_and_print(lambda t: t.users.create(name, role, password), as_json, USER_COLUMNS)


@users_app.command("list")
def users_list(as_json: JsonOption = False) -> None:
    """List web UI users (never their password hashes)."""
    _run_and_print(lambda t: t.users.list(), as_json, USER_COLUMNS)


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Disable a user: their sessions end at once and they cannot log in."""
    _run_and_print(lambda t: t.users.disable(name), as_json, USER_COLUMNS)


@users_app.command("enable")
def users_enable(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Enable a disabled user again (and lift a login lock)."""
    _run_and_print(lambda t: t.users.enable(name), as_json, USER_COLUMNS)


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument()], password_stdin: PasswordStdin = False, as_json: JsonOption = False
) -> None:
    """Set a user's password (ends their sessions, lifts a login lock)."""
    password = _guard(lambda: _new_password(password_stdin))
    _run_and_print(lambda t: t.users.set_password(name, password), as_json, USER_COLUMNS)


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
    from tagloop.demo import (
        DEMO_ROUTING,
        ensure_demo,
        ensure_demo_review,
        ensure_first_admin_key,
        ensure_first_admin_user,
    )

    if no_auth:
        State.overrides["auth"] = False
    settings = _guard(_settings)
    if not settings.auth:  # --no-auth and TAGLOOP_AUTH=false alike: loopback only
        _guard(lambda: check_bind(host))
    _guard(lambda: _check_address(host, port, workers))

    def prepare() -> None:
        """Migrate the embedded DB (or check the schema) once, before server processes start."""
        with _tagloop() as tagloop:
            tagloop.replay_review_journal()  # routed tasks of a server killed before their commit
            result = ensure_demo(tagloop) if with_demo else None
            if result:
                stderr.print(f"demo classifier {result['classifier']} {result['version']} ready")
            if tagloop.database.is_embedded and tagloop.endpoints.list() == [] and result:
                _deployed(tagloop, tagloop.endpoints.create(result["classifier"], result["classifier"]))
                queued = ensure_demo_review(tagloop, result["classifier"])
                stderr.print(
                    f"endpoint {result['classifier']} serves it; it routes predictions scored below "
                    f"{DEMO_ROUTING.threshold} (and 5 % of the others) to review: {queued} of its "
                    "test tickets wait in the review queue"
                )
            embedded = tagloop.database.is_embedded
            created = ensure_first_admin_key(tagloop) if embedded and settings.auth else None
            if created:
                _announce_admin_key(created, host, port)
            user = ensure_first_admin_user(tagloop, save=not sys.stderr.isatty())
            if user:
                _announce_admin_user(user, host, port)
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


def _check_address(host: str, port: int, workers: int) -> None:
    """Refuse, in one line, what uvicorn would fail on after start-up with a log and a
    traceback: a port out of range, a host that does not resolve, an address in use."""
    if not 1 <= port <= 65535:
        raise InvalidRequest(f"--port must be between 1 and 65535, not {port}")
    if workers < 1:
        raise InvalidRequest(f"--workers must be 1 or more, not {workers}")
    try:
        addresses = {
            (family, address[:2])
            for family, _, _, _, address in socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        }
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigurationError(f"cannot listen on host {host!r}: {exc}") from exc
    for family, address in sorted(addresses):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as exc:
                where = f"[{address[0]}]:{port}" if family == socket.AF_INET6 else f"{address[0]}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    reason = "it is in use (another server is running there?)"
                else:
                    reason = exc.strerror or str(exc)
                raise ConfigurationError(
                    f"cannot listen on {where}: {reason}; choose another with --port (make run PORT=...)"
                ) from exc


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


def _announce_admin_user(created: dict[str, Any], host: str, port: int) -> None:
    """How to log in to the web UI as the first admin: a generated password is shown once on a
    terminal; when stderr is not one (a log file), only the 0600 file holding it is named."""
    import shlex

    where = f"[{host}]" if ":" in host else host
    if not created["generated"]:
        password = "the password in TAGLOOP_ADMIN_PASSWORD"
    elif "file" in created:
        password = f"the password in {shlex.quote(str(Path(created['file']).resolve()))} (mode 0600)"
    else:
        password = f"the password {created['password']} (shown only now)"
    stderr.print(
        f"created the web UI user {created['name']} (role admin): log in at http://{where}:{port}/login "
        f"with {password}; `tagloop users passwd {created['name']}` changes it",
        markup=False,
        highlight=False,
    )


# --- human review (review_app is defined above, with `review feedback`) ----------------------

TASK_COLUMNS = ("id", "status", "queue", "reason", "answered", "final_labels", "created_at", "text")
TaskArgument = Annotated[str, typer.Argument(help="A review task's id.")]


def _task_json(view: Any) -> dict[str, Any]:
    """A review task (``TaskView``) as JSON: datetimes in ISO 8601, enums as their values."""
    import dataclasses
    from datetime import datetime
    from enum import Enum

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    return {key: plain(value) for key, value in dataclasses.asdict(view).items()}


def _task_row(task: dict[str, Any]) -> dict[str, Any]:
    return task | {
        "answered": f"{task['answered']}/{task['required']}",
        "final_labels": ",".join(task["final_labels"]) if task["final_labels"] is not None else None,
        "created_at": task["created_at"][:19],
        "text": _one_line(task["text"])[:60],
    }


@review_app.command("list")
def review_list(
    classifier: Annotated[str, typer.Argument()],
    status: Annotated[
        str | None, typer.Option(help="InProgress, Completed, Stopped, Stopping or Failed.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="review or moderate.")] = None,
    reason: Annotated[
        str | None, typer.Option(help="low_confidence, margin, audit, label, feedback...")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most tasks shown (newest first), 1-1000.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """A classifier's review tasks, newest first."""

    def run() -> list[dict[str, Any]]:
        with _tagloop() as tagloop:
            views = tagloop.review.list(
                classifier=classifier, status=status, queue=queue, reason=reason, limit=limit
            )
            return [_task_json(view) for view in views]

    tasks = _guard(run)
    if as_json:
        _emit_json(tasks)
        return
    table = Table()
    for column in TASK_COLUMNS:
        if column == "id":
            _id_column(table, column)
        else:
            table.add_column(column, overflow="fold")
    for task in tasks:
        row = _task_row(task)
        table.add_row(*(str(row[column]) if row[column] is not None else "-" for column in TASK_COLUMNS))
    _print_table(table)


def _show_task(task: dict[str, Any]) -> None:
    row = _task_row(task)
    for key in ("id", "classifier", "endpoint", "status", "queue", "reason", "answered", "final_labels"):
        stdout.print(f"{key}: {row[key] if row[key] is not None else '-'}", markup=False, highlight=False)
    if task["consolidation"]:
        decided = f" by {task['decided_by']}" if task["decided_by"] else ""
        stdout.print(f"consolidation: {task['consolidation']}{decided}", markup=False, highlight=False)
    prediction = task["prediction"] or {}
    scored = zip(prediction.get("labels") or [], prediction.get("scores") or [], strict=False)
    shown = ", ".join(f"{label} {score:.3f}" for label, score in scored)
    stdout.print(f"prediction: {shown or '-'}", markup=False, highlight=False)
    stdout.print(f"choices: {', '.join(task['choices'])}", markup=False, highlight=False)
    stdout.print(f"text: {task['text']}", markup=False, highlight=False)
    if not task["answers"]:
        stdout.print("answers: none", markup=False, highlight=False)
        return
    table = Table(title="answers")
    for column in ("reviewer", "status", "labels", "accepted", "seconds", "answered_at"):
        table.add_column(column, overflow="fold")
    for answer in task["answers"]:
        table.add_row(
            answer["reviewer"],
            answer["status"],
            ",".join(answer["labels"]) if answer["labels"] is not None else "-",
            "-" if answer["accepted"] is None else str(answer["accepted"]).lower(),
            f"{answer['seconds']:.1f}" if answer["seconds"] is not None else "-",
            (answer["answered_at"] or "-")[:19],
        )
    _print_table(table)


def _task_command(action: Callable[[Tagloop], Any], as_json: bool) -> None:
    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return _task_json(action(tagloop))

    task = _guard(run)
    if as_json:
        _emit_json(task)
    else:
        _show_task(task)


@review_app.command("show")
def review_show(task_id: TaskArgument, as_json: JsonOption = False) -> None:
    """One review task with every reviewer's answer."""
    _task_command(lambda tagloop: tagloop.review.get(task_id, with_answers=True), as_json)


@review_app.command("stats")
def review_stats(
    classifier: Annotated[str | None, typer.Argument()] = None,
    reviewer: Annotated[
        str | None, typer.Option(help="Also count this reviewer's answers (a user or access key id).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Tasks waiting in the review and moderate queues (of one classifier, or all)."""
    import dataclasses

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return dataclasses.asdict(tagloop.review.stats(reviewer, classifier))

    stats = _guard(run)
    if as_json:
        _emit_json(stats)
        return
    columns = ("pending", "moderate", *(("mine_today", "mine_total") if reviewer else ()))
    _print_rows([stats], columns)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@review_app.command("agreement")
def review_agreement(classifier: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """How much the classifier's reviewers agree, overall, per label and per reviewer."""

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return tagloop.review.agreement(classifier)

    found = _guard(run)
    if as_json:
        _emit_json(found)
        return
    summary = Table(title=f"agreement of {classifier}'s reviewers")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    for key in ("tasks", "tasks_with_several_answers", "answers", "completed"):
        summary.add_row(key, str(found[key]))
    for key in ("fleiss_kappa", "krippendorff_alpha", "pair_agreement"):
        summary.add_row(key, _figure(found[key]))
    _print_table(summary)
    labels = Table(title="per label (Krippendorff's alpha, chose it: yes/no)")
    labels.add_column("label")
    labels.add_column("alpha", justify="right")
    for label, alpha in found["labels"].items():
        labels.add_row(label, _figure(alpha))
    _print_table(labels)
    reviewers = Table(title="per reviewer (agreement with the final labels)")
    _id_column(reviewers, "reviewer")
    for column in ("answers", "agreed", "share"):
        reviewers.add_column(column, justify="right")
    for name, tally in found["reviewers"].items():
        reviewers.add_row(name, str(tally["answers"]), str(tally["agreed"]), _figure(tally["share"]))
    _print_table(reviewers)
    if found.get("reliability"):
        title = f"per reviewer (estimated accuracy, Dawid-Skene over {found['reliability_tasks']} tasks)"
        reliability = Table(title=title)
        _id_column(reliability, "reviewer")
        for column in ("answers", "accuracy"):
            reliability.add_column(column, justify="right")
        for name, estimate in found["reliability"].items():
            reliability.add_row(name, str(estimate["answers"]), _figure(estimate["accuracy"]))
        _print_table(reliability)


@review_app.command("export")
def review_export(
    classifier: Annotated[str, typer.Argument()],
    format: Annotated[str, typer.Option("--format", help="comprehend-csv or jsonl.")] = "comprehend-csv",
    output: Annotated[
        str | None, typer.Option(help="File to write (complete or not at all); default: stdout.")
    ] = None,
) -> None:
    """Write the classifier's verified documents (review answers, feedback) as training data."""
    from tagloop.services.verified import export_verified

    def run() -> int:
        with _tagloop() as tagloop:
            if output is None:
                return export_verified(tagloop.database, classifier, sys.stdout, format)
            with _output_file(output) as handle:
                return export_verified(tagloop.database, classifier, handle, format)

    count = _guard(run)
    stderr.print(f"{count:,} verified documents", markup=False, highlight=False)


@review_app.command("moderate")
def review_moderate(
    task_id: TaskArgument,
    label: Annotated[list[str], typer.Option("--label", help="A final label (repeat for multi-label).")],
    moderator: Annotated[
        str | None, typer.Option(help="Recorded as the decider; default: your login.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Decide a task's final labels (a tie, feedback, or overruling a majority)."""
    import getpass

    who = moderator or f"cli:{getpass.getuser()}"
    _task_command(lambda tagloop: tagloop.review.moderate(task_id, who, label), as_json)


@review_app.command("stop")
def review_stop(task_id: TaskArgument, as_json: JsonOption = False) -> None:
    """Stop a task in progress: it leaves the queues."""
    _task_command(lambda tagloop: tagloop.review.stop(task_id), as_json)


# ---- the learning loop (issue 14, loop-core): iterate, iterations, promote, rollback, loop ------

ITERATION_COLUMNS = ("iteration", "status", "trigger", "champion", "challenger", "decision", "reason")


def _loop_figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _iteration_lines(result: dict[str, Any]) -> None:
    metric = (result.get("rule") or {}).get("metric", "F1Score")
    champion = (result["metrics"].get("champion") or {}).get(metric)
    challenger = (result["metrics"].get("challenger") or {}).get(metric)
    stdout.print(
        f"iteration {result['iteration']} of {result['classifier']}: {result['status']}"
        + (f", {result['decision']}" if result.get("decision") else ""),
        markup=False,
        highlight=False,
    )
    stdout.print(
        f"champion {result['champion'] or '-'} {metric} {_loop_figure(champion)}; "
        f"challenger {result['challenger'] or '-'} {metric} {_loop_figure(challenger)}",
        markup=False,
        highlight=False,
    )
    if result.get("reason") or result.get("message"):
        stdout.print(result.get("reason") or result.get("message"), markup=False, highlight=False)


@app.command()
def iterate(
    classifier: Annotated[str, typer.Argument()],
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Queue the iteration's job and return at once.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run an iteration of CLASSIFIER's loop: train a challenger on all verified training
    data, evaluate it and the champion on the same frozen test set, promote by the loop's rule."""

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            if no_wait:
                return tagloop.iterations.start(classifier)
            with _progress() as progress:
                return tagloop.iterations.run(classifier, progress)

    result = _guard(run)
    if as_json:
        _emit_json(result)
    else:
        _iteration_lines(result)
    if result["status"] == "FAILED":
        stderr.print(f"error: iteration {result['iteration']} failed: {result['message']}", markup=False)
        raise typer.Exit(1)


@app.command()
def iterations(
    classifier: Annotated[str, typer.Argument()],
    iteration: Annotated[str | None, typer.Argument(help="Show one iteration (name or number).")] = None,
    limit: Annotated[int, typer.Option(help="Iterations listed, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List CLASSIFIER's iterations, or show one with its figures."""

    def run() -> Any:
        with _tagloop() as tagloop:
            if iteration is not None:
                return tagloop.iterations.get(classifier, iteration)
            return tagloop.iterations.list(classifier, limit)

    result = _guard(run)
    if as_json:
        _emit_json(result)
    elif iteration is not None:
        _iteration_lines(result)
        table = Table("label", "champion F1", "challenger F1", "delta")
        for label, figures in (result.get("per_label") or {}).items():
            cells = [figures.get(key) for key in ("champion", "challenger", "delta")]
            table.add_row(
                label,
                *("-" if value is None else f"{value:.4f}" for value in cells[:2]),
                "-" if cells[2] is None else f"{cells[2]:+.4f}",
            )
        _print_table(table)
    else:
        _print_rows(result, ITERATION_COLUMNS)


@versions_app.command("promote")
def versions_promote(
    classifier: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
    as_json: JsonOption = False,
) -> None:
    """Make VERSION the champion: every endpoint that follows CLASSIFIER serves it within a second."""
    _promotion(lambda tagloop: tagloop.loops.promote(classifier, version), as_json)


@versions_app.command("rollback")
def versions_rollback(
    classifier: Annotated[str, typer.Argument()],
    to: Annotated[str | None, typer.Option("--to", help="Version; default: the champion before.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Promote the champion before the current one again (or --to VERSION)."""
    _promotion(lambda tagloop: tagloop.loops.rollback(classifier, to), as_json)


def _promotion(action: Callable[[Tagloop], dict[str, Any]], as_json: bool) -> None:
    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            return action(tagloop)

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    moved = ", ".join(result["endpoints"]) or "no endpoint"
    if result["changed"]:
        stdout.print(
            f"{result['classifier']}: champion {result['previous'] or '-'} → {result['champion']}; "
            f"moved {moved}",
            markup=False,
            highlight=False,
        )
    else:
        stdout.print(f"{result['classifier']}: {result['champion']} is the champion already", markup=False)


loop_app = typer.Typer(help="A classifier's learning loop: its champion and settings.", no_args_is_help=True)
app.add_typer(loop_app, name="loop")


def _print_loop(result: dict[str, Any]) -> None:
    rows = [
        ("champion", result["champion"]),
        ("following endpoints", ", ".join(result["following_endpoints"])),
    ]
    rows += [(key, value) for key, value in result["settings"].items()]
    rows += [
        ("verified documents", result["verified_documents"]),
        ("next scheduled run", result["next_run_at"]),
        ("latest iteration", result["latest_iteration"]),
    ]
    table = Table("setting", "value", title=f"loop of {result['classifier']}")
    for key, value in rows:
        table.add_row(key, "-" if value in (None, "") else str(value))
    _print_table(table)


@loop_app.command("show")
def loop_show(classifier: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Show CLASSIFIER's champion and loop settings."""
    result = _guard(lambda: _with_tagloop(lambda tagloop: tagloop.loops.settings(classifier)))
    _emit_json(result) if as_json else _print_loop(result)


def _optional_int(name: str, value: str | None) -> tuple[bool, int | None]:
    if value is None:
        return False, None
    if value.strip().lower() in UNSET:
        return True, None
    try:
        return True, int(value)
    except ValueError:
        raise InvalidRequest(f"{name}: expected a whole number or 'off', got {value!r}") from None


@loop_app.command("set")
def loop_set(
    classifier: Annotated[str, typer.Argument()],
    metric: Annotated[str | None, typer.Option(help="Metric to improve (F1Score = macro-F1).")] = None,
    min_gain: Annotated[float | None, typer.Option(help="Promote only if it improves by this much.")] = None,
    max_label_drop: Annotated[
        float | None, typer.Option(help="…and no label's F1 falls by more than this.")
    ] = None,
    promote: Annotated[str | None, typer.Option(help="auto, or manual (decide, move nothing).")] = None,
    test_share: Annotated[
        float | None, typer.Option(help="Share of verified documents held out as the frozen test set.")
    ] = None,
    after_verified: Annotated[
        str | None, typer.Option(help="Iterate after this many new verified documents ('off': never).")
    ] = None,
    every: Annotated[str | None, typer.Option(help="Iterate every this many seconds ('off': never).")] = None,
    refill_below: Annotated[
        str | None, typer.Option(help="Refill the review queue when fewer tasks wait ('off').")
    ] = None,
    refill_strategy: Annotated[str | None, typer.Option(help="Query strategy of refills.")] = None,
    refill_count: Annotated[int | None, typer.Option(help="Documents per refill.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change CLASSIFIER's loop settings (the others stay)."""

    def run() -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name, value in (
            ("metric", metric),
            ("min_gain", min_gain),
            ("max_label_drop", max_label_drop),
            ("promote", promote),
            ("test_share", test_share),
            ("refill_strategy", refill_strategy),
            ("refill_count", refill_count),
        ):
            if value is not None:
                changes[name] = value
        for name, raw in (
            ("after_verified", after_verified),
            ("every_seconds", every),
            ("refill_below", refill_below),
        ):
            given, parsed = _optional_int(name, raw)
            if given:
                changes[name] = parsed
        if not changes:
            raise InvalidRequest("nothing to change: give at least one setting (see --help)")
        return _with_tagloop(lambda tagloop: tagloop.loops.configure(classifier, changes))

    result = _guard(run)
    _emit_json(result) if as_json else _print_loop(result)


# --- the unlabelled pool and active-learning picks (issue 14, loop-pool) ------------------------

pool_app = typer.Typer(help="The unlabelled pool active learning picks from.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")
POOL_COLUMNS = ("id", "origin", "labels", "task_id", "task_status", "created_at", "text")


def _pool_figures(counts: dict[str, Any]) -> str:
    origins = ", ".join(f"{count:,} {origin}" for origin, count in sorted(counts["by_origin"].items()))
    return f"{counts['waiting']:,} waiting, {counts['picked']:,} picked" + (
        f" ({origins})" if origins else ""
    )


@pool_app.command("add")
def pool_add(
    classifier: Annotated[str, typer.Argument(help="Classifier whose pool gets the texts.")],
    data: Annotated[str, typer.Argument(metavar="FILE", help="Path or fsspec URL of the texts.")],
    keep_labels: Annotated[
        bool, typer.Option("--keep-labels", help="Keep the file's labels as hints (default: dropped).")
    ] = False,
    format: Annotated[str | None, typer.Option(help="comprehend-csv, csv (header) or jsonl.")] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Column(s) holding the text, comma-separated (joined).")
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="Column holding the label(s).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a file's texts to CLASSIFIER's pool; texts already pooled or verified are skipped."""
    from tagloop.domain.formats import FormatSpec

    def run() -> dict[str, Any]:
        spec = FormatSpec.infer(data, format, _columns(text_column), label_column)
        with _tagloop() as tagloop:
            return tagloop.pool.add(classifier, data, spec, keep_labels=keep_labels)

    report = _guard(run)
    if as_json:
        _emit_json(report)
        return
    for row in report["rejected_rows"][:ROWS_LISTED]:
        stderr.print(f"  {data}:{row['line']}: {row['reason']}", markup=False, highlight=False)
    stdout.print(
        f"added {report['added']:,} to the pool of {classifier}; {report['duplicates']:,} "
        f"duplicate{'' if report['duplicates'] == 1 else 's'}, "
        f"{report['rejected']:,} rejected; pool: {_pool_figures(report['pool'])}",
        markup=False,
        highlight=False,
    )


@pool_app.command("count")
def pool_count(classifier: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """How many documents wait in CLASSIFIER's pool, and how many were picked for review."""
    counts = _guard(lambda: _with_tagloop(lambda t: t.pool.count(classifier)))
    if as_json:
        _emit_json(counts)
    else:
        stdout.print(f"{classifier}: {_pool_figures(counts)}", markup=False, highlight=False)


@pool_app.command("list")
def pool_list(
    classifier: Annotated[str, typer.Argument()],
    picked: Annotated[
        bool | None, typer.Option("--picked/--waiting", help="Only picked ones, or only waiting ones.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Documents per page (1-1000).")] = 100,
    after: Annotated[int | None, typer.Option(help="`next_after` of the page before.")] = None,
    as_json: JsonOption = False,
) -> None:
    """CLASSIFIER's pool documents, oldest first."""
    page = _guard(lambda: _with_tagloop(lambda t: t.pool.list(classifier, picked, limit, after)))
    if as_json:
        _emit_json(page)
        return
    rows = [
        doc
        | {
            "labels": ",".join(doc["labels"]) or None,
            "created_at": doc["created_at"][:19],
            "text": _one_line(doc["text"])[:60],
        }
        for doc in page["documents"]
    ]
    _print_rows(rows, POOL_COLUMNS)
    if page["next_after"] is not None:
        stderr.print(f"more: --after {page['next_after']}", markup=False, highlight=False)


@pool_app.command("clear")
def pool_clear(classifier: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Delete the documents waiting in CLASSIFIER's pool (picked ones stay with their tasks)."""
    result = _guard(lambda: _with_tagloop(lambda t: t.pool.clear(classifier)))
    if as_json:
        _emit_json(result)
    else:
        stdout.print(f"removed {result['removed']:,} from the pool of {classifier}", markup=False)


@pool_app.command("sample")
def pool_sample(as_json: JsonOption = False) -> None:
    """Feed the pools from the endpoints' logged predictions now (servers do it every loop tick)."""
    result = _guard(lambda: _with_tagloop(lambda t: t.pool.sample_predictions()))
    if as_json:
        _emit_json(result)
        return
    rows = [{"endpoint": name} | figures for name, figures in result["endpoints"].items()]
    _print_rows(rows, ("endpoint", "examined", "added", "duplicates"))


@endpoints_app.command("pool")
def endpoints_pool(
    name: Annotated[str, typer.Argument()],
    rate: Annotated[
        float, typer.Option(help="Share (0-1) of its logged predictions fed to the pool; 0: off.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Feed a share of an endpoint's logged predictions (with their text) to its classifier's pool."""
    _run_and_print(lambda t: t.pool.set_rate(name, rate), as_json, ("endpoint", "classifier", "pool_rate"))


@review_app.command("fill")
def review_fill(
    classifier: Annotated[str, typer.Argument()],
    strategy: Annotated[str, typer.Option(help="Query strategy, e.g. margin, entropy, coreset.")] = "margin",
    count: Annotated[int, typer.Option(help="Picks to put in the review queue.")] = 50,
    required: Annotated[int, typer.Option(help="Answers each task needs (1-3).")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Put the pool documents a query strategy finds most worth labelling in the review queue."""
    result = _guard(
        lambda: _with_tagloop(lambda t: t.review_fill.fill(classifier, strategy, count, required))
    )
    if as_json:
        _emit_json(result)
        return
    which = {"champion": "the champion", "endpoint": "served by an endpoint", "newest": "the newest trained"}
    stdout.print(
        f"{result['picked']:,} tasks for {classifier} ({result['strategy']}; pool scored by "
        f"{result['version']}, {which.get(result['model'], result['model'])}: "
        f"{result['pool_scored']:,} of {result['pool_waiting']:,} waiting documents)",
        markup=False,
        highlight=False,
    )


@review_app.command("refill")
def review_refill(as_json: JsonOption = False) -> None:
    """Top up the review queues of loops with a refill setting now (servers do it every loop tick)."""
    result = _guard(lambda: _with_tagloop(lambda t: t.review_fill.refill()))
    if as_json:
        _emit_json(result)
        return
    rows = [
        {"classifier": name, "picked": filled["picked"]} for name, filled in result["classifiers"].items()
    ]
    _print_rows(rows, ("classifier", "picked"))


# --- end of the unlabelled pool section -----------------------------------------------------------


# ---- simulate: learning curves of the query strategies (issue 14) -------------------------------
@app.command()
def simulate(
    data: Annotated[str, typer.Option("--data", help="Fully labelled training file (the simulated pool).")],
    test: Annotated[str, typer.Option("--test", help="Labelled test file.")],
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="Strategies to compare, comma-separated: random, least-confidence, margin, entropy, "
            "cluster-margin, badge, coreset, density.",
        ),
    ] = "margin,random",
    initial_per_label: Annotated[int, typer.Option(help="Documents per label known at the start.")] = 10,
    batch: Annotated[int, typer.Option(help="Documents labelled per step.")] = 50,
    budget: Annotated[int, typer.Option(help="Stop once this many documents are labelled.")] = 3000,
    repeats: Annotated[int, typer.Option(help="Runs per strategy (seeds seed, seed+1, ...).")] = 3,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    mode: Annotated[str, typer.Option(help="multi-class or multi-label.")] = "multi-class",
    delimiter: Annotated[str, typer.Option(help="Joins the labels of a multi-label row.")] = "|",
    format: Annotated[str | None, typer.Option(help="comprehend-csv, csv (header) or jsonl.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Column(s) holding the text.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Column holding the label(s).")] = None,
    plot: Annotated[
        str | None, typer.Option("--plot", metavar="FILE", help="Write the curves as SVG.")
    ] = None,
    self_training: Annotated[
        bool,
        typer.Option(
            "--self-training",
            help="Train with the recipe's self_training (multi-class): each fit also learns from the "
            "pool, labelled by the model's own predictions. Every strategy, random included, gets it.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Learning curves: how many labels each query strategy needs, simulated on labelled files
    with the real training and strategy code (nothing is stored)."""
    from tagloop.domain.limits import Limits
    from tagloop.domain.records import Mode
    from tagloop.services.simulation import SimulationPlan, curve_svg, read_labelled
    from tagloop.services.simulation import simulate as run_simulation

    def run() -> dict[str, Any]:
        names = tuple(part.strip() for part in strategy.split(",") if part.strip())
        plan = SimulationPlan(names, initial_per_label, batch, budget, repeats, seed)
        parsed = Mode.parse(mode)
        limits = Limits.from_settings(_settings())
        options = (delimiter, format, _columns(text_column), label_column)
        train_set, warnings = read_labelled(data, parsed, limits, *options)
        test_set, _ = read_labelled(test, parsed, limits, *options)
        _warn(warnings)
        with _progress() as progress:
            parameters = {"self_training": True} if self_training else None
            result = run_simulation(train_set, test_set, parsed, plan, parameters, progress=progress)
        if plot is not None:
            with _output_file(plot) as handle:
                handle.write(curve_svg(result, title=f"learning curves: {Path(data).name}"))
        return result

    result = _guard(run)
    if plot is not None:
        stderr.print(f"curves written to {plot}", markup=False, highlight=False)
    if as_json:
        _emit_json(result)
        return
    full = result["full"]
    stdout.print(
        f"full data: {full['labels']:,} labels, accuracy {full['accuracy']:.4f}, macro-F1 {full['f1']:.4f}"
    )
    targets = list(next(iter(result["strategies"].values()))["to_reach"])
    table = Table(title="labels needed to reach a share of the full-data accuracy (mean ± std over repeats)")
    table.add_column("strategy")
    for target in targets:
        table.add_column(target, justify="right")
    table.add_column("final labels", justify="right")
    table.add_column("final accuracy", justify="right")
    table.add_column("final macro-F1", justify="right")
    for name, figures in result["strategies"].items():
        cells = []
        for target in targets:
            reach = figures["to_reach"][target]
            if reach["mean"] is None:
                cells.append(f"not reached ({reach['reached']}/{reach['repeats']})")
            else:
                cells.append(f"{reach['mean']:,.0f} ± {reach['std']:,.0f}")
        final = figures["final"]
        table.add_row(
            name, *cells, f"{final['labels']:,.0f}", f"{final['accuracy']:.4f}", f"{final['f1']:.4f}"
        )
    _print_table(table)


# ---- monitoring (drift per endpoint and day: services/monitoring.py) -------------------------
MONITOR_TOP_LABELS = 3


def _psi(comparison: dict[str, Any]) -> str:
    return "-" if comparison["psi"] is None else f"{comparison['psi']:.3f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@app.command()
def monitor(
    endpoint: Annotated[str, typer.Argument(help="The endpoint whose logged predictions are read.")],
    days: Annotated[int, typer.Option(help="UTC days to show, today included (1-90).")] = 7,
    as_json: JsonOption = False,
) -> None:
    """Drift and production figures of an endpoint per UTC day: predicted labels and best
    scores against the training data (PSI) and the day before, share routed to review,
    reviewers' agreement with the model, and the drift flag."""
    from rich.text import Text

    found = _guard(lambda: _with_tagloop(lambda tagloop: tagloop.monitoring.report(endpoint, days)))
    if as_json:
        _emit_json(found)
        return
    reference = found["reference"]
    about = (
        f"{found['endpoint']}: classifier {found['classifier']}, version {found['version']}; "
        f"drift when a day of {found['min_count']:,}+ predictions has PSI >= {found['psi_threshold']} "
        "against the training data"
    )
    stdout.print(about, markup=False, highlight=False)
    if reference is None:
        stdout.print("no reference: the serving version's model could not be read", markup=False)
    else:
        stdout.print(
            f"reference: {reference['training_documents']:,} training documents, best scores of "
            f"{reference['test_documents']:,} test documents",
            markup=False,
            highlight=False,
        )
    table = Table(title="PSI: labels / scores")
    for column in ("day", "predictions", "top labels", "vs training", "vs day before", "routed", "agreement"):
        table.add_column(column, justify="left" if column in ("day", "top labels") else "right")
    table.add_column("drift")
    for day in found["days"]:
        count = day["predictions"]
        top = ", ".join(
            f"{label} {100 * n / count:.0f}%" for label, n in list(day["labels"].items())[:MONITOR_TOP_LABELS]
        )
        agreement = "-" if day["agreement"] is None else f"{_share(day['agreement'])} of {day['answers']}"
        flag = "DRIFT" + (" (event)" if day["event"] else "") if day["drift"] else ""
        table.add_row(
            day["day"],
            f"{count:,}",
            Text(top or "-"),  # labels are the user's text: never read as markup
            f"{_psi(day['vs_training']['labels'])} / {_psi(day['vs_training']['scores'])}",
            f"{_psi(day['vs_previous']['labels'])} / {_psi(day['vs_previous']['scores'])}",
            _share(day["routed_share"]),
            agreement,
            Text(flag, style="bold red") if flag else Text(""),
        )
    _print_table(table)


# ---- report (issue 16, report) ----------------------------------------------------------
REPORT_MISTAKES = 5  # the text report lists this many most confident mistakes
REPORT_FEATURES = 5  # and this many strongest features per label


@app.command()
def report(
    classifier: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Option(help="Version name; default: newest trained.")] = None,
    compare: Annotated[
        str | None,
        typer.Option("--compare", metavar="V2", help="A second version, shown side by side with the first."),
    ] = None,
    html: Annotated[
        str | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Write the report as one self-contained HTML file (inline SVG plots, CSS; opens offline).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A trained version's report: metrics, per-label figures, confusion matrix, reliability,
    scores, most confident mistakes, strongest features, the loop's iterations; with --html as
    a file to share (plots included), with --compare V2 two versions side by side."""

    def run() -> tuple[Any, Any]:
        with _tagloop() as tagloop:
            first = tagloop.reports.version_report(classifier, version)
            second = None
            if compare is not None:
                if compare == first.version:
                    raise InvalidRequest(f"--compare names version {compare}, the one reported: give another")
                second = tagloop.reports.version_report(classifier, compare)
        if html is not None:
            from tagloop.web.report_file import html_report

            document = html_report(first, second)
            with _output_file(html) as handle:
                handle.write(document)
        return first, second

    first, second = _guard(run)
    if html is not None:
        stderr.print(f"report written to {html}", markup=False, highlight=False)
    if as_json:
        _emit_json(first.as_dict() if second is None else [first.as_dict(), second.as_dict()])
        return
    if html is not None:
        return
    for found in (first, second):
        if found is not None:
            _text_report(found)
    stderr.print("plots: add --html FILE", markup=False, highlight=False)


CONFUSED_PAIRS = 5  # the text output lists this many most frequent confusions


def _most_confused(labels: list[str], matrix: list[list[int]]) -> None:
    """The off-diagonal cells with most documents: what the matrix says first, in words (and
    the only view of them when the matrix shows a subset of many labels)."""
    pairs = sorted(
        (
            (matrix[i][j], i, j)
            for i in range(len(labels))
            for j in range(len(labels))
            if i != j and matrix[i][j]
        ),
        key=lambda cell: (-cell[0], cell[1], cell[2]),
    )[:CONFUSED_PAIRS]
    if not pairs:
        return
    table = Table(title="most often confused")
    table.add_column("true label", overflow="fold")
    table.add_column("predicted as", overflow="fold")
    table.add_column("documents", justify="right")
    table.add_column("of the true label's", justify="right")
    for count, i, j in pairs:
        total = sum(matrix[i])
        table.add_row(labels[i], labels[j], f"{count:,}", f"{100 * count / total:.1f}%" if total else "-")
    _print_table(table)


def _text_report(found: Any) -> None:
    """A version's report as text: the version's details, then what only the report adds."""
    from rich.text import Text

    _version_details(found.summary)
    for note in found.notes:
        stdout.print(f"note: {note}", markup=False, highlight=False)
    calibration = found.as_dict()["calibration"]
    if calibration and calibration["expected_calibration_error"] is not None:
        stdout.print(
            f"expected calibration error: {calibration['expected_calibration_error']:.4f} "
            "(mean gap between score and share right, over 10 score bins)",
            markup=False,
            highlight=False,
        )
    if found.misclassified:
        table = Table(title=f"most confident mistakes ({REPORT_MISTAKES} of the test set's)")
        table.add_column("document", justify="right")
        table.add_column("text", overflow="fold", ratio=3)
        table.add_column("true")
        table.add_column("predicted (score)")
        for doc in found.misclassified[:REPORT_MISTAKES]:
            best = (
                f"{', '.join(doc.predicted)} ({doc.scores[0][1]:.3f})"
                if doc.scores
                else ", ".join(doc.predicted)
            )
            table.add_row(
                str(doc.document_id),
                Text(_one_line(doc.text or "(deleted)")),
                Text(", ".join(doc.gold)),
                Text(best),
            )
        _print_table(table)
    if found.features:
        table = Table(title="strongest features per label")
        table.add_column("label", overflow="fold")
        table.add_column("features (weight)", overflow="fold")
        for label, terms in found.features.items():
            shown = ", ".join(f"{term} ({weight:.2f})" for term, weight in terms[:REPORT_FEATURES])
            table.add_row(Text(label), Text(shown or "-"))
        _print_table(table)


# ---- notifications (issue 15, notify) ----------------------------------------------------------
notify_app = typer.Typer(
    help="Notifications: webhooks, e-mail and apprise channels; the delivery log.", no_args_is_help=True
)
app.add_typer(notify_app, name="notify")
notify_add_app = typer.Typer(help="Add a channel: webhook, email or apprise.", no_args_is_help=True)
notify_app.add_typer(notify_add_app, name="add")
CHANNEL_COLUMNS = ("name", "kind", "target", "events", "classifier", "enabled", "last")
DELIVERY_COLUMNS = (
    "id",
    "channel",
    "kind",
    "status",
    "attempts",
    "response_status",
    "next_attempt_at",
    "error",
    "title",
)
EventOption = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        help="An event kind it hears (repeatable; default: all), e.g. training.completed or training.*.",
    ),
]
ChannelClassifierOption = Annotated[
    str | None, typer.Option("--classifier", help="Only the events of this classifier.")
]


def _channel_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shown = []
    for row in rows:
        last = row.get("last_delivery")
        shown.append(
            row
            | {
                "events": ",".join(row["events"]),
                "last": f"{last['status']} {last['created_at'][:19]}" if last else None,
            }
        )
    return shown


def _add_channel(
    kind: str,
    name: str,
    target: str,
    events: list[str] | None,
    classifier: str | None,
    as_json: bool,
    secret: str | None = None,
) -> None:
    result = _guard(
        lambda: _with_tagloop(lambda t: t.notify.add(name, kind, target, events or [], classifier, secret))
    )
    if as_json:
        _emit_json(result)
        return
    _print_rows(_channel_rows([result]), CHANNEL_COLUMNS[:-1])
    if "secret" in result:
        stdout.print(f"signing secret: {result['secret']}", markup=False, highlight=False)
        stderr.print(
            "the secret is shown only now: the receiver checks X-Tagloop-Signature with it "
            "(README: Notifications)"
        )


@notify_add_app.command("webhook")
def notify_add_webhook(
    name: Annotated[str, typer.Argument(help="Channel name: letters, digits, hyphens (1-63).")],
    url: Annotated[str, typer.Argument(help="http(s) URL the JSON body is POSTed to.")],
    events: EventOption = None,
    classifier: ChannelClassifierOption = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the signing secret from stdin (default: generated).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """A webhook: each event is POSTed as JSON, signed with HMAC-SHA256 (header
    X-Tagloop-Signature: sha256=HMAC(secret, "<X-Tagloop-Timestamp>.<body>"))."""
    secret = sys.stdin.readline().strip() if secret_stdin else None
    _add_channel("webhook", name, url, events, classifier, as_json, secret)


@notify_add_app.command("email")
def notify_add_email(
    name: Annotated[str, typer.Argument(help="Channel name: letters, digits, hyphens (1-63).")],
    addresses: Annotated[str, typer.Argument(help="Comma-separated addresses.")],
    events: EventOption = None,
    classifier: ChannelClassifierOption = None,
    as_json: JsonOption = False,
) -> None:
    """E-mail through TAGLOOP_SMTP_HOST (port, STARTTLS/SSL, user, password: settings)."""
    _add_channel("email", name, addresses, events, classifier, as_json)


@notify_add_app.command("apprise")
def notify_add_apprise(
    name: Annotated[str, typer.Argument(help="Channel name: letters, digits, hyphens (1-63).")],
    url: Annotated[str, typer.Argument(help="An apprise URL, e.g. tgram://TOKEN/CHAT or slack://T/B/C.")],
    events: EventOption = None,
    classifier: ChannelClassifierOption = None,
    as_json: JsonOption = False,
) -> None:
    """Any service apprise reaches (needs `pip install 'tagloop[apprise]'`); the URL, which
    holds its credentials, is stored encrypted."""
    _add_channel("apprise", name, url, events, classifier, as_json)


@notify_app.command("list")
def notify_list(as_json: JsonOption = False) -> None:
    """Channels, what they hear, and their last delivery."""
    result = _guard(lambda: _with_tagloop(lambda t: t.notify.list()))
    if as_json:
        _emit_json(result)
        return
    if not result:
        stderr.print("no channels yet: tagloop notify add webhook NAME URL (or email, apprise)")
        return
    _print_rows(_channel_rows(result), CHANNEL_COLUMNS)


@notify_app.command("remove")
def notify_remove(
    name: Annotated[str, typer.Argument(help="Channel name.")], as_json: JsonOption = False
) -> None:
    """Remove a channel and its delivery log."""
    _run_and_print(lambda t: t.notify.remove(name), as_json, ("name", "kind", "target", "removed"))


@notify_app.command("enable")
def notify_enable(
    name: Annotated[str, typer.Argument(help="Channel name.")], as_json: JsonOption = False
) -> None:
    """Resume a paused channel (it hears the events from now on)."""
    _run_and_print(lambda t: t.notify.set_enabled(name, True), as_json, CHANNEL_COLUMNS[:-1])


@notify_app.command("disable")
def notify_disable(
    name: Annotated[str, typer.Argument(help="Channel name.")], as_json: JsonOption = False
) -> None:
    """Pause a channel (events meanwhile are not sent to it)."""
    _run_and_print(lambda t: t.notify.set_enabled(name, False), as_json, CHANNEL_COLUMNS[:-1])


@notify_app.command("test")
def notify_test(
    name: Annotated[str, typer.Argument(help="Channel name.")], as_json: JsonOption = False
) -> None:
    """Send a test message now (one attempt); exit status 1 with the receiver's answer if it failed."""
    result = _guard(lambda: _with_tagloop(lambda t: t.notify.test(name)))
    if as_json:
        _emit_json(result)
    if result["status"] != "delivered":
        stderr.print(
            f"[red]error:[/red] test message to {name} failed: {result['error']}",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(EXIT_STATUS)
    if not as_json:
        answer = f" (HTTP {result['response_status']})" if result["response_status"] else ""
        stdout.print(f"test message delivered to {name}{answer}", markup=False, highlight=False)


@notify_app.command("deliveries")
def notify_deliveries(
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel's.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed deliveries.")] = False,
    status: Annotated[
        str | None, typer.Option(help="Only this status: pending, sending, delivered, failed.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Newest this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The delivery log, newest first: status, attempts, the receiver's answer, next attempt."""
    wanted = "failed" if failed else status
    _run_and_print(lambda t: t.notify.deliveries(channel, wanted, limit), as_json, DELIVERY_COLUMNS)


@notify_app.command("retry")
def notify_retry(
    name: Annotated[str, typer.Argument(help="Channel name.")], as_json: JsonOption = False
) -> None:
    """Queue a channel's failed deliveries again (sent by `serve`/`worker`, or `notify send`)."""
    _run_and_print(lambda t: t.notify.retry(name), as_json, ("channel", "requeued"))


@notify_app.command("send")
def notify_send(as_json: JsonOption = False) -> None:
    """Turn new events into deliveries and send the due ones now (what `serve` and `worker` do
    every TAGLOOP_LOOP_TICK_SECONDS)."""

    def run(tagloop: Tagloop) -> dict[str, Any]:
        queued = tagloop.notify.collect()
        attempts = tagloop.notify.send_due()
        return {"queued": queued, "attempts": attempts} | {"deliveries": tagloop.notify.refresh_counts()}

    result = _guard(lambda: _with_tagloop(run))
    if as_json:
        _emit_json(result)
        return
    counts = ", ".join(f"{count} {status}" for status, count in result["deliveries"].items())
    stdout.print(
        f"{result['queued']} deliveries queued, {result['attempts']} attempts made; log: {counts or 'empty'}",
        markup=False,
        highlight=False,
    )


# ---- inbox (issue 15, inbox) ----
inbox_app = typer.Typer(
    help="Inboxes: watched folders or S3 prefixes where a dropped file becomes a serving model.",
    no_args_is_help=True,
)
app.add_typer(inbox_app, name="inbox")
INBOX_STATES = ("seen", "claimed", "training", "deploying", "processed", "failed")


def _inbox_line(found: dict[str, Any]) -> str:
    counts = ", ".join(f"{n:,} {state}" for state, n in found["files"].items() if n)
    flags = "" if found["enabled"] else " (disabled)"
    return (
        f"{found['name']}{flags}: {found['url']} → {found['classifier']} "
        f"(train {found['train']}, deploy {found['deploy']}"
        + (f", endpoint {found['endpoint']}" if found["endpoint"] else "")
        + (f", profile {found['profile']}" if found["profile"] else "")
        + f"); files: {counts or 'none yet'}"
    )


def _inbox_files_table(found: dict[str, Any]) -> None:
    from rich.text import Text  # file names and errors are the user's text: never read as markup

    table = Table(title=f"inbox {found['name']}: newest files")
    for column in ("id", "file", "state", "version", "deployed", "endpoint", "moved to", "error"):
        table.add_column(column, overflow="fold")
    for file in found["recent_files"]:
        deployed = (file["report"] or {}).get("deployment") if file["state"] == "processed" else None
        table.add_row(
            str(file["id"]),
            Text(file["name"]),
            file["state"],
            file["version"] or "-",
            deployed or "-",
            file["endpoint"] or "-",
            Text(file["moved_to"] or "-"),
            Text(_one_line(file["error"] or "")[:120]),
        )
    _print_table(table)


@inbox_app.command("add")
def inbox_add(
    classifier: Annotated[str, typer.Argument(help="Classifier the files train (made if new).")],
    url: Annotated[str, typer.Argument(help="A folder, or an S3 prefix (s3://bucket/prefix/).")],
    profile: Annotated[str | None, typer.Option(help="Import profile reading each file.")] = None,
    name: Annotated[str | None, typer.Option(help="The inbox's name (default: the classifier's).")] = None,
    train: Annotated[
        str, typer.Option(help="replace: the file alone; append: the file plus the verified documents.")
    ] = "replace",
    deploy: Annotated[
        str,
        typer.Option(
            help="auto: create the endpoint if there is none, else promote by the loop's rule (or only "
            "if better); better: only if better on the held-out set; never."
        ),
    ] = "auto",
    endpoint: Annotated[
        str | None, typer.Option(help="Endpoint to create, or to move (default: the classifier's name).")
    ] = None,
    mode: Annotated[str, typer.Option(help="multi-class or multi-label (a new classifier).")] = "multi-class",
    as_json: JsonOption = False,
) -> None:
    """Watch URL: `serve` and `worker` pick up each complete file dropped there (size stable
    for TAGLOOP_INBOX_STABLE_SECONDS, or a `<name>.ready` marker beside it)."""
    from tagloop.domain.records import Mode

    def run() -> dict[str, Any]:
        where = url if "://" in url else str(Path(url).expanduser().resolve())
        with _tagloop() as tagloop:
            return tagloop.inbox.add(
                classifier, where, name, profile, train, deploy, endpoint, Mode.parse(mode)
            )

    found = _guard(run)
    if as_json:
        _emit_json(found)
    else:
        stdout.print(f"watching {_inbox_line(found)}", markup=False, highlight=False)


@inbox_app.command("list")
def inbox_list(as_json: JsonOption = False) -> None:
    """Every inbox with its files by state and its last error."""
    found = _guard(lambda: _with_tagloop(lambda t: t.inbox.list()))
    if as_json:
        _emit_json(found)
        return
    if not found:
        stdout.print("no inboxes yet: tagloop inbox add CLASSIFIER FOLDER-OR-S3-PREFIX")
    for inbox in found:
        stdout.print(_inbox_line(inbox), markup=False, highlight=False)
        if inbox["last_error"]:
            stdout.print(f"  last error: {_one_line(inbox['last_error'])}", markup=False, highlight=False)


@inbox_app.command("status")
def inbox_status(
    name: Annotated[str | None, typer.Argument(help="An inbox (default: every one).")] = None,
    limit: Annotated[int, typer.Option(help="Newest files shown per inbox (1-1000).")] = 20,
    state: Annotated[
        str | None, typer.Option(help=f"Only files in this state ({', '.join(INBOX_STATES)}).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The files an inbox saw: state, version, endpoint, where they went, the last error."""

    def run() -> list[dict[str, Any]]:
        with _tagloop() as tagloop:
            names = [name] if name is not None else [i["name"] for i in tagloop.inbox.list()]
            return [tagloop.inbox.status(n, limit, state) for n in names]

    found = _guard(run)
    if as_json:
        _emit_json(found[0] if name is not None else found)
        return
    for inbox in found:
        stdout.print(_inbox_line(inbox), markup=False, highlight=False)
        if inbox["last_error"]:
            stdout.print(f"last error: {_one_line(inbox['last_error'])}", markup=False, highlight=False)
        if inbox["recent_files"]:
            _inbox_files_table(inbox)


@inbox_app.command("scan")
def inbox_scan(
    name: Annotated[str | None, typer.Argument(help="An inbox (default: every enabled one).")] = None,
    run_jobs: Annotated[
        bool, typer.Option("--run", help="Also process the picked-up files here (no worker needed).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Look at the inbox(es) once now: record new files, pick up the complete ones."""

    def run() -> dict[str, Any]:
        with _tagloop() as tagloop:
            found = tagloop.inbox.scan(name)
            if run_jobs:
                with _progress() as progress:
                    for inbox in found["inboxes"]:
                        for file in inbox["claimed"]:
                            progress(0.0, f"{inbox['inbox']}: {file}")
                    found["jobs_run"] = tagloop.queue.run_until_idle()
                found["files"] = [
                    file
                    for inbox in found["inboxes"]
                    for file in tagloop.inbox.status(inbox["inbox"], 50)["recent_files"]
                    if file["name"] in inbox["claimed"]
                ]
            return found

    found = _guard(run)
    if as_json:
        _emit_json(found)
    else:
        for inbox in found["inboxes"]:
            if inbox["error"]:
                stderr.print(f"{inbox['inbox']}: {inbox['error']}", markup=False, highlight=False)
                continue
            stdout.print(
                f"{inbox['inbox']}: picked up {', '.join(inbox['claimed']) or 'nothing'}"
                + (f"; waiting (not complete yet): {', '.join(inbox['seen'])}" if inbox["seen"] else ""),
                markup=False,
                highlight=False,
            )
        for file in found.get("files", []):
            outcome = file["moved_to"] or file["state"]
            detail = f": {file['error']}" if file["error"] else f" (version {file['version']})"
            stdout.print(f"  {file['name']} → {outcome}{detail}", markup=False, highlight=False)
    if any(inbox["error"] for inbox in found["inboxes"]) or any(
        file["state"] == "failed" for file in found.get("files", [])
    ):
        raise typer.Exit(EXIT_STATUS)


@inbox_app.command("remove")
def inbox_remove(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Stop watching (the folder and its files stay); refused while a file is in work."""
    found = _guard(lambda: _with_tagloop(lambda t: t.inbox.remove(name)))
    if as_json:
        _emit_json(found)
    else:
        stdout.print(f"removed inbox {name} (its folder is left as it is)", markup=False, highlight=False)


@inbox_app.command("enable")
def inbox_enable(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Watch the inbox again."""
    found = _guard(lambda: _with_tagloop(lambda t: t.inbox.set_enabled(name, True)))
    _emit_json(found) if as_json else stdout.print(_inbox_line(found), markup=False, highlight=False)


@inbox_app.command("disable")
def inbox_disable(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Stop picking up new files (files in work finish)."""
    found = _guard(lambda: _with_tagloop(lambda t: t.inbox.set_enabled(name, False)))
    _emit_json(found) if as_json else stdout.print(_inbox_line(found), markup=False, highlight=False)


# ---- profiles (issue 15, profiles) ----
profiles_app = typer.Typer(
    help="Import profiles: how a source (CSV, JSONL, archives, SQLite, a SQL query) becomes labelled rows.",
    no_args_is_help=True,
)
app.add_typer(profiles_app, name="profiles")
PROFILE_COLUMNS = ("name", "format", "reads", "label", "updated_at")


def _profile_spec(
    from_file: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The spec from a JSON file, with the flags given on top."""
    spec: dict[str, Any] = {}
    if from_file is not None:
        try:
            text = sys.stdin.read() if from_file == "-" else Path(from_file).read_text(encoding="utf-8")
            loaded = json.loads(text)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {from_file}: {exc.strerror or exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"{from_file}: not a JSON object ({exc})") from exc
        if not isinstance(loaded, dict):
            raise InvalidRequest(f"{from_file}: a profile is a JSON object")
        spec.update(loaded)
    spec.update({key: value for key, value in options.items() if value not in (None, [], ())})
    return spec


def _profile_row(view: dict[str, Any]) -> dict[str, Any]:
    spec = view["spec"]
    if spec.get("database_url"):
        reads = spec["database_url"]
    else:
        reads = "files" + (" with a query" if spec.get("query") else "")
        reads += f" (members {', '.join(spec['members'])})" if spec.get("members") else ""
    label = spec.get("label_column") or "-"
    if spec["label_from"] != "column":
        label = f"from {spec['label_from']}"
    return {"name": view["name"], "format": spec["format"], "reads": reads, "label": label} | {
        "updated_at": view["updated_at"][:19]
    }


@profiles_app.command("add")
def profiles_add(
    classifier: Annotated[str, typer.Argument(help="Classifier (created if new, with --mode).")],
    name: Annotated[str, typer.Argument(help="Profile name.")],
    from_file: Annotated[
        str | None, typer.Option("--from-file", metavar="FILE", help="The profile as JSON ('-': stdin).")
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(help="auto (by file name), comprehend-csv, csv, jsonl, lines, document, sqlite."),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="Column(s) holding the text, comma-separated (joined with --joiner).")
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="Column holding the label(s).")] = None,
    label_delimiter: Annotated[
        str | None, typer.Option(help="Joins several labels in the label column (multi-label).")
    ] = None,
    joiner: Annotated[str | None, typer.Option(help="Joins several text columns (default: a space).")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where", metavar="COLUMN=VALUE", help="Keep rows with this value (!=: drop; a|b: either)."
        ),
    ] = None,
    query: Annotated[
        str | None, typer.Option(help="SQL run on each SQLite file (or on --database-url): one SELECT.")
    ] = None,
    query_file: Annotated[str | None, typer.Option(metavar="FILE", help="The SQL query from a file.")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Read this database (SQLAlchemy URL) with --query instead of files.")
    ] = None,
    member: Annotated[
        list[str] | None, typer.Option("--member", metavar="GLOB", help="Archive members to read.")
    ] = None,
    label_from: Annotated[
        str | None, typer.Option(help="column (default), member (its file name) or folder (its folder).")
    ] = None,
    label_case: Annotated[
        str | None, typer.Option(help="upper (default), lower or keep: a label from a member name.")
    ] = None,
    label_map: Annotated[
        list[str] | None, typer.Option("--label-map", metavar="NAME=LABEL", help="Rename a member's label.")
    ] = None,
    mode: Annotated[str, typer.Option(help="The mode of a new classifier.")] = "multi-class",
    replace: Annotated[bool, typer.Option("--replace", help="Replace a profile of that name.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Save an import profile for CLASSIFIER (see README, Import profiles)."""
    from tagloop.domain.records import Mode

    def run() -> dict[str, Any]:
        sql = query
        if query_file is not None:
            try:
                sql = Path(query_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"cannot read {query_file}: {exc.strerror or exc}") from exc
        mapping: dict[str, str] = {}
        for item in label_map or []:
            key, sep, value = item.partition("=")
            if not sep or not key or not value:
                raise InvalidRequest(f"--label-map {item!r}: write NAME=LABEL")
            mapping[key] = value
        spec = _profile_spec(
            from_file,
            {
                "format": format,
                "text_columns": list(_columns(text_column)),
                "label_column": label_column,
                "label_delimiter": label_delimiter,
                "joiner": joiner,
                "filters": list(where or []),
                "query": sql,
                "database_url": database_url,
                "members": list(member or []),
                "label_from": label_from,
                "label_case": label_case,
                "label_map": mapping or None,
            },
        )
        with _tagloop() as tagloop:
            return tagloop.profiles.put(classifier, name, spec, replace=replace, mode=Mode.parse(mode))

    result = _guard(run)
    if as_json:
        _emit_json(result)
        return
    stdout.print(f"{'saved' if result['created'] else 'replaced'} profile {result['name']} of {classifier}")


@profiles_app.command("list")
def profiles_list(
    classifier: Annotated[str, typer.Argument(help="Classifier.")], as_json: JsonOption = False
) -> None:
    """The import profiles of CLASSIFIER."""
    found = _guard(lambda: _with_tagloop(lambda tagloop: tagloop.profiles.list(classifier)))
    if as_json:
        _emit_json(found)
        return
    if not found:
        stdout.print(f"{classifier} has no import profile: add one with `tagloop profiles add {classifier}`")
        return
    _print_rows([_profile_row(view) for view in found], PROFILE_COLUMNS)


@profiles_app.command("show")
def profiles_show(
    classifier: Annotated[str, typer.Argument(help="Classifier.")],
    name: Annotated[str, typer.Argument(help="Profile name.")],
    as_json: JsonOption = False,
) -> None:
    """One import profile, every field (a database password is never shown)."""
    from rich.text import Text

    view = _guard(lambda: _with_tagloop(lambda tagloop: tagloop.profiles.show(classifier, name)))
    if as_json:
        _emit_json(view)
        return
    stdout.print(f"profile {view['name']} of {view['classifier']} (updated {view['updated_at'][:19]})")
    for key, value in view["spec"].items():
        if value in (None, [], {}):
            continue
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
        stdout.print(Text(f"  {key}: {shown}"))


@profiles_app.command("delete")
def profiles_delete(
    classifier: Annotated[str, typer.Argument(help="Classifier.")],
    name: Annotated[str, typer.Argument(help="Profile name.")],
    as_json: JsonOption = False,
) -> None:
    """Delete an import profile (versions trained with it keep its spec in their parameters)."""
    result = _guard(lambda: _with_tagloop(lambda tagloop: tagloop.profiles.delete(classifier, name)))
    if as_json:
        _emit_json(result)
        return
    stdout.print(f"deleted profile {name} of {classifier}")


@profiles_app.command("try")
def profiles_try(
    classifier: Annotated[str, typer.Argument(help="Classifier.")],
    name: Annotated[str, typer.Argument(help="Profile name.")],
    source: Annotated[
        str | None, typer.Argument(help="File or archive to read (none for a profile reading a database).")
    ] = None,
    rows: Annotated[int, typer.Option(help="Rows to show.")] = 10,
    scan: Annotated[int, typer.Option(help="Rows to read at most.")] = 10_000,
    as_json: JsonOption = False,
) -> None:
    """Read SOURCE through the profile without importing it: sample rows, counts, labels, issues.
    Exit status 1 when a row would be rejected."""
    from rich.text import Text

    found = _guard(
        lambda: _with_tagloop(lambda tagloop: tagloop.profiles.preview(classifier, name, source, rows, scan))
    )
    if as_json:
        _emit_json(found)
    else:
        scope = "all" if found["complete"] else f"the first {found['rows_read']:,}"
        stdout.print(
            f"{scope} rows of {found['source']}: {found['kept']:,} kept, {found['rejected']:,} rejected, "
            f"{found['filtered']:,} dropped by filters"
        )
        for member in found["members"]:
            stdout.print(Text(f"  {member['name']}: {member['rows']:,} rows"))
        if found["label_counts"]:
            stdout.print(
                Text("labels: " + ", ".join(f"{label} ({n:,})" for label, n in found["label_counts"].items()))
            )
        if found["sample"]:
            table = Table(title="sample")
            table.add_column("line", justify="right")
            table.add_column("labels")
            table.add_column("text")
            for row in found["sample"]:
                table.add_row(str(row["line"]), Text(", ".join(row["labels"])), Text(row["text"]))
            _print_table(table)
        for issue in found["issues"]:
            where = f"{issue['member']}, " if issue["member"] else ""
            stderr.print(Text(f"  {where}line {issue['line']}: {issue['reason']}"))
        _warn(found["problems"] + found["warnings"])
    if found["rejected"] or found["problems"]:
        raise typer.Exit(EXIT_STATUS)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
