"""A whole loop iteration vs a plain training of the same data, in the same run.

On 20ng train (~11,300 documents, Comprehend CSV) in a fresh embedded tagloop (SQLite + local
files):

- **plain**: ``TrainingService.train`` of the file (what ``tagloop train C --data FILE`` runs
  after process start): import, hold-out split, fit, evaluate, save;
- **iteration**: ``IterationService.run`` on a classifier whose champion was trained on that
  file: compose the challenger's data (copies of the champion's documents + verified ones),
  fit, evaluate the challenger, evaluate the champion on the same frozen test set, decide,
  record (and promote) in one transaction. On the same data the figures are equal and the
  challenger is kept, so the promotion (``LoopService.promote``: load and verify the model,
  re-point in one transaction) is timed right after and added.

Both run in this process, alternated ``--repeats`` times; the fastest of each counts. Target
(issue 14): iteration ≤ 2.5 × plain. Prints a table (and ``--json`` the figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings

TARGET = 2.5
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset", default="20ng")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    args = parser.parse_args()
    train = args.data_dir / f"{args.dataset}_train.csv.gz"
    if not train.exists():
        print(f"missing {train}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tagloop-bench-iteration-") as folder:
        app = Tagloop(Settings(data_dir=Path(folder) / "data", loop_tick_seconds=0))
        try:
            figures = measure(app, train, args.repeats)
        finally:
            app.close()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    return 0


def measure(app: Tagloop, train: Path, repeats: int) -> dict[str, Any]:
    print("training the champion (not timed)", file=sys.stderr)
    champion = app.training.train(TrainRequest(classifier="loop", data=str(train)))
    app.loops.promote("loop", champion["version"])
    plain: list[float] = []
    iteration: list[float] = []
    phases: list[dict[str, Any]] = []
    promotions: list[float] = []
    for repeat in range(repeats):
        print(f"repeat {repeat + 1}/{repeats}: plain training", file=sys.stderr)
        started = time.perf_counter()
        trained = app.training.train(TrainRequest(classifier="plain", data=str(train)))
        plain.append(time.perf_counter() - started)
        print(f"repeat {repeat + 1}/{repeats}: iteration", file=sys.stderr)
        started = time.perf_counter()
        result = app.iterations.run("loop")
        iteration.append(time.perf_counter() - started)
        assert result["status"] == "COMPLETED", result
        promotion = None
        if result["decision"] != "promoted":  # same data, same figures: kept; time the promotion apart
            champion_now = app.loops.champion("loop")
            started = time.perf_counter()
            app.loops.promote("loop", result["challenger"])
            promotion = time.perf_counter() - started
            assert champion_now is not None
            app.loops.promote("loop", champion_now["version"])  # back: the next repeat starts alike
        promotions.append(promotion or 0.0)
        challenger = app.catalog.version("loop", result["challenger"])
        phases.append(
            {
                "plain_timings": trained["timings"],
                "challenger_timings": challenger["timings"],
                "decision": result["decision"],
                "reason": result["reason"],
                "documents": result["documents"],
            }
        )
    pairs = [
        (i + p) / q for i, p, q in zip(iteration, promotions, plain, strict=True)
    ]  # each repeat's iteration over the plain training run just before it
    beyond_fit = [
        {
            "plain": round(q - f["plain_timings"]["fit_seconds"], 3),
            "iteration": round(i + p - f["challenger_timings"]["fit_seconds"], 3),
        }
        for i, p, q, f in zip(iteration, promotions, plain, phases, strict=True)
    ]
    best_plain = min(plain)
    best_iteration = min(i + p for i, p in zip(iteration, promotions, strict=True))
    return {
        "documents": champion["documents"],
        "plain_seconds": plain,
        "iteration_seconds": iteration,
        "promotion_seconds": promotions,
        "best_plain_seconds": round(best_plain, 3),
        "best_iteration_seconds": round(best_iteration, 3),
        "ratio": round(best_iteration / best_plain, 3),
        "pairwise_ratios": [round(r, 3) for r in pairs],
        "seconds_beyond_the_fit": beyond_fit,
        "target": TARGET,
        "pass": best_iteration / best_plain <= TARGET,
        "phases": phases,
    }


def report(figures: dict[str, Any]) -> None:
    docs = figures["documents"]
    print(f"20ng train: {docs['train']:,} training + {docs['test']:,} test documents")
    print(f"{'':<28}{'seconds (best)':>16}{'all runs':>30}")
    print(
        f"{'plain training':<28}{figures['best_plain_seconds']:>16.2f}"
        f"{', '.join(f'{s:.2f}' for s in figures['plain_seconds']):>30}"
    )
    runs = [i + p for i, p in zip(figures["iteration_seconds"], figures["promotion_seconds"], strict=True)]
    print(
        f"{'iteration + promotion':<28}{figures['best_iteration_seconds']:>16.2f}"
        f"{', '.join(f'{s:.2f}' for s in runs):>30}"
    )
    print(
        f"{'  of which promotion':<28}{'':>16}"
        f"{', '.join(f'{s:.2f}' for s in figures['promotion_seconds']):>30}"
    )
    print(f"pairwise (each repeat): {', '.join(f'{r:.2f}×' for r in figures['pairwise_ratios'])}")
    print(
        "seconds beyond the fit (plain / iteration): "
        + ", ".join(f"{b['plain']:.2f} / {b['iteration']:.2f}" for b in figures["seconds_beyond_the_fit"])
    )
    verdict = "PASS" if figures["pass"] else "FAIL"
    print(f"iteration / plain = {figures['ratio']:.2f}× (target ≤ {figures['target']}×): {verdict}")
    last = figures["phases"][-1]
    print(f"plain phases: {json.dumps(last['plain_timings'])}")
    print(f"challenger phases: {json.dumps(last['challenger_timings'])}")
    print(f"decision: {last['decision']} ({last['reason']})")


if __name__ == "__main__":
    sys.exit(main())
