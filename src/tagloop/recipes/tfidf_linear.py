"""Default recipe: TF-IDF word n-grams + one-vs-rest linear SVMs + calibration.

Fitting runs the final model and the calibration hold-out models on a thread pool
(liblinear releases the GIL, so both cores work): one liblinear one-vs-rest fit per model
in multi-class mode, one binary fit per label and model in multi-label mode. Hold-out
models stop at a looser tolerance: their decisions only feed the calibration.

Scores are calibrated on documents the scoring model did not see: a stratified 20 %
hold-out (or 5-fold cross-fitting for small sets) gives out-of-sample decision values.

- multi-class: ``softmax(decision / T)`` with one temperature ``T`` fitted by minimum
  log-loss, so scores sum to 1 and the ranking (the predicted class) is the SVM's own;
- multi-label: per-label Platt scaling ``sigmoid(a·decision + b)`` (pooled over labels when
  a label has too few hold-out examples), and one decision threshold chosen to maximize
  micro-F1 on the hold-out; every document gets at least its best label.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from functools import cached_property, partial
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_softmax

from tagloop.domain.metrics import indicator
from tagloop.domain.records import Mode
from tagloop.domain.splitting import stratification_keys, stratified_holdout
from tagloop.domain.strategies import margin
from tagloop.errors import Stopped, TrainingFailed
from tagloop.recipes.base import Progress, pack
from tagloop.recipes.ngram_features import TOKEN_PATTERN, NgramFeatures

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

FORMAT_VERSION = 1
MIN_CALIBRATION_DOCS = 10
SMALL_SET = 2_000
MAX_SELF_TRAINING_ROUNDS = 5


@dataclass(frozen=True)
class TfidfLinearParams:
    ngram_max: int = 2
    min_df: int = 2
    sublinear_tf: bool = True
    C: float = 1.0
    calibration_fraction: float = 0.2
    seed: int = 0
    self_training: bool = False
    """Multi-class only, and only when the fit is given unlabelled rows (a learning loop's pool,
    see :func:`fit_linear`): refit the final model on the labelled rows plus the unlabelled rows
    labelled with the model's own predictions (self-training, Yarowsky 1995; "pseudo-labelling",
    Lee 2013), as the three settings below say. Helps most while few documents are labelled. The
    calibration stays the one fitted on the labelled documents' hold-out. Models saved before
    this option load with it off. ``tagloop train --self-training`` passes the classifier's pool
    texts (:func:`fit`'s ``unlabelled``), and a loop's challengers keep the champion's setting.

    The defaults below were chosen on 20ng learning curves (margin sampling from 10 documents a
    label, batch 50, seeds 0-2; labels needed to reach 95 % of the full-data accuracy): weight
    0.3, every pool document, one round: 1,083; share 0.7: 1,033; share 0.7 and weight 0.5:
    1,000; the same with two rounds: 917 (and each step fits in about the time of the first
    setting: the rounds fit fewer rows). Weight 1.0: 1,233, 0.1: 1,267 (one round, every
    document, batch 100); share 0.5: 1,083; keeping 70 % per guessed label instead of overall:
    1,183; pool guesses nudged to equal label shares: 1,083; C 0.5 or 2: 1,250 and 1,067."""
    self_training_weight: float = 0.5
    """How much one self-labelled (pool) document counts against one labelled document in the
    self-trained fit (its per-document ``C``). The model's own guesses are noisier than a
    person's answers: at full weight the pool's many easy documents outvote the few hard ones a
    person labelled. Models saved before this option load with the default (only fitting uses
    it)."""
    self_training_share: float = 0.7
    """The share of the unlabelled documents that join each self-trained fit: the ones the
    model of the round before is surest of (widest gap between its two best labels,
    :func:`surest_rows`). The least sure guesses are the likeliest to be wrong, and wrong labels
    teach the model its own mistakes. Models saved before this option load with the default."""
    self_training_rounds: int = 2
    """Rounds of self-training: each labels the pool with the model of the round before (the
    first with the model fitted on the labelled rows alone) and fits again; the second round's
    guesses come from a model that already learnt from the pool, so fewer are wrong. Models
    saved before this option load with the default."""

    def __post_init__(self) -> None:
        rounds = self.self_training_rounds
        if (
            isinstance(rounds, bool)
            or not isinstance(rounds, int)
            or not 1 <= rounds <= MAX_SELF_TRAINING_ROUNDS
        ):
            raise ValueError(
                "self_training_rounds: expected a whole number from 1 to "
                f"{MAX_SELF_TRAINING_ROUNDS}, got {rounds!r}"
            )
        for name in ("self_training_weight", "self_training_share"):
            share = getattr(self, name)
            if not 0.0 < share <= 1.0:  # NaN fails too
                raise ValueError(f"{name}: expected a share above 0 and at most 1, got {share!r}")

    def vectorizer(self, **extra: Any) -> TfidfVectorizer:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            sublinear_tf=self.sublinear_tf,
            ngram_range=(1, self.ngram_max),
            min_df=self.min_df,
            token_pattern=TOKEN_PATTERN,
            lowercase=True,
            dtype=np.float64,
            **extra,
        )


class TfidfLinearModel:
    recipe = "tfidf-linear-svm"

    def __init__(
        self,
        mode: Mode,
        labels: list[str],
        params: TfidfLinearParams,
        vocabulary: Mapping[str, int],
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        calibration: dict[str, Any],
        eager_features: bool = True,
    ) -> None:
        self.mode = mode
        self.labels = labels
        self.params = params
        self.vocabulary = vocabulary
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.calibration = calibration
        self._coef_t = np.ascontiguousarray(self.coef.T)  # (features × labels), float32, made once
        if eager_features:  # built with the model, off the first request's path
            _ = self.features

    @cached_property
    def features(self) -> NgramFeatures:
        """The feature transform of texts (a simulation, which scores ready feature rows, makes
        its models with ``eager_features=False`` and never builds it)."""
        return NgramFeatures(self.vocabulary, self.idf, self.params.sublinear_tf)

    @cached_property
    def vectorizer(self) -> TfidfVectorizer:
        """The fitted scikit-learn vectorizer these features equal (built on first use: serving
        never imports scikit-learn, which takes about a second)."""
        vectorizer = self.params.vectorizer(vocabulary=dict(self.vocabulary))
        vectorizer.idf_ = self.idf
        return vectorizer

    # ---- inference -------------------------------------------------------------------
    def decision(self, texts: Iterable[str]) -> np.ndarray:
        """Decision values, one row per text. Each row is computed on its own (a sparse row
        times the weights), so a text's scores never depend on the batch it came in."""
        batch = texts if isinstance(texts, list) else list(texts)
        features = self.features.transform(batch, np.float32)  # float32 like the weights: no copies
        return np.asarray(features @ self._coef_t, dtype=np.float64) + self.intercept

    def scores(self, texts: Iterable[str]) -> np.ndarray:
        return calibrate(self.mode, self.decision(texts), self.calibration)

    def scores_of_features(self, features: sp.spmatrix) -> np.ndarray:
        """:meth:`scores` of documents already turned into this model's feature rows."""
        decision = np.asarray(sp.csr_matrix(features, dtype=np.float32) @ self._coef_t, dtype=np.float64)
        return calibrate(self.mode, decision + self.intercept, self.calibration)

    def decide(self, scores: np.ndarray) -> list[list[int]]:
        order = np.argsort(-scores, axis=1, kind="stable")
        if self.mode is Mode.MULTI_CLASS:
            return [[int(row[0])] for row in order]
        threshold = float(self.calibration["threshold"])
        picks = []
        for row_scores, row_order in zip(scores, order, strict=True):
            chosen = [int(i) for i in row_order if row_scores[i] >= threshold]
            picks.append(chosen or [int(row_order[0])])
        return picks

    def describe(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "params": asdict(self.params),
            "features": len(self.vocabulary),
            "calibration": {k: v for k, v in self.calibration.items() if not isinstance(v, list)},
        }

    def top_features(self, count: int = 10) -> dict[str, list[tuple[str, float]]]:
        """Per label, the ``count`` n-grams with the largest positive weights: the words that
        push a document towards it most (a report's "strongest features"). Optional for
        recipes: callers check for the method."""
        terms = np.empty(len(self.vocabulary), dtype=object)
        for term, column in self.vocabulary.items():
            terms[column] = term
        result: dict[str, list[tuple[str, float]]] = {}
        for row, label in enumerate(self.labels):
            weights = self.coef[row]
            width = min(count, len(weights))
            if width == 0:
                result[label] = []
                continue
            best = np.argpartition(-weights, width - 1)[:width]
            best = best[np.lexsort((best, -weights[best]))]
            result[label] = [(str(terms[i]), float(weights[i])) for i in best if weights[i] > 0]
        return result

    # ---- serialization ---------------------------------------------------------------
    def to_bytes(self) -> bytes:
        vocabulary = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        meta = {
            "format": FORMAT_VERSION,
            "recipe": self.recipe,
            "mode": self.mode.value,
            "labels": self.labels,
            "params": asdict(self.params),
            "calibration": self.calibration,
            "vocabulary": vocabulary,
        }
        arrays: dict[str, np.ndarray] = {"coef": self.coef, "intercept": self.intercept, "idf": self.idf}
        return pack(meta, arrays)

    @classmethod
    def from_parts(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TfidfLinearModel:
        params = TfidfLinearParams(**meta["params"])
        vocabulary = {term: i for i, term in enumerate(meta["vocabulary"])}
        return cls(
            Mode(meta["mode"]),
            list(meta["labels"]),
            params,
            vocabulary,
            arrays["idf"],
            arrays["coef"],
            arrays["intercept"],
            meta["calibration"],
        )


# ---- calibration maps ------------------------------------------------------------------
def calibrate(mode: Mode, decision: np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    if mode is Mode.MULTI_CLASS:  # softmax, as scipy's computes it, without its per-call set-up
        scaled = decision / float(calibration["temperature"])
        scaled -= scaled.max(axis=1, keepdims=True)
        np.exp(scaled, out=scaled)
        scaled /= scaled.sum(axis=1, keepdims=True)
        return scaled
    a = np.asarray(calibration["a"], dtype=np.float64)
    b = np.asarray(calibration["b"], dtype=np.float64)
    return expit(decision * a + b)


def fit_temperature(decision: np.ndarray, truth: np.ndarray) -> float:
    """The softmax temperature that minimizes log-loss of ``decision`` for classes ``truth``."""
    rows = np.arange(len(truth))

    def loss(log_t: float) -> float:
        return float(-log_softmax(decision / np.exp(log_t), axis=1)[rows, truth].mean())

    from scipy.optimize import minimize_scalar  # training only, like every scikit-learn import here

    result = minimize_scalar(loss, bounds=(-6.0, 4.0), method="bounded")
    return float(np.exp(result.x))


def fit_platt(decision: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``sigmoid(a·d + b)``; a constant (smoothed base rate) if one class only."""
    positives = int(truth.sum())
    if positives in (0, len(truth)):
        rate = (positives + 0.5) / (len(truth) + 1.0)
        return 0.0, float(np.log(rate / (1.0 - rate)))
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4)
    model.fit(decision.reshape(-1, 1), truth)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def best_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The score threshold with the best micro-F1 (each document keeps its top label)."""
    top = scores.argmax(axis=1)
    best, best_f1 = 0.5, -1.0
    for threshold in np.round(np.arange(0.05, 0.96, 0.01), 2):
        chosen = scores >= threshold
        chosen[np.arange(len(top)), top] = True
        tp = float((chosen & (truth == 1)).sum())
        f1 = 2 * tp / (chosen.sum() + truth.sum()) if tp else 0.0
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(threshold), f1
    return best


def fit_calibration(mode: Mode, decision: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Calibration parameters from out-of-sample ``decision`` values and 0/1 ``truth``."""
    n = len(decision)
    if n < MIN_CALIBRATION_DOCS:
        if mode is Mode.MULTI_CLASS:
            return {"method": "none", "temperature": 1.0, "documents": n}
        k = decision.shape[1]
        return {"method": "none", "a": [1.0] * k, "b": [0.0] * k, "threshold": 0.5, "documents": n}
    if mode is Mode.MULTI_CLASS:
        temperature = fit_temperature(decision, truth.argmax(axis=1))
        return {"method": "temperature", "temperature": temperature, "documents": n}
    pooled = fit_platt(decision.ravel(), truth.ravel())
    a, b, pooled_labels = [], [], 0
    for j in range(decision.shape[1]):
        positives = int(truth[:, j].sum())
        if min(positives, n - positives) < 5:
            pa, pb = pooled
            pooled_labels += 1
        else:
            pa, pb = fit_platt(decision[:, j], truth[:, j])
        a.append(pa)
        b.append(pb)
    scores = expit(decision * np.asarray(a) + np.asarray(b))
    return {
        "method": "platt",
        "a": a,
        "b": b,
        "threshold": best_threshold(scores, truth),
        "pooled_labels": pooled_labels,
        "documents": n,
    }


# ---- fitting ---------------------------------------------------------------------------
def calibration_folds(keys: list[str], fraction: float, seed: int) -> list[np.ndarray]:
    """Boolean masks of the documents held out per fold (together they may not cover all)."""
    n = len(keys)
    if n < MIN_CALIBRATION_DOCS:
        return []
    if n >= SMALL_SET:
        mask, _ = stratified_holdout(keys, fraction, seed, min_group=2)
        return [mask]
    from sklearn.model_selection import KFold

    folds = []
    for _, held in KFold(n_splits=5, shuffle=True, random_state=seed).split(np.zeros(n)):
        mask = np.zeros(n, dtype=bool)
        mask[held] = True
        folds.append(mask)
    return folds


CALIBRATION_TOL = 1e-3
"""Stopping tolerance of the hold-out models: their decisions only feed the calibration."""

Fitted = tuple[np.ndarray, np.ndarray]
"""Rows of weights (labels × features) and intercepts; a task may fill a single label."""


def _fit_binary(features: sp.csr_matrix, target: np.ndarray, params: TfidfLinearParams, tol: float) -> Fitted:
    """One label against the rest (multi-label)."""
    positives = int(target.sum())
    if positives == 0 or positives == len(target):
        return np.zeros((1, features.shape[1])), np.array([1.0 if positives else -1.0])
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=params.C, random_state=params.seed, tol=tol)
    svm.fit(features, target)
    return svm.coef_[:1], svm.intercept_[:1]


def _fit_multiclass(
    features: sp.csr_matrix,
    target: np.ndarray,
    labels: int,
    params: TfidfLinearParams,
    tol: float,
    sample_weight: np.ndarray | None = None,
) -> Fitted:
    """All labels at once: liblinear's own one-vs-rest, one data conversion for all of them;
    ``sample_weight`` scales each document's ``C`` (None: every document counts the same).

    A label absent from ``target`` (a rare label held out of a calibration fold) gets a
    decision far below every other, so it is never predicted by that fold's model.
    """
    coef = np.zeros((labels, features.shape[1]))
    intercept = np.full(labels, -10.0)
    present = np.unique(target)
    if len(present) == 1:
        intercept[present[0]] = 1.0
        return coef, intercept
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=params.C, random_state=params.seed, tol=tol)
    svm.fit(features, target, sample_weight=sample_weight)
    if len(present) == 2:  # liblinear returns one row, for the second class
        coef[present[1]], coef[present[0]] = svm.coef_[0], -svm.coef_[0]
        intercept[present[1]], intercept[present[0]] = svm.intercept_[0], -svm.intercept_[0]
    else:
        coef[present], intercept[present] = svm.coef_, svm.intercept_
    return coef, intercept


# How far a fit has come, as fractions of the whole: most of the time goes to counting the
# words of the documents (reported per chunk of documents) and to the linear models (per model
# fitted; in between, estimated from the time they have run, see ``_FitProgress``).
COUNTED = 0.4
"""Every document's words counted: the vocabulary (``min_df``) and the TF-IDF matrix follow."""
FEATURES_READY = 0.45
"""The feature matrix is built; the linear models are fitted from here up to ``MODELS_FITTED``."""
MODELS_FITTED = 0.98
REPORTS_WHILE_COUNTING = 100
"""Progress reports while the documents' words are counted (one per 1 % of the documents)."""
TICK_SECONDS = 1.0
"""How often progress is reported while linear models fit."""
FIT_SECONDS_PER_COUNT_SECOND = 2.0
"""First guess of a linear model's fitting time, as a multiple of the time counting took (about
1.5-3 on 20ng and on synthetic sets); replaced by the mean time of the models fitted so far."""


def _counting(texts: Iterable[str], total: int, report: Progress, stop: Callable[[], bool]) -> Iterator[str]:
    """``texts`` unchanged, reporting how many were read (the vectorizer counts their words as
    it reads them, in one pass) and stopping on request."""
    step = max(1, math.ceil(total / REPORTS_WHILE_COUNTING))
    done = 0
    for text in texts:
        yield text
        done += 1
        if done % step == 0:
            if stop():
                raise Stopped("training stopped on request")
            report(
                COUNTED * min(1.0, done / max(1, total)), f"counting words: {done:,} of {total:,} documents"
            )
    report(COUNTED, f"selecting the words of {done:,} documents (min_df) and weighting them (TF-IDF)")


class _FitProgress:
    """Reports a pool of model fits: the share of models fitted, and for each model still
    fitting the share of its expected time that has passed (approaching but never reaching a
    whole model until it is done), so the bar moves while liblinear works on one big model.
    Reports never go backwards, and every model that ends is reported (by the thread that
    fitted it), one report at a time."""

    def __init__(self, report: Progress, tasks: int, what: str, expected_seconds: float) -> None:
        self.report = report
        self.tasks = tasks
        self.what = what
        self.expected = max(0.1, expected_seconds)
        self.started = time.monotonic()
        self.running: dict[int, float] = {}  # task index -> when it started
        self.durations: list[float] = []
        self.shown = FEATURES_READY
        self._lock = threading.Lock()

    def start(self, index: int) -> None:
        with self._lock:
            self.running[index] = time.monotonic()

    def end(self, index: int) -> None:
        with self._lock:
            began = self.running.pop(index, None)
            if began is not None:
                self.durations.append(time.monotonic() - began)
        self.tell()

    def tell(self) -> None:
        with self._lock:
            self._tell()

    def _tell(self) -> None:
        now = time.monotonic()
        expected = sum(self.durations) / len(self.durations) if self.durations else self.expected
        partial = sum(1.0 - math.exp(-(now - began) / expected) for began in list(self.running.values()))
        done = len(self.durations)
        share = min(done + partial, self.tasks) / max(1, self.tasks)
        self.shown = max(self.shown, FEATURES_READY + (MODELS_FITTED - FEATURES_READY) * share)
        self.report(
            self.shown, f"fitting {self.what}: {done} of {self.tasks} done, {now - self.started:.0f} s"
        )


def fit(
    mode: Mode,
    labels: list[str],
    texts: Iterable[str],
    truth: np.ndarray,
    keys: list[str],
    params: TfidfLinearParams | None = None,
    n_jobs: int = 2,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    unlabelled: Sequence[str] | None = None,
) -> TfidfLinearModel:
    """Train on ``texts`` (streamed once) with 0/1 ``truth`` (documents × labels).

    ``keys`` are the stratification keys of the documents (see ``stratification_keys``).
    ``unlabelled``: texts without labels (a learning loop's pool), used only with
    ``params.self_training`` in multi-class mode: the vocabulary and its idf are then fitted on
    the labelled and the unlabelled texts together (no label is used for them, as a learning
    curve simulation fits its vectorizer on the whole pool), and the model self-trains on the
    unlabelled rows (see :func:`fit_linear`).
    """
    params = params or TfidfLinearParams()
    report = progress or (lambda fraction, message: None)
    stop = should_stop or (lambda: False)
    pool = list(unlabelled or ()) if params.self_training and mode is Mode.MULTI_CLASS else []
    report(0.0, "extracting features")
    vectorizer = params.vectorizer()
    counting = time.perf_counter()
    try:
        every = _counting(chain(texts, pool), len(truth) + len(pool), report, stop)
        features = vectorizer.fit_transform(every).tocsr()
    except ValueError as exc:  # empty vocabulary, e.g. too few documents for min_df
        if params.min_df <= 1:
            raise TrainingFailed(f"no usable words in the training texts ({exc})") from exc
        raise TrainingFailed(
            f"no word occurs in {params.min_df} or more training documents: add documents"
        ) from exc
    pool_rows = features[len(truth) :] if pool else None
    features = features[: len(truth)] if pool else features
    if features.shape[0] != len(truth) or (pool_rows is not None and pool_rows.shape[0] != len(pool)):
        raise TrainingFailed(f"{features.shape[0]} texts for {len(truth)} label rows")
    counted_seconds = time.perf_counter() - counting
    if stop():
        raise Stopped("training stopped on request")
    return fit_features(
        mode,
        labels,
        features,
        vectorizer.vocabulary_,
        vectorizer.idf_,
        truth,
        keys,
        params,
        n_jobs=n_jobs,
        progress=report,
        should_stop=stop,
        counted_seconds=counted_seconds,
        unlabelled=pool_rows,
    )


def vectorize(
    texts: Iterable[str], params: TfidfLinearParams | None = None
) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    """A TF-IDF vectorizer fitted on ``texts`` as :func:`fit` fits its own, and the rows of
    ``texts``. No labels are used: a learning-curve simulation fits it once on the whole pool,
    then :func:`fit_features` at each step on the rows of the labelled documents."""
    params = params or TfidfLinearParams()
    vectorizer = params.vectorizer()
    try:
        features = vectorizer.fit_transform(texts).tocsr()
    except ValueError as exc:
        raise TrainingFailed(f"no usable words in the texts ({exc})") from exc
    return vectorizer, features


def fit_features(
    mode: Mode,
    labels: list[str],
    features: sp.csr_matrix,
    vocabulary: Mapping[str, int],
    idf: np.ndarray,
    truth: np.ndarray,
    keys: list[str],
    params: TfidfLinearParams | None = None,
    n_jobs: int = 2,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    counted_seconds: float = 0.0,
    unlabelled: sp.csr_matrix | None = None,
) -> TfidfLinearModel:
    """The linear models and calibration of :func:`fit` on ready TF-IDF rows ``features`` (of
    the vectorizer with ``vocabulary`` and ``idf``, l2-normalized), one row per ``truth`` row;
    ``unlabelled`` rows for ``params.self_training`` (see :func:`fit_linear`)."""
    coef, intercept, calibration = fit_linear(
        mode,
        labels,
        features,
        truth,
        keys,
        params,
        n_jobs,
        progress,
        should_stop,
        counted_seconds,
        unlabelled,
    )
    params = params or TfidfLinearParams()
    return TfidfLinearModel(mode, labels, params, vocabulary, idf, coef, intercept, calibration)


def fit_linear(
    mode: Mode,
    labels: list[str],
    features: sp.csr_matrix,
    truth: np.ndarray,
    keys: list[str],
    params: TfidfLinearParams | None = None,
    n_jobs: int = 2,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    counted_seconds: float = 0.0,
    unlabelled: sp.csr_matrix | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The weights (labels × feature columns), intercepts and calibration :func:`fit_features`
    builds its model from. A feature column no training row uses gets weight 0 (liblinear's
    weights are sums of training rows), so a caller may pass only the columns its rows use and
    put the weights back in place (with ``unlabelled`` rows and ``params.self_training``: the
    columns those rows use too).

    ``unlabelled``: rows of documents without labels (same columns as ``features``), used only
    when ``params.self_training`` is set and the mode is multi-class (see
    :attr:`TfidfLinearParams.self_training`); otherwise ignored."""
    params = params or TfidfLinearParams()
    report = progress or (lambda fraction, message: None)
    stop = should_stop or (lambda: False)
    if features.shape[0] != len(truth):
        raise TrainingFailed(f"{features.shape[0]} feature rows for {len(truth)} label rows")
    folds = calibration_folds(keys, params.calibration_fraction, params.seed)
    self_training = bool(
        params.self_training and mode is Mode.MULTI_CLASS and unlabelled is not None and unlabelled.shape[0]
    )
    all_features, used = features, None
    if self_training:  # the labelled fits on the columns their rows use (the pool's may be ~10x more)
        used = np.unique(features.indices)
        features = sp.csr_matrix(features[:, used])
    # slot -1 is the final model on every document; slot f is fold f's hold-out model
    slots: list[tuple[int, sp.csr_matrix, np.ndarray, float]] = [(-1, features, truth, 1e-4)]
    slots += [(f, features[~mask], truth[~mask], CALIBRATION_TOL) for f, mask in enumerate(folds)]
    tasks: list[tuple[int, int, Callable[[], Fitted]]] = []
    for slot, slot_features, slot_truth, tol in slots:
        if mode is Mode.MULTI_CLASS:
            target = slot_truth.argmax(axis=1)
            tasks.append(
                (slot, -1, partial(_fit_multiclass, slot_features, target, len(labels), params, tol))
            )
        else:
            tasks += [
                (slot, j, partial(_fit_binary, slot_features, slot_truth[:, j], params, tol))
                for j in range(len(labels))
            ]
    results: dict[tuple[int, int], Fitted] = {}
    started = time.perf_counter()
    if mode is Mode.MULTI_CLASS:
        what = f"{len(tasks)} linear models ({len(labels)} labels each)"
        expected = FIT_SECONDS_PER_COUNT_SECOND * counted_seconds
    else:
        what = f"{len(tasks)} linear models (one per label and hold-out)"
        expected = FIT_SECONDS_PER_COUNT_SECOND * counted_seconds / max(1, len(labels))
    fitting = _FitProgress(report, len(tasks), what, expected)
    fitting.tell()

    def run(index: int, slot: int, label: int, work: Callable[[], Fitted]) -> None:
        if stop():
            raise Stopped("training stopped on request")
        fitting.start(index)
        results[(slot, label)] = work()
        fitting.end(index)

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
            pending: set[Future[None]] = {pool.submit(run, index, *task) for index, task in enumerate(tasks)}
            while pending:
                finished, pending = wait(pending, timeout=TICK_SECONDS, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # a fit's error (or Stopped) ends the training here
                fitting.tell()

    def assembled(slot: int) -> Fitted:
        if mode is Mode.MULTI_CLASS:
            return results[(slot, -1)]
        parts = [results[(slot, j)] for j in range(len(labels))]
        return np.vstack([w for w, _ in parts]), np.concatenate([b for _, b in parts])

    coef, intercept = assembled(-1)
    held_decisions, held_truth = [], []
    for f, mask in enumerate(folds):
        fold_coef, fold_intercept = assembled(f)
        held_decisions.append(np.asarray(features[mask] @ fold_coef.T) + fold_intercept)
        held_truth.append(truth[mask])
    if held_decisions:
        calibration = fit_calibration(mode, np.vstack(held_decisions), np.vstack(held_truth))
    else:
        calibration = fit_calibration(mode, np.zeros((0, len(labels))), np.zeros((0, len(labels))))
    if self_training and unlabelled is not None and used is not None:
        if stop():
            raise Stopped("training stopped on request")
        wide = np.zeros((coef.shape[0], all_features.shape[1]))
        wide[:, used] = coef  # a column no labelled row uses has weight 0
        coef, intercept = self_trained(all_features, truth, unlabelled, wide, intercept, params, n_jobs)
        calibration["self_trained"] = int(unlabelled.shape[0])
    calibration["fit_seconds"] = round(time.perf_counter() - started, 3)
    report(1.0, "model fitted")
    return coef, intercept, calibration


SELF_TRAINING_TOL = 0.1
"""Stopping tolerance of the self-trained fit. Its targets are the model's own guesses, so a
tight optimum buys nothing: on 20ng (600-3,400 labels, 10,000 pool documents) 0.1 needs a third
of the iterations of 1e-4 and the learning curves reach the same accuracy at the same labels."""


def self_trained(
    features: sp.csr_matrix,
    truth: np.ndarray,
    unlabelled: sp.csr_matrix,
    coef: np.ndarray,
    intercept: np.ndarray,
    params: TfidfLinearParams,
    n_jobs: int = 1,
) -> Fitted:
    """Self-training (multi-class): the weights and intercepts of the linear model fitted on the
    labelled ``features`` plus the ``unlabelled`` rows, each labelled with the best label of the
    model ``coef``/``intercept`` (fitted on the labelled rows alone) and counting
    ``params.self_training_weight`` of a labelled row; only the ``params.self_training_share``
    of them that model is surest of (:func:`surest_rows`) take part. Each of the
    ``params.self_training_rounds`` rounds does this with the previous round's model. Each fit stops
    at :data:`SELF_TRAINING_TOL` and spreads its labels over ``n_jobs`` threads
    (:func:`_fit_multiclass_threads`): it is the costly part of a learning-loop step."""
    if unlabelled.shape[1] != features.shape[1]:
        raise TrainingFailed(
            f"{unlabelled.shape[1]} unlabelled columns for {features.shape[1]} feature columns"
        )
    from sklearn.exceptions import ConvergenceWarning

    labelled_target, labelled_weight = truth.argmax(axis=1), np.ones(features.shape[0])
    fitted: Fitted = (coef, intercept)
    for _ in range(params.self_training_rounds):
        guessed = np.asarray(unlabelled @ fitted[0].T).reshape(unlabelled.shape[0], -1) + fitted[1]
        kept = surest_rows(guessed, params.self_training_share)
        target = np.concatenate([labelled_target, guessed[kept].argmax(axis=1)])
        rows = sp.vstack([features, unlabelled[kept]], format="csr")
        weight = np.concatenate([labelled_weight, np.full(len(kept), params.self_training_weight)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = _fit_multiclass_threads(
                rows, target, truth.shape[1], params, SELF_TRAINING_TOL, n_jobs, weight
            )
    return fitted


def surest_rows(decision: np.ndarray, share: float) -> np.ndarray:
    """Indices (ascending) of the ``share`` of ``decision``'s rows (rounded up) with the widest
    gap between their two best decision values; ties keep the earlier row."""
    n = decision.shape[0]
    keep = min(n, math.ceil(share * n - 1e-9))
    if keep >= n or decision.shape[1] < 2:
        return np.arange(n)
    gap = -margin(decision)  # margin sampling's measure: minus the gap of the two best
    return np.sort(np.argsort(-gap, kind="stable")[:keep])


def _fit_multiclass_threads(
    features: sp.csr_matrix,
    target: np.ndarray,
    labels: int,
    params: TfidfLinearParams,
    tol: float,
    n_jobs: int,
    sample_weight: np.ndarray | None = None,
) -> Fitted:
    """:func:`_fit_multiclass` with its labels split over ``n_jobs`` threads (liblinear runs the
    one-vs-rest problems of one fit one after another, on one core).

    Each thread fits its group of labels plus one class "every other label": liblinear's
    one-vs-rest problem of a label is that label against every other document however the others
    are labelled, so each group's rows are the ones the whole fit would give (the extra class's
    own problem is thrown away)."""
    present = np.unique(target)
    groups = [group for group in np.array_split(present, max(1, n_jobs)) if len(group)]
    if len(groups) < 2:
        return _fit_multiclass(features, target, labels, params, tol, sample_weight)
    coef = np.zeros((labels, features.shape[1]))
    intercept = np.full(labels, -10.0)

    def part(group: np.ndarray) -> Fitted:
        grouped = np.where(np.isin(target, group), target, labels)  # ``labels``: every other label
        return _fit_multiclass(features, grouped, labels + 1, params, tol, sample_weight)

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        for group, (group_coef, group_intercept) in zip(groups, pool.map(part, groups), strict=True):
            coef[group], intercept[group] = group_coef[group], group_intercept[group]
    return coef, intercept


def fit_labelled(
    mode: Mode,
    labels: list[str],
    texts: Iterable[str],
    label_sets: Sequence[tuple[str, ...]],
    parameters: Mapping[str, Any],
    *,
    n_jobs: int = 2,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    unlabelled: Sequence[str] | None = None,
) -> TfidfLinearModel:
    """:func:`fit` as the registry calls every recipe: each document's labels, and parameters
    as a model version records them (keys that are not :class:`TfidfLinearParams` are ignored);
    ``unlabelled`` texts as :func:`fit` takes them."""
    names = {field.name for field in fields(TfidfLinearParams)}
    params = TfidfLinearParams(**{key: value for key, value in parameters.items() if key in names})
    return fit(
        mode,
        labels,
        texts,
        indicator(label_sets, labels),
        stratification_keys(label_sets),
        params,
        n_jobs=n_jobs,
        progress=progress,
        should_stop=should_stop,
        unlabelled=unlabelled,
    )
