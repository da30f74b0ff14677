"""Learning-curve simulation: how many labels each query strategy needs, on a labelled set.

``tagloop simulate`` hides the labels of a fully labelled training set, starts from a few
documents per label, and repeats: train with the real recipe code, evaluate on the test set,
let a strategy pick the next batch from the rest of the training set (the pool), reveal their
labels. Every strategy starts each repeat from the same initial documents and the same seed.

The default recipe's vectorizer is fitted once on all training texts (unsupervised: it uses no
label, as a deployed loop's vectorizer may see its whole pool), then each step refits only the
linear models and their calibration (``recipes.tfidf_linear.fit_features``) on the labelled
rows and scores the pool from its ready rows. The full-data model, which the targets (95 % and
99 % of its accuracy) refer to, is the same code on every training row: exactly what
``tagloop train`` fits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import scipy.sparse as sp

from tagloop.domain.formats import FormatSpec
from tagloop.domain.limits import Limits
from tagloop.domain.metrics import evaluate, indicator
from tagloop.domain.progress import Progress
from tagloop.domain.records import Mode
from tagloop.domain.splitting import stratification_keys
from tagloop.domain.strategies import STRATEGIES, Candidates, Strategy, strategy
from tagloop.errors import InvalidRequest
from tagloop.recipes import tfidf_linear
from tagloop.services.datasets import DatasetReader, ReadOptions

MAX_REPEATS = 20
MAX_STEPS = 2_000


@dataclass(frozen=True)
class SimulationPlan:
    strategies: tuple[str, ...] = ("random", "margin")
    initial_per_label: int = 10
    batch: int = 50
    budget: int = 3_000
    repeats: int = 3
    seed: int = 0
    targets: tuple[float, ...] = (0.95, 0.99)
    stop_at_target: bool = False
    """End a run once it reaches the highest target (saves time; its curve ends there)."""

    def __post_init__(self) -> None:
        if not self.strategies:
            raise InvalidRequest("strategy: name at least one strategy")
        for name in self.strategies:
            strategy(name)  # InvalidRequest naming the known ones
        if len(set(self.strategies)) != len(self.strategies):
            raise InvalidRequest("strategy: a strategy is named twice")
        for name, low, high in (
            ("initial_per_label", 1, 10_000),
            ("batch", 1, 100_000),
            ("budget", 1, 10_000_000),
            ("repeats", 1, MAX_REPEATS),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidRequest(
                    f"{name}: expected a whole number from {low:,} to {high:,}, got {value!r}"
                )
        for target in self.targets:
            if not 0.0 < target <= 1.0:
                raise InvalidRequest(f"target: {target!r} is not a share between 0 and 1")


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    label_sets: list[tuple[str, ...]]


def read_labelled(
    source: str,
    mode: Mode,
    limits: Limits,
    delimiter: str = "|",
    format: str | None = None,
    text_columns: tuple[str, ...] = (),
    label_column: str | None = None,
) -> tuple[LabelledTexts, list[str]]:
    """The valid rows of a labelled file (any format ``tagloop train`` reads), and the warnings;
    DatasetInvalid listing the rejected rows, as training would."""
    spec = FormatSpec.infer(source, format, text_columns, label_column)
    reader = DatasetReader(source, ReadOptions(spec, mode, delimiter, limits, warn_rare_labels=False))
    texts, label_sets = [], []
    for item in reader:
        texts.append(item.text)
        label_sets.append(item.labels)
    report = reader.finish()
    return LabelledTexts(texts, label_sets), list(report.warnings)


@dataclass
class StepTimes:
    """Seconds spent per step, summed over the steps and repeats of one strategy."""

    fit: float = 0.0
    score: float = 0.0
    select: float = 0.0
    steps: int = 0
    sizes: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    """(labelled, pool, fit s, score s, select s) of every step that picked a batch."""


class Simulator:
    """The shared part of a simulation (features, labels, full-data model) for its runs."""

    def __init__(
        self,
        train: LabelledTexts,
        test: LabelledTexts,
        mode: Mode,
        parameters: dict[str, Any] | None = None,
        n_jobs: int = 2,
    ) -> None:
        if not train.texts:
            raise InvalidRequest("the training set is empty")
        if not test.texts:
            raise InvalidRequest("the test set is empty")
        self.mode = mode
        self.n_jobs = n_jobs
        self.params = tfidf_linear.TfidfLinearParams(**(parameters or {}))
        self.labels = sorted({label for labels in train.label_sets for label in labels})
        self.train, self.test = train, test
        vectorizer, self.features = tfidf_linear.vectorize(train.texts, self.params)
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf: np.ndarray = vectorizer.idf_
        self.test_features = sp.csr_matrix(vectorizer.transform(test.texts))
        self.truth = indicator(train.label_sets, self.labels)
        self.keys = stratification_keys(train.label_sets)

    def fit(self, rows: np.ndarray) -> tfidf_linear.TfidfLinearModel:
        """The recipe's model fitted on the training ``rows`` (what ``fit_features`` fits, on
        the columns these rows use: the others would get weight 0, so they are left out of the
        fit and filled with 0 after it). With the recipe's ``self_training`` the other training
        rows (the pool) are its unlabelled rows, as a loop's pool would be."""
        chosen = self.features[rows]
        unlabelled = None
        if self.params.self_training and self.mode is Mode.MULTI_CLASS:
            rest = np.ones(self.features.shape[0], dtype=bool)
            rest[rows] = False
            unlabelled = self.features[rest]
            # the vocabulary was fitted on these rows: together they use every column
            columns = np.arange(self.features.shape[1])
        else:
            columns = np.unique(chosen.indices)
            chosen = chosen[:, columns]
        coef, intercept, calibration = tfidf_linear.fit_linear(
            self.mode,
            self.labels,
            chosen,
            self.truth[rows],
            [self.keys[i] for i in rows],
            self.params,
            n_jobs=self.n_jobs,
            unlabelled=unlabelled,
        )
        full = np.zeros((len(self.labels), self.features.shape[1]), dtype=np.float32)
        full[:, columns] = coef
        return tfidf_linear.TfidfLinearModel(
            self.mode,
            self.labels,
            self.params,
            self.vocabulary,
            self.idf,
            full,
            intercept,
            calibration,
            eager_features=False,
        )

    def evaluate(self, model: tfidf_linear.TfidfLinearModel) -> dict[str, float]:
        decided = model.decide(model.scores_of_features(self.test_features))
        predicted = [[self.labels[i] for i in row] for row in decided]
        metrics = evaluate(self.mode, self.labels, self.test.label_sets, predicted).metrics
        return {"accuracy": metrics["Accuracy"], "f1": metrics["F1Score"]}

    def initial(self, per_label: int, rng: np.random.Generator) -> np.ndarray:
        """``per_label`` random documents of each label (all of a rarer one), in one set."""
        chosen: set[int] = set()
        for j in range(len(self.labels)):
            having = np.flatnonzero(self.truth[:, j])
            take = min(per_label, len(having))
            chosen.update(int(i) for i in rng.choice(having, size=take, replace=False))
        return np.array(sorted(chosen), dtype=np.int64)

    def run(
        self,
        chosen: Strategy,
        initial: np.ndarray,
        batch: int,
        budget: int,
        rng: np.random.Generator,
        times: StepTimes,
        stop: Callable[[], None] = lambda: None,
        enough: float = math.inf,
    ) -> list[dict[str, float]]:
        """One learning curve: the test figures after each step (labels = documents known)."""
        n = self.features.shape[0]
        labelled = initial.copy()
        in_pool = np.ones(n, dtype=bool)
        in_pool[labelled] = False
        curve = []
        for _ in range(MAX_STEPS):
            stop()
            started = time.perf_counter()
            model = self.fit(labelled)
            fitted = time.perf_counter()
            curve.append({"labels": len(labelled), **self.evaluate(model)})
            pool = np.flatnonzero(in_pool)
            count = min(batch, budget - len(labelled), len(pool))
            if count <= 0 or curve[-1]["accuracy"] >= enough:
                break
            scored = time.perf_counter()
            candidates = Candidates(
                model.scores_of_features(self.features[pool]),
                self.features[pool] if chosen.needs_features else None,
                self.features[labelled] if chosen.needs_features else None,
                multi_label=self.mode is Mode.MULTI_LABEL,
            )
            selecting = time.perf_counter()
            picked = pool[chosen.select(candidates, count, rng)]
            done = time.perf_counter()
            times.fit += fitted - started
            times.score += selecting - scored
            times.select += done - selecting
            times.steps += 1
            times.sizes.append(
                (len(labelled), len(pool), fitted - started, selecting - scored, done - selecting)
            )
            if len(picked) == 0:
                break
            in_pool[picked] = False
            labelled = np.concatenate([labelled, picked])
        return curve


def labels_to_reach(curve: Sequence[dict[str, float]], accuracy: float) -> int | None:
    """The labels of the first step whose accuracy reaches ``accuracy`` (None: never)."""
    for point in curve:
        if point["accuracy"] >= accuracy - 1e-12:
            return int(point["labels"])
    return None


def _spread(values: list[int | None]) -> dict[str, Any]:
    reached = [v for v in values if v is not None]
    every = len(reached) == len(values)
    return {
        "mean": round(float(np.mean(reached)), 1) if every else None,
        "std": round(float(np.std(reached)), 1) if every else None,
        "min": min(reached) if reached else None,
        "max": max(reached) if every else None,
        "reached": len(reached),
        "repeats": len(values),
        "each": values,
    }


def _mean_curve(curves: list[list[dict[str, float]]]) -> list[dict[str, Any]]:
    steps = min(len(c) for c in curves)
    result = []
    for i in range(steps):
        points = [c[i] for c in curves]
        accuracy = [p["accuracy"] for p in points]
        result.append(
            {
                "labels": round(float(np.mean([p["labels"] for p in points])), 1),
                "accuracy": round(float(np.mean(accuracy)), 4),
                "accuracy_std": round(float(np.std(accuracy)), 4),
                "f1": round(float(np.mean([p["f1"] for p in points])), 4),
            }
        )
    return result


def simulate(
    train: LabelledTexts,
    test: LabelledTexts,
    mode: Mode,
    plan: SimulationPlan,
    parameters: dict[str, Any] | None = None,
    n_jobs: int = 2,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Learning curves of every strategy of ``plan`` (see the module docstring): per strategy
    the mean curve, each repeat's curve, and the labels needed to reach each target share of
    the full-data accuracy (mean and spread over the repeats)."""
    report = progress or (lambda fraction, message: None)
    report(0.0, "extracting features (once, all training texts)")
    simulator = Simulator(train, test, mode, parameters, n_jobs)
    report(0.02, f"fitting the full-data model on {len(train.texts):,} documents")
    full = simulator.evaluate(simulator.fit(np.arange(len(train.texts))))

    def stop() -> None:
        if should_stop is not None and should_stop():
            from tagloop.errors import Stopped

            raise Stopped("simulation stopped on request")

    runs = len(plan.strategies) * plan.repeats
    curves: dict[str, list[list[dict[str, float]]]] = {name: [] for name in plan.strategies}
    times = {name: StepTimes() for name in plan.strategies}
    done = 0
    for repeat in range(plan.repeats):
        seed = plan.seed + repeat
        initial = simulator.initial(plan.initial_per_label, np.random.default_rng([seed, 0]))
        for name in plan.strategies:
            report(0.05 + 0.95 * done / runs, f"repeat {repeat + 1} of {plan.repeats}: {name}")
            curve = simulator.run(
                strategy(name),
                initial,
                plan.batch,
                max(plan.budget, len(initial)),
                np.random.default_rng([seed, 1]),
                times[name],
                stop,
                max(plan.targets) * full["accuracy"] - 1e-12 if plan.stop_at_target else math.inf,
            )
            curves[name].append(curve)
            done += 1
    report(1.0, "simulated")
    seconds = {
        name: {
            "fit": round(spent.fit / max(1, spent.steps), 4),
            "score": round(spent.score / max(1, spent.steps), 4),
            "select": round(spent.select / max(1, spent.steps), 4),
        }
        for name, spent in times.items()
    }
    return {
        "mode": mode.value,
        "documents": {"train": len(train.texts), "test": len(test.texts), "labels": len(simulator.labels)},
        "plan": {**asdict(plan), "strategies": list(plan.strategies), "targets": list(plan.targets)},
        "recipe": asdict(simulator.params),
        "full": {"labels": len(train.texts), **{k: round(v, 4) for k, v in full.items()}},
        "strategies": _strategies(plan.targets, full["accuracy"], curves, seconds),
    }


def _strategies(
    targets: Sequence[float],
    full_accuracy: float,
    curves: dict[str, list[list[dict[str, float]]]],
    seconds: dict[str, dict[str, float]],
) -> dict[str, Any]:
    return {
        name: {
            "steps": _mean_curve(repeats),
            "to_reach": {
                _share(t): _spread([labels_to_reach(c, t * full_accuracy) for c in repeats]) for t in targets
            },
            "final": _mean_curve(repeats)[-1],
            "seconds_per_step": seconds[name],
            "repeats": repeats,
        }
        for name, repeats in curves.items()
    }


def combine(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One :func:`simulate` result from several runs of the same plan with other seeds (e.g.
    one repeat each, run side by side in separate processes): their repeats' curves together,
    the figures recomputed over all of them against the first run's full-data accuracy (each
    run fits the same full-data model; liblinear's shared random generator may move its
    accuracy by a few test documents), the seconds per step averaged."""
    if not results:
        raise InvalidRequest("nothing to combine")
    first = results[0]
    names = list(first["strategies"])
    if any(list(r["strategies"]) != names or r["recipe"] != first["recipe"] for r in results):
        raise InvalidRequest("the runs to combine differ in strategies or recipe")
    curves = {name: [c for r in results for c in r["strategies"][name]["repeats"]] for name in names}
    seconds = {
        name: {
            part: round(float(np.mean([r["strategies"][name]["seconds_per_step"][part] for r in results])), 4)
            for part in first["strategies"][name]["seconds_per_step"]
        }
        for name in names
    }
    plan = {**first["plan"], "repeats": sum(int(r["plan"]["repeats"]) for r in results)}
    plan["seed"] = min(int(r["plan"]["seed"]) for r in results)
    targets = [float(t) for t in first["plan"]["targets"]]
    return {
        **first,
        "plan": plan,
        "strategies": _strategies(targets, float(first["full"]["accuracy"]), curves, seconds),
    }


def _share(target: float) -> str:
    return f"{round(target * 100, 2):g}%"


# ---- the plot: a small SVG, written directly (no plotting library at run time) ---------------
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def curve_svg(
    result: dict[str, Any], title: str = "learning curves", width: int = 720, height: int = 440
) -> str:
    """The mean accuracy curves of :func:`simulate`'s ``result`` as a standalone SVG document,
    with dashed lines at the targets' share of the full-data accuracy."""
    left, right, top, bottom = 64, 170, 36, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    names = list(result["strategies"])
    points = [p for name in names for p in result["strategies"][name]["steps"]]
    full = float(result["full"]["accuracy"])
    targets = [float(t) for t in result["plan"]["targets"]]
    x_max = max([float(p["labels"]) for p in points] + [1.0])
    ys = [float(p["accuracy"]) for p in points] + [full]
    y_low = max(0.0, math.floor(min(ys) * 10) / 10)
    y_high = min(1.0, math.ceil(max(ys) * 20) / 20) if max(ys) < 1 else 1.0
    if y_high <= y_low:
        y_high = y_low + 0.1

    def x(value: float) -> float:
        return left + plot_w * value / x_max

    def y(value: float) -> float:
        return top + plot_h * (1.0 - (value - y_low) / (y_high - y_low))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>',
    ]
    for i in range(6):
        value = y_low + (y_high - y_low) * i / 5
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#eee"/>'
        )
        out.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.2f}</text>')
    for i in range(6):
        value = x_max * i / 5
        out.append(
            f'<text x="{x(value):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{value:,.0f}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">labelled documents</text>'
    )
    out.append(
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + plot_h / 2})">test accuracy</text>'
    )
    for target in targets:
        level = target * full
        if y_low <= level <= y_high:
            out.append(
                f'<line x1="{left}" x2="{left + plot_w}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
                f'stroke="#888" stroke-dasharray="4 4"/>'
            )
            out.append(
                f'<text x="{left + plot_w - 4}" y="{y(level) - 4:.1f}" fill="#666" text-anchor="end">'
                f"{_share(target)} of full</text>"
            )
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        steps = result["strategies"][name]["steps"]
        path = " ".join(f"{x(float(p['labels'])):.1f},{y(float(p['accuracy'])):.1f}" for p in steps)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend_y = top + 14 + 18 * i
        out.append(
            f'<line x1="{left + plot_w + 8}" x2="{left + plot_w + 28}" y1="{legend_y - 4}" '
            f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{left + plot_w + 32}" y="{legend_y}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def known_strategies() -> list[str]:
    return list(STRATEGIES)
