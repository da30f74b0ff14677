"""tagloop end to end next to a plain TF-IDF + LinearSVC baseline, on the shared benchmark sets.

For every dataset ``<name>_train.csv.gz`` / ``<name>_test.csv.gz`` in the data folder:

1. ``tagloop --data-dir TMP train NAME --data TRAIN --test TEST --json`` as a subprocess, timed
   as a whole (process start, import, validation, storage, fit, evaluation, save);
2. the plain baseline in this process (TF-IDF + ``LinearSVC``; one-vs-rest for multi-label),
   fit and predict timed separately;
3. ``tagloop classify NAME --json`` on the test texts from stdin, with process start-up and model
   load measured on a one-line input and subtracted.

Prints a markdown-ready table and the targets with PASS/FAIL. Timing is reported, never asserted:
the exit status is 0 unless something crashed (a tagloop command failed, a file was unreadable).

    .venv/bin/python benchmarks/train_eval.py [--data-dir DIR] [--datasets 20ng,bbc] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
MULTI_SUFFIX = "_multi"
DELIMITER = "|"
ONE_LINE_INPUT = "hello world\n"
TEXT_COLUMNS = {"dataset", "baseline", "target", "measured", "result"}

# Targets (see benchmarks/README.md).
E2E_TARGET_DATASET = "20ng"
E2E_MAX_RATIO = 1.5
THROUGHPUT_TARGET_DATASET = "20ng"
THROUGHPUT_MIN_RATIO = 0.8


class BenchError(Exception):
    """Something the benchmark cannot work around (missing data, a failing tagloop command)."""


# ---- data ------------------------------------------------------------------------------------
@dataclass
class Dataset:
    name: str
    train: Path
    test: Path

    @property
    def multi_label(self) -> bool:
        return self.name.endswith(MULTI_SUFFIX)

    @property
    def classifier(self) -> str:
        """A valid tagloop classifier name (letters, digits, hyphens): ``20ng_multi`` -> ``20ng-multi``."""
        return re.sub(r"[^A-Za-z0-9]+", "-", self.name).strip("-")[:63] or "dataset"


def discover(data_dir: Path) -> list[Dataset]:
    if not data_dir.is_dir():
        raise BenchError(
            f"data folder not found: {data_dir}\n"
            "  The benchmark sets live in ../shared/data relative to the repository root "
            "(pass --data-dir to use another folder)."
        )
    found = []
    for train in sorted(data_dir.glob("*_train.csv.gz")):
        name = train.name[: -len("_train.csv.gz")]
        test = data_dir / f"{name}_test.csv.gz"
        if test.is_file():
            found.append(Dataset(name, train, test))
        else:
            print(f"note: {train.name} has no matching {test.name}; skipped", file=sys.stderr)
    if not found:
        raise BenchError(f"no <name>_train.csv.gz / <name>_test.csv.gz pairs in {data_dir}")
    return found


def select(datasets: list[Dataset], wanted: list[str] | None) -> list[Dataset]:
    if not wanted:
        return datasets
    names = [n.strip() for item in wanted for n in item.split(",") if n.strip()]
    by_name = {d.name: d for d in datasets}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise BenchError(f"unknown dataset(s): {', '.join(unknown)}; available: {', '.join(by_name)}")
    return [by_name[n] for n in dict.fromkeys(names)]


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    """(labels, texts) of a Comprehend-format CSV: no header, label then text."""
    labels, texts = [], []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if len(row) < 2:
                raise BenchError(f"{path}:{line_no}: expected label,text; got {len(row)} field(s)")
            labels.append(row[0])
            texts.append(row[1])
    return labels, texts


# ---- tagloop subprocesses --------------------------------------------------------------------
def find_tagloop(explicit: str | None) -> str:
    candidates = [explicit] if explicit else []
    candidates += [str(Path(sys.executable).parent / "tagloop"), str(REPO_ROOT / ".venv" / "bin" / "tagloop")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    which = shutil.which("tagloop")
    if which and not explicit:
        return which
    raise BenchError(f"tagloop executable not found (tried {', '.join(c for c in candidates if c)})")


def clean_env() -> dict[str, str]:
    """The current environment without TAGLOOP_* settings, so --data-dir alone decides storage."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TAGLOOP_")}


@dataclass
class Run:
    seconds: float
    stdout: str
    stderr: str


def run_tagloop(argv: list[str], stdin: str | None = None) -> Run:
    started = time.perf_counter()
    proc = subprocess.run(
        argv,
        input=stdin.encode("utf-8") if stdin is not None else None,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=clean_env(),
        check=False,
    )
    seconds = time.perf_counter() - started
    out = proc.stdout.decode("utf-8", errors="replace")
    err = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        shown = " ".join(argv[:6]) + (" ..." if len(argv) > 6 else "")
        raise BenchError(f"`{shown}` exited with status {proc.returncode}:\n{err.strip()[-3000:]}")
    return Run(seconds, out, err)


def parse_json(run: Run, what: str) -> dict[str, Any]:
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"{what}: stdout is not JSON ({exc}): {run.stdout[:500]!r}") from exc


def measure_startup(tagloop: str) -> dict[str, float]:
    """Fixed costs of one tagloop process, to read the end-to-end figures against."""
    tmp = Path(tempfile.mkdtemp(prefix="tagloop-bench-startup-"))
    try:
        data = ["--data-dir", str(tmp / "data")]
        return {
            "help_s": min(run_tagloop([tagloop, "--help"]).seconds for _ in range(2)),
            "classifiers_new_data_dir_s": run_tagloop([tagloop, *data, "classifiers", "--json"]).seconds,
            "classifiers_s": min(
                run_tagloop([tagloop, *data, "classifiers", "--json"]).seconds for _ in range(2)
            ),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- baseline --------------------------------------------------------------------------------
def baseline(ds: Dataset, train: tuple[list[str], list[str]], test: tuple[list[str], list[str]]):
    """Plain scikit-learn pipeline, in this process. Returns a list of result rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer
    from sklearn.svm import LinearSVC

    (y_train, x_train), (y_test, x_test) = train, test
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    if not ds.multi_label:
        started = time.perf_counter()
        model = LinearSVC().fit(vectorizer.fit_transform(x_train), y_train)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        predicted = model.predict(vectorizer.transform(x_test))
        predict_s = time.perf_counter() - started
        return [
            {
                "variant": "LinearSVC",
                "accuracy": float(accuracy_score(y_test, predicted)),
                "macro_f1": float(f1_score(y_test, predicted, average="macro")),
                "micro_f1": None,
                "hamming": None,
                "fit_s": fit_s,
                "predict_s": predict_s,
                "docs_per_s": len(x_test) / predict_s,
            }
        ]

    binarizer = MultiLabelBinarizer()
    t_train = binarizer.fit_transform([y.split(DELIMITER) for y in y_train])
    # Labels unseen in training are ignored (with a warning from scikit-learn) as tagloop can't
    # predict them either; the sets here have none.
    t_test = binarizer.transform([y.split(DELIMITER) for y in y_test])
    started = time.perf_counter()
    model = OneVsRestClassifier(LinearSVC()).fit(vectorizer.fit_transform(x_train), t_train)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    decision = model.decision_function(vectorizer.transform(x_test))
    decision_s = time.perf_counter() - started

    rows = []
    for variant, threshold, at_least_one in (
        ("OvR LinearSVC, decision > 0", 0.0, False),
        ("OvR LinearSVC, decision > -0.3, >= 1 label", -0.3, True),
    ):
        started = time.perf_counter()
        chosen = (decision > threshold).astype(int)
        if at_least_one:
            empty = chosen.sum(axis=1) == 0
            chosen[empty, decision[empty].argmax(axis=1)] = 1
        predict_s = decision_s + (time.perf_counter() - started)
        rows.append(
            {
                "variant": variant,
                "accuracy": float(accuracy_score(t_test, chosen)),  # subset accuracy, as tagloop's
                "macro_f1": float(f1_score(t_test, chosen, average="macro", zero_division=0)),
                "micro_f1": float(f1_score(t_test, chosen, average="micro", zero_division=0)),
                "hamming": float(hamming_loss(t_test, chosen)),
                "fit_s": fit_s,
                "predict_s": predict_s,
                "docs_per_s": len(x_test) / predict_s,
            }
        )
    return rows


# ---- one dataset -----------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    multi_label: bool
    documents: dict[str, int] = field(default_factory=dict)
    tagloop: dict[str, Any] = field(default_factory=dict)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    classify: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "multi_label": self.multi_label,
            "documents": self.documents,
            "tagloop": self.tagloop,
            "baselines": self.baselines,
            "classify": self.classify,
            "problems": self.problems,
        }


def bench_dataset(ds: Dataset, tagloop: str, repeats: int, keep: bool) -> Result:
    result = Result(ds.name, ds.multi_label)
    train, test = read_csv(ds.train), read_csv(ds.test)
    result.documents = {"train": len(train[1]), "test": len(test[1])}
    for split, (_, texts) in (("train", train), ("test", test)):
        if any("\n" in t or "\r" in t for t in texts):
            raise BenchError(f"{ds.name} {split}: texts contain newlines; classify reads one per line")

    tmp = Path(tempfile.mkdtemp(prefix=f"tagloop-bench-{ds.name}-"))
    try:
        base = [tagloop, "--data-dir", str(tmp / "data")]

        # 1. end to end training
        log(f"[{ds.name}] tagloop train ...")
        argv = [*base, "train", ds.classifier, "--data", str(ds.train), "--test", str(ds.test), "--json"]
        if ds.multi_label:
            argv += ["--mode", "multi-label", "--delimiter", DELIMITER]
        trained = run_tagloop(argv)
        report = parse_json(trained, "tagloop train")
        metrics = report.get("metrics") or {}
        if report.get("status") != "TRAINED":
            result.problems.append(f"train status {report.get('status')!r}: {report.get('message')}")
        version = report.get("version", "v1")
        shown = parse_json(
            run_tagloop([*base, "versions", ds.classifier, version, "--json"]), "tagloop versions"
        )
        result.tagloop = {
            "e2e_s": trained.seconds,
            "accuracy": metrics.get("Accuracy"),
            "macro_f1": metrics.get("F1Score"),
            "micro_f1": metrics.get("MicroF1Score"),
            "hamming": metrics.get("HammingLoss"),
            "documents": report.get("documents"),
            "warnings": report.get("warnings") or [],
            "stderr": [line for line in trained.stderr.splitlines() if line.strip()],
            "timings": shown.get("timings") or {},
            "model": shown.get("model") or {},
        }
        expected_docs = {"train": len(train[1]), "test": len(test[1])}
        if report.get("documents") != expected_docs:
            result.problems.append(
                f"tagloop counted {report.get('documents')}, the files hold {expected_docs}"
            )

        # 2. baseline, in this process
        log(f"[{ds.name}] baseline ...")
        result.baselines = baseline(ds, train, test)

        # 3. classify throughput
        log(f"[{ds.name}] tagloop classify ...")
        classify = [*base, "classify", ds.classifier, "--json"]
        all_input = "".join(t + "\n" for t in test[1])
        one_runs = [run_tagloop(classify, ONE_LINE_INPUT) for _ in range(repeats)]
        all_runs = [run_tagloop(classify, all_input) for _ in range(repeats)]
        t_one = min(r.seconds for r in one_runs)
        best = min(all_runs, key=lambda r: r.seconds)
        t_all = best.seconds
        lines = best.stdout.splitlines()
        docs = len(test[1])
        throughput = docs / (t_all - t_one) if t_all > t_one else None
        info: dict[str, Any] = {
            "startup_s": t_one,
            "all_s": t_all,
            "docs": docs,
            "output_lines": len(lines),
            "docs_per_s": throughput,
        }
        if len(lines) != docs:
            result.problems.append(f"classify printed {len(lines)} lines for {docs} input lines")
        if throughput is None:
            result.problems.append("classify: the full run was not slower than the one-line run (noise)")
        errors = 0
        top_correct = 0
        for line, gold in zip(lines, test[0], strict=False):
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                errors += 1
                continue
            if "Error" in item:
                errors += 1
            elif not ds.multi_label and item.get("Classes"):
                top_correct += item["Classes"][0]["Name"] == gold
        info["error_lines"] = errors
        if errors:
            result.problems.append(f"classify: {errors} line(s) were errors or not JSON")
        if not ds.multi_label and docs:
            info["top1_accuracy"] = top_correct / docs
            if (
                result.tagloop["accuracy"] is not None
                and abs(info["top1_accuracy"] - result.tagloop["accuracy"]) > 1e-9
            ):
                result.problems.append(
                    f"classify top-1 accuracy {info['top1_accuracy']:.4f} differs from the training "
                    f"evaluation's {result.tagloop['accuracy']:.4f}"
                )
        result.classify = info
    finally:
        if keep:
            log(f"[{ds.name}] kept tagloop data in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


# ---- report ----------------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def markdown(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = [h not in TEXT_COLUMNS for h in header]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if right[i] else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def main_table(results: list[Result]) -> str:
    header = [
        "dataset",
        "TL acc",
        "TL macro-F1",
        "TL micro-F1",
        "TL Hamming",
        "TL e2e s",
        "baseline",
        "BL acc",
        "BL macro-F1",
        "BL micro-F1",
        "BL Hamming",
        "BL fit s",
        "BL fit+pred s",
        "e2e / BL fit+pred",
        "TL classify docs/s",
        "BL predict docs/s",
        "TL/BL docs/s",
    ]
    rows = []
    for r in results:
        tl, cl = r.tagloop, r.classify
        for i, bl in enumerate(r.baselines):
            fit_pred = bl["fit_s"] + bl["predict_s"]
            first = i == 0
            rows.append(
                [
                    r.name if first else f"{r.name} (alt)",
                    fmt(tl["accuracy"]) if first else "",
                    fmt(tl["macro_f1"]) if first else "",
                    fmt(tl["micro_f1"]) if first and r.multi_label else "",
                    fmt(tl["hamming"], 4) if first and r.multi_label else "",
                    fmt(tl["e2e_s"], 2) if first else "",
                    bl["variant"],
                    fmt(bl["accuracy"]),
                    fmt(bl["macro_f1"]),
                    fmt(bl["micro_f1"]) if r.multi_label else "",
                    fmt(bl["hamming"], 4) if r.multi_label else "",
                    fmt(bl["fit_s"], 2),
                    fmt(fit_pred, 2),
                    fmt(ratio(tl["e2e_s"], fit_pred), 2),
                    fmt_rate(cl.get("docs_per_s")),
                    fmt_rate(bl["docs_per_s"]),
                    fmt(ratio(cl.get("docs_per_s"), bl["docs_per_s"]), 2),
                ]
            )
    return markdown(header, rows)


def phase_table(results: list[Result]) -> str:
    header = [
        "dataset",
        "train docs",
        "test docs",
        "e2e s",
        "import s",
        "fit s",
        "(SVM fits+calib s)",
        "evaluate s",
        "save s",
        "total s",
        "outside total s",
        "classify 1 line s",
        "classify all s",
        "output lines",
    ]
    rows = []
    for r in results:
        t = r.tagloop.get("timings") or {}
        calibration = (r.tagloop.get("model") or {}).get("calibration") or {}
        total = t.get("total_seconds")
        rows.append(
            [
                r.name,
                str(r.documents.get("train", "-")),
                str(r.documents.get("test", "-")),
                fmt(r.tagloop["e2e_s"], 2),
                fmt(t.get("import_seconds"), 2),
                fmt(t.get("fit_seconds"), 2),
                fmt(calibration.get("fit_seconds"), 2),
                fmt(t.get("evaluate_seconds"), 2),
                fmt(t.get("save_seconds"), 2),
                fmt(total, 2),
                fmt(r.tagloop["e2e_s"] - total if total is not None else None, 2),
                fmt(r.classify.get("startup_s"), 2),
                fmt(r.classify.get("all_s"), 2),
                str(r.classify.get("output_lines", "-")),
            ]
        )
    return markdown(header, rows)


def targets(results: list[Result]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    for r in results:
        bl = r.baselines[0]  # for multi-label: the plain decision > 0 row
        for key, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
            ours, theirs = r.tagloop[key], bl[key]
            ok = ours is not None and ours >= theirs
            checks.append(
                {
                    "target": f"{r.name}: tagloop {label} >= baseline",
                    "value": f"{fmt(ours, 4)} vs {fmt(theirs, 4)}",
                    "pass": ok,
                }
            )
    by_name = {r.name: r for r in results}
    if E2E_TARGET_DATASET in by_name:
        r = by_name[E2E_TARGET_DATASET]
        fit_pred = r.baselines[0]["fit_s"] + r.baselines[0]["predict_s"]
        value = ratio(r.tagloop["e2e_s"], fit_pred)
        checks.append(
            {
                "target": f"{r.name}: tagloop e2e <= {E2E_MAX_RATIO}x baseline fit+predict",
                "value": f"{r.tagloop['e2e_s']:.2f} s vs {fit_pred:.2f} s = {fmt(value, 2)}x",
                "pass": value is not None and value <= E2E_MAX_RATIO,
            }
        )
    if THROUGHPUT_TARGET_DATASET in by_name:
        r = by_name[THROUGHPUT_TARGET_DATASET]
        ours, theirs = r.classify.get("docs_per_s"), r.baselines[0]["docs_per_s"]
        value = ratio(ours, theirs)
        checks.append(
            {
                "target": f"{r.name}: classify throughput >= {THROUGHPUT_MIN_RATIO}x baseline",
                "value": f"{fmt_rate(ours)} vs {fmt_rate(theirs)} docs/s = {fmt(value, 2)}x",
                "pass": value is not None and value >= THROUGHPUT_MIN_RATIO,
            }
        )
    return checks


def print_report(
    results: list[Result], checks: list[dict[str, Any]], skipped: dict[str, str], startup: dict[str, float]
) -> None:
    print()
    print("## tagloop (TL) vs plain TF-IDF + LinearSVC baseline (BL)")
    print()
    print(main_table(results))
    print()
    print(
        "TL e2e = wall time of the whole `tagloop train` process. BL fit = vectorize + fit, in-process.\n"
        "TL classify docs/s = test docs / (classify all - classify 1 line), i.e. start-up and model load\n"
        "excluded. BL predict docs/s = test docs / (vectorize test + predict). Multi-label accuracy is\n"
        "subset accuracy; '(alt)' rows are the threshold -0.3 / at-least-one-label baseline variant."
    )
    print()
    print("## tagloop phases (from `tagloop versions NAME v1 --json` timings) and classify runs")
    print()
    print(phase_table(results))
    print()
    print(
        "'(SVM fits+calib s)' is model.calibration.fit_seconds: part of 'fit s', covering the final and\n"
        "hold-out linear models and the calibration. 'outside total s' = e2e - total_seconds (process\n"
        "start, imports, storage set-up, output)."
    )
    print()
    if startup:
        print(
            f"tagloop process start-up alone: `--help` {startup['help_s']:.2f} s; `classifiers --json` "
            f"(imports the app, opens the store) {startup['classifiers_s']:.2f} s, "
            f"{startup['classifiers_new_data_dir_s']:.2f} s on a new data folder."
        )
        print()
    print("## targets")
    print()
    print(
        markdown(
            ["target", "measured", "result"],
            [[c["target"], c["value"], "PASS" if c["pass"] else "FAIL"] for c in checks],
        )
    )
    print()
    notes = []
    for r in results:
        notes += [f"{r.name}: tagloop warning: {w}" for w in r.tagloop.get("warnings", [])]
        notes += [f"{r.name}: PROBLEM: {p}" for p in r.problems]
    notes += [f"{name}: CRASHED: {why}" for name, why in skipped.items()]
    if notes:
        print("## notes")
        print()
        for note in notes:
            print(f"- {note}")
        print()
    print(
        f"host: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()} · "
        "timings are single runs on a shared machine: noisy"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder with <name>_train.csv.gz / <name>_test.csv.gz (default: ../shared/data from the repo)",
    )
    parser.add_argument(
        "--datasets", nargs="+", metavar="NAME", help="subset to run, e.g. --datasets 20ng bbc or 20ng,bbc"
    )
    parser.add_argument("--out", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--tagloop", help="tagloop executable (default: next to this Python, then .venv/bin)")
    parser.add_argument("--repeats", type=int, default=1, help="classify runs per input; the fastest counts")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tagloop data folders")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    try:
        datasets = select(discover(args.data_dir.resolve()), args.datasets)
        tagloop = find_tagloop(args.tagloop)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    log(
        f"data: {args.data_dir.resolve()} · datasets: {', '.join(d.name for d in datasets)}"
        f" · tagloop: {tagloop}"
    )
    results: list[Result] = []
    crashed: dict[str, str] = {}
    startup: dict[str, float] = {}
    try:
        startup = measure_startup(tagloop)
    except BenchError as exc:
        log(f"error: {exc}")
        crashed["start-up"] = " / ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    for ds in datasets:
        try:
            results.append(bench_dataset(ds, tagloop, args.repeats, args.keep))
        except BenchError as exc:
            log(f"[{ds.name}] error: {exc}")
            crashed[ds.name] = " / ".join(line.strip() for line in str(exc).splitlines() if line.strip())

    checks = targets(results)
    print_report(results, checks, crashed, startup)
    if args.out:
        payload = {
            "data_dir": str(args.data_dir.resolve()),
            "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "startup": startup,
            "results": [r.as_dict() for r in results],
            "targets": checks,
            "crashed": crashed,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        log(f"results written to {args.out}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
