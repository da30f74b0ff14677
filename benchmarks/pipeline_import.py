"""The pipeline of issue 15, measured next to plain baselines in the same run.

Part ``import`` (import profiles): a zip of per-project ``<project>.sqlite3.bz2`` dumps holding
``--rows`` issues in all (default 200,000; table ``issue(type, summary, description)``, half of
them Bugs), read with the documented recipe's ETL: the Bug rows' summary + " " + description,
labelled with the project from the member's name.

1. **plain**: a Python loop (``zipfile`` + ``bz2`` + ``sqlite3`` + ``csv``): each member
   decompressed to a temporary file, the query run, ``LABEL,text`` rows written to a CSV;
2. **profile**: the same through an import profile (``ProfileReader``: archive rules, bomb
   limits, read-only SQLite, row limit, timeout) and ``DatasetValidator`` (every row checked:
   text, label, size limits, duplicates, fingerprint), the valid rows written to the same CSV;
3. **profile import**: ``import_dataset`` with the profile into a fresh embedded database (what
   ``tagloop train --profile`` does before fitting: read, check, insert in one transaction).

Each runs in its own process (so its peak RSS is its own, printed: memory must not grow with
the rows), ``--repeats`` times; the fastest counts. The target: profile ≥ 0.8 × plain rows/s.
Both sides run the filter in the query (``WHERE type = 'Bug'``); rows/s counts the rows of the
dumps (all of them are read by the query's scan).

    .venv/bin/python benchmarks/pipeline.py --part import [--rows 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import bz2
import csv
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

PROJECTS = ("hadoop", "spark", "kafka", "hive", "hbase", "flink", "cassandra", "zookeeper")
QUERY = "SELECT summary, description FROM issue WHERE type = 'Bug'"
TARGET = 0.8


# ---- part "import" ---------------------------------------------------------------------
def make_archive(path: Path, rows: int, seed: int = 0) -> None:
    """``path``: a zip of one bz2-compressed SQLite dump per project, ``rows`` issues in all."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(3000)]
    per = rows // len(PROJECTS)
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for number, project in enumerate(PROJECTS):
            count = per if number < len(PROJECTS) - 1 else rows - per * (len(PROJECTS) - 1)
            database = Path(folder) / f"{project}.sqlite3"
            connection = sqlite3.connect(database)
            connection.execute(
                "CREATE TABLE issue (id INTEGER PRIMARY KEY, type TEXT, summary TEXT, description TEXT)"
            )
            connection.executemany(
                "INSERT INTO issue (type, summary, description) VALUES (?, ?, ?)",
                (
                    (
                        "Bug" if i % 2 == 0 else rng.choice(("Improvement", "Task")),
                        f"{project} " + " ".join(rng.choices(words, k=6)),
                        " ".join(rng.choices(words, k=rng.randint(20, 60))),
                    )
                    for i in range(count)
                ),
            )
            connection.commit()
            connection.close()
            with open(database, "rb") as raw, archive.open(f"{project}.sqlite3.bz2", "w") as member:
                compressor = bz2.BZ2Compressor(9)
                while chunk := raw.read(1 << 20):
                    member.write(compressor.compress(chunk))
                member.write(compressor.flush())


def plain_etl(archive: Path, out: Path) -> int:
    """The baseline: zipfile + bz2 + sqlite3 + csv, as a pipeline's function would do it."""
    written = 0
    with zipfile.ZipFile(archive) as zipped, open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for info in zipped.infolist():
            label = info.filename.split(".", 1)[0].upper()
            with tempfile.TemporaryDirectory() as folder:
                database = os.path.join(folder, "member.sqlite3")
                with (
                    zipped.open(info) as member,
                    bz2.BZ2File(member) as unpacked,
                    open(database, "wb") as copy,
                ):
                    shutil.copyfileobj(unpacked, copy, 1 << 20)
                connection = sqlite3.connect(database)
                for summary, description in connection.execute(QUERY):
                    writer.writerow((label, f"{summary} {description}"))
                    written += 1
                connection.close()
    return written


def profile_etl(archive: Path, out: Path) -> int:
    """The same through an import profile and the validator, valid rows written as CSV."""
    from tagloop.domain.limits import Limits
    from tagloop.domain.profiles import ProfileSpec
    from tagloop.domain.records import Mode
    from tagloop.domain.validation import DatasetValidator
    from tagloop.services.profiles import ImportLimits, ProfileReader

    spec = ProfileSpec.from_dict(
        {"query": QUERY, "text_columns": ["summary", "description"], "label_from": "member"}
    )
    reader = ProfileReader("bench", spec, ImportLimits())
    validator = DatasetValidator(str(archive), Mode.MULTI_CLASS, Limits())
    written = 0
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for row in validator.rows(reader.rows(str(archive))):
            writer.writerow((row.labels[0], row.text))
            written += 1
    validator.finish()
    return written


def profile_import(archive: Path, out: Path) -> int:
    """``import_dataset`` through the profile into a fresh embedded database."""
    from tagloop.app import Tagloop
    from tagloop.domain.formats import FormatSpec
    from tagloop.domain.limits import Limits
    from tagloop.domain.records import Mode, Split
    from tagloop.services.catalog import get_or_create_classifier
    from tagloop.services.datasets import ReadOptions, import_dataset
    from tagloop.settings import Settings

    tagloop = Tagloop(Settings(data_dir=out.parent / "tagloop-data"))
    try:
        tagloop.profiles.put(
            "issues",
            "bugs",
            {"query": QUERY, "text_columns": ["summary", "description"], "label_from": "member"},
        )
        reader = tagloop.profiles.reader("bugs", tagloop.profiles.get("issues", "bugs"))
        options = ReadOptions(
            FormatSpec(), Mode.MULTI_CLASS, "|", Limits(), rows=reader.rows, format_name=reader.format_name
        )
        with tagloop.database.transaction() as session:
            classifier = get_or_create_classifier(session, "issues", Mode.MULTI_CLASS, "|")
            _, report = import_dataset(session, classifier, str(archive), options, Split.TRAIN)
        return report.documents
    finally:
        tagloop.close()


RUNS: dict[str, Callable[[Path, Path], int]] = {
    "plain": plain_etl,
    "profile": profile_etl,
    "profile-import": profile_import,
}


def run_child(name: str, archive: Path) -> dict[str, float]:
    """One measured run in a fresh process: seconds, rows written, peak RSS (MiB)."""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                "--archive",
                str(archive),
                "--out",
                str(Path(folder) / "out.csv"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(name: str, archive: Path, out: Path) -> None:
    if name != "plain":  # tagloop's modules imported before the clock starts, as in a running server
        import tagloop.app
        import tagloop.services.profiles  # noqa: F401
    imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    written = RUNS[name](archive, out)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "seconds": seconds,
        "cpu": cpu,
        "written": written,
        "peak_rss_mib": peak,
        "imported_mib": imported,
    }
    print(json.dumps(result))


def import_part(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "issues.zip"
        start = time.perf_counter()
        make_archive(archive, args.rows)
        print(
            f"archive: {len(PROJECTS)} SQLite dumps (.sqlite3.bz2), {args.rows:,} rows, "
            f"{archive.stat().st_size / 1e6:.1f} MB; made in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for name in RUNS:  # interleaved, so load from other processes hits both sides alike
                run = run_child(name, archive)
                if name not in best or run["seconds"] < best[name]["seconds"]:
                    best[name] = run
        written = {run["written"] for run in best.values()}
        assert len(written) == 1, f"the runs wrote different row counts: {best}"
        print(
            f"{'run':<16}{'seconds':>9}{'rows/s':>10}{'CPU s':>8}{'rows out':>10}"
            f"{'peak RSS (after imports)':>26}"
        )
        for name, run in best.items():
            print(
                f"{name:<16}{run['seconds']:>9.2f}{args.rows / run['seconds']:>10,.0f}{run['cpu']:>8.2f}"
                f"{int(run['written']):>10,}{run['peak_rss_mib']:>10.0f} MiB ({run['imported_mib']:.0f} MiB)"
            )
        plain = best["plain"]
        for name in ("profile", "profile-import"):
            ratio = plain["seconds"] / best[name]["seconds"]
            cpu_ratio = plain["cpu"] / best[name]["cpu"]
            verdict = ("PASS" if ratio >= TARGET else "FAIL") if name == "profile" else "(no target)"
            print(
                f"{name} rows/s / plain rows/s: {ratio:.2f}x (by CPU time {cpu_ratio:.2f}x); "
                f"target >= {TARGET}x for profile: {verdict}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=list(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--archive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.child:
        child(args.child, args.archive, args.out)
        return 0
    import_part(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
