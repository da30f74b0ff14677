"""Consolidation quality: majority vote against Dawid–Skene, with simulated reviewers of known
accuracies over a real data set's labels (the true labels), in the same run.

The documents' true labels come from ``--data`` (default: the 20 Newsgroups training labels in
/work/shared/data, 20 classes, or ``$TAGLOOP_BENCH_DATA``). Each document is answered by
``--answers`` reviewers drawn from a crowd; a reviewer is right with their accuracy, and when
wrong picks, half the time, a class of the same family (the newsgroup's first name part:
comp.*, rec.*, sci.*, talk.*...), else any wrong class. Spammers answer a uniformly random class.

The documents are shuffled; the first half is the history the review service estimates reliabilities
from; the second half is consolidated as tagloop would (``dawid-skene``: the service's own
``domain.dawid_skene.decide`` with the estimate of the history, threshold ``--threshold``),
next to plain majority vote (a tie to the moderator). Printed per crowd: accuracy of the
labels decided without a moderator against the truth, how many tasks went to the moderator,
and how many majorities Dawid–Skene overruled; plus Dawid–Skene's argmax on every task (no
moderator at all) and the EM fit time.

    PYTHONPATH=src python benchmarks/consolidation.py [--answers 3] [--data FILE.csv.gz]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import random
import time
from pathlib import Path

from tagloop.domain import consolidation, dawid_skene
from tagloop.domain.consolidation import Answer
from tagloop.domain.records import Mode

DEFAULT_DATA = Path(os.environ.get("TAGLOOP_BENCH_DATA", "/work/shared/data/20ng_train.csv.gz"))

CROWDS: dict[str, dict[str, float]] = {
    "5 careful (0.95-0.75)": {"r1": 0.95, "r2": 0.9, "r3": 0.85, "r4": 0.8, "r5": 0.75},
    "3 careful + 2 spammers": {"r1": 0.9, "r2": 0.85, "r3": 0.8, "spam1": 0.0, "spam2": 0.0},
    "2 careful + 3 spammers": {"r1": 0.9, "r2": 0.85, "spam1": 0.0, "spam2": 0.0, "spam3": 0.0},
    "mediocre (0.6-0.7) + 1 expert": {"r1": 0.6, "r2": 0.65, "r3": 0.7, "r4": 0.6, "expert": 0.97},
}
"""Accuracy 0.0 marks a spammer (a random class, right 1/K of the time by chance)."""


def truth_labels(path: Path, limit: int | None) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        labels = [row[0] for row in csv.reader(handle) if row]
    return labels[:limit] if limit else labels


def answer(true: str, accuracy: float, classes: list[str], rng: random.Random) -> str:
    if accuracy == 0.0:
        return rng.choice(classes)
    if rng.random() < accuracy:
        return true
    family = true.split(".")[0]
    near = [c for c in classes if c != true and c.split(".")[0] == family]
    if near and rng.random() < 0.5:
        return rng.choice(near)
    return rng.choice([c for c in classes if c != true])


def run(
    truth: list[str], crowd: dict[str, float], answers: int, threshold: float, seed: int, smoothing: float
) -> dict[str, float]:
    rng = random.Random(seed)
    classes = sorted(set(truth))
    tasks = []
    for true in truth:
        reviewers = rng.sample(sorted(crowd), answers)
        tasks.append([Answer(r, (answer(true, crowd[r], classes, rng),)) for r in reviewers])
    half = len(tasks) // 2
    history = [(str(i), a.reviewer, a.labels) for i, task in enumerate(tasks[:half]) for a in task]
    started = time.perf_counter()
    estimate, _ = dawid_skene.fit_history(history, labels=classes, smoothing=smoothing)
    fit_seconds = time.perf_counter() - started

    figures = dict.fromkeys(
        ("mv_right", "mv_decided", "ds_right", "ds_decided", "ties", "ties_right", "over", "over_right"), 0
    )
    for task, true in zip(tasks[half:], truth[half:], strict=True):
        outcome = consolidation.consolidate(task, answers, Mode.MULTI_CLASS)
        if outcome.labels is not None:
            figures["mv_decided"] += 1
            figures["mv_right"] += outcome.labels[0] == true
        decided = dawid_skene.decide(estimate, task, outcome, threshold)
        final = decided if decided is not None else (outcome.labels[0] if outcome.labels else None)
        if final is not None:
            figures["ds_decided"] += 1
            figures["ds_right"] += final == true
            if decided is not None:
                kind = "ties" if outcome.needs_moderator else "over"
                figures[kind] += 1
                figures[f"{kind}_right"] += decided == true
    # Dawid–Skene fitted on every task, its argmax taken (no moderator)
    every = [[(a.reviewer, a.labels[0]) for a in task] for task in tasks]
    argmax = dawid_skene.dawid_skene(every, classes, smoothing=smoothing).item_labels()
    evaluated = len(tasks) - half
    return {
        "tasks": evaluated,
        "mv_accuracy": figures["mv_right"] / max(1, figures["mv_decided"]),
        "mv_moderator": evaluated - figures["mv_decided"],
        "ds_accuracy": figures["ds_right"] / max(1, figures["ds_decided"]),
        "ds_moderator": evaluated - figures["ds_decided"],
        "ties": figures["ties"],
        "ties_accuracy": figures["ties_right"] / max(1, figures["ties"]),
        "over": figures["over"],
        "over_accuracy": figures["over_right"] / max(1, figures["over"]),
        "argmax_accuracy": sum(a == b for a, b in zip(argmax, truth, strict=True)) / len(truth),
        "fit_seconds": fit_seconds,
        "history": half,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--answers", type=int, nargs="+", default=[2, 3], help="answers per task (2, 3)")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N documents")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--smoothing", type=float, default=dawid_skene.SMOOTHING)
    args = parser.parse_args()
    truth = truth_labels(args.data, None)
    random.Random(args.seed).shuffle(truth)  # the file is sorted by label: history and the rest alike
    truth = truth[: args.limit] if args.limit else truth
    print(f"{args.data.name}: {len(truth)} documents, {len(set(truth))} classes; first half = history")
    print(
        f"{'crowd':30} {'ans':>3} | {'majority':>8} {'to mod':>6} | {'dawid-skene':>11} {'to mod':>6} "
        f"{'ties decided':>14} {'overruled':>12} | {'DS argmax':>9} | {'fit s':>5}"
    )
    for answers in args.answers:
        for name, crowd in CROWDS.items():
            r = run(truth, crowd, answers, args.threshold, args.seed, args.smoothing)
            ties = f"{r['ties']:d} ({r['ties_accuracy']:.2f})"
            over = f"{r['over']:d} ({r['over_accuracy']:.2f})"
            print(
                f"{name:30} {answers:>3} | {r['mv_accuracy']:8.3f} {r['mv_moderator']:6d} | "
                f"{r['ds_accuracy']:11.3f} {r['ds_moderator']:6d} {ties:>14} {over:>12} | "
                f"{r['argmax_accuracy']:9.3f} | {r['fit_seconds']:5.2f}"
            )
    print(
        "accuracy: labels decided without a moderator, against the true labels; 'to mod': ties sent to "
        f"the moderator (of {len(truth) - len(truth) // 2} tasks); ties decided / overruled: by Dawid-Skene "
        f"(their accuracy); DS argmax: every task, no moderator. Threshold {args.threshold}, "
        f"smoothing {args.smoothing}"
    )


if __name__ == "__main__":
    main()
