"""Classifying texts and evaluating a version against a labelled file."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tagloop.domain.formats import FormatSpec
from tagloop.domain.limits import Limits, over_limit, utf8_size_over
from tagloop.domain.metrics import evaluate, label_universe
from tagloop.domain.predictions import Prediction, ranked
from tagloop.domain.records import LabelledText, Mode
from tagloop.domain.validation import label_list
from tagloop.errors import InvalidRequest, LimitExceeded, TagloopError
from tagloop.recipes.base import TextModel, chunks, predict
from tagloop.services.catalog import resolve_version
from tagloop.services.datasets import DatasetReader, ReadOptions
from tagloop.services.model_cache import ModelCache
from tagloop.services.scoring import parallel_scorer
from tagloop.settings import Settings
from tagloop.storage.database import Database
from tagloop.storage.repositories import ClassifierRepository


class PredictionService:
    def __init__(self, database: Database, models: ModelCache, settings: Settings) -> None:
        self.database = database
        self.models = models
        self.settings = settings

    def model(self, classifier: str, version: str | None = None) -> tuple[str, TextModel]:
        """The version name and loaded model to use for ``classifier``."""
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            found = resolve_version(session, row, version)
        return found.name, self.models.get(found)

    def answer_top(self, model: TextModel, requested: int | None = None) -> int | None:
        """How many classes an API answer or batch-job line lists (None: all): ``requested``
        (0: all) or, for a multi-class model, the setting; a multi-label model lists every
        label it assigns."""
        if requested is not None:
            return requested or None
        if model.mode is Mode.MULTI_CLASS:
            return self.settings.classify_top_classes or None
        return None

    def text_problem(self, text: str) -> TagloopError | None:
        """Why ``text`` cannot be classified, or None."""
        if not text.strip():
            return InvalidRequest("empty text")
        size = utf8_size_over(text, self.settings.max_text_bytes)
        if size is not None:
            return LimitExceeded(
                over_limit(f"text is {size:,} bytes", self.settings.max_text_bytes, "max_text_bytes")
            )
        return None

    def classify(
        self,
        model: TextModel,
        texts: Iterable[str],
        top: int | None = None,
        chunk: int = 1_000,
        processes: int = 1,
    ) -> Iterator[Prediction]:
        """One prediction per text, in order, computed a chunk at a time; ``top`` limits the
        labels each lists (None: all).

        A text that cannot be classified (empty, too large) gets a prediction with its
        ``error`` in its place, so outputs stay aligned with inputs. With ``processes`` > 1,
        chunks are scored by forked worker processes (feature extraction is pure Python and
        holds the GIL); order is kept.
        """
        batches = ((batch, [self.text_problem(text) for text in batch]) for batch in chunks(texts, chunk))

        def valid(item: tuple[list[str], list[TagloopError | None]]) -> list[str]:
            batch, problems = item
            return [text for text, problem in zip(batch, problems, strict=True) if problem is None]

        labels, mode = model.labels, model.mode
        with parallel_scorer(model, processes) as score:
            for (_, problems), scores in score(batches, valid):
                picks = model.decide(scores) if len(scores) else []
                predictions = iter(ranked(labels, mode, scores, picks, top))
                for problem in problems:
                    if problem is None:
                        yield next(predictions)
                    else:
                        yield Prediction.failed(mode, problem)

    def evaluate(
        self,
        classifier: str,
        data: str,
        version: str | None = None,
        format: str | None = None,
        text_columns: tuple[str, ...] = (),
        label_column: str | None = None,
        misclassified: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Comprehend metrics of a trained version on a labelled file (nothing is stored).

        ``misclassified`` hears each document whose predicted labels are not its labels, in
        file order: its line, text, labels, the predicted labels and the scores of the labels
        concerned (predicted, true, and the best :data:`ERROR_SCORES`).
        """
        with self.database.reading() as session:
            row = ClassifierRepository(session).get(classifier)
            found = resolve_version(session, row, version)
            mode, delimiter = Mode(row.mode), row.label_delimiter
        model = self.models.get(found)
        spec = FormatSpec.infer(data, format, text_columns, label_column)
        limits = Limits.from_settings(self.settings)
        # the rule on documents per label is about training data: the warnings below are not
        reader = DatasetReader(data, ReadOptions(spec, mode, delimiter, limits, warn_rare_labels=False))
        gold: list[tuple[str, ...]] = []
        pending: deque[LabelledText] = deque()  # the documents of the chunk being scored

        def texts() -> Iterator[str]:
            for item in reader:
                gold.append(item.labels)
                if misclassified is not None:
                    pending.append(item)
                yield item.text

        labels = model.labels
        predicted: list[list[str]] = []
        for scores, picks in predict(model, texts()):
            chunk = [[labels[i] for i in doc] for doc in picks]
            predicted.extend(chunk)
            if misclassified is not None:
                documents = _take(pending, len(chunk))
                for row_scores, doc_picks, labelled in zip(scores.tolist(), chunk, documents, strict=True):
                    if set(doc_picks) != set(labelled.labels):
                        misclassified(_error_record(labels, row_scores, doc_picks, labelled))
        dataset = reader.finish()
        evaluation = evaluate(mode, label_universe(labels, gold), gold, predicted)
        warnings = list(dataset.warnings)
        unknown = sorted(set(dataset.label_counts) - set(labels))
        if unknown:
            warnings.append(
                f"labels the model was not trained on (it never predicts them): {label_list(unknown)}"
            )
        absent = [label for label in labels if label not in dataset.label_counts]
        if absent:
            warnings.append(
                f"labels of the model with no document in {data} (their recall is not measured): "
                + label_list(absent)
            )
        return {
            "classifier": classifier,
            "version": found.name,
            "metrics": evaluation.metrics,
            "per_label": evaluation.per_label,
            "confusion_matrix": evaluation.confusion_matrix,
            "documents": evaluation.documents,
            "warnings": warnings,
        }


ERROR_SCORES = 3  # best-scored labels listed with a misclassified document


def _take(queue: deque[LabelledText], count: int) -> list[LabelledText]:
    return [queue.popleft() for _ in range(count)]


def _error_record(
    labels: list[str], scores: list[float], predicted: list[str], labelled: LabelledText
) -> dict[str, Any]:
    best = sorted(range(len(labels)), key=lambda i: -scores[i])[:ERROR_SCORES]
    index = {label: i for i, label in enumerate(labels)}
    shown = dict.fromkeys(
        [*predicted, *(label for label in labelled.labels if label in index), *(labels[i] for i in best)]
    )
    return {
        "line": labelled.line,
        "text": labelled.text,
        "labels": list(labelled.labels),
        "predicted": predicted,
        "scores": {label: round(scores[index[label]], 6) for label in shown},
    }
