"""Batch classification throughput: local adapter, Procrastinate with 1 and 2 worker processes,
next to a plain in-process scoring loop over the same texts, all in one run.

Input: the 20ng test texts repeated to at least --docs lines (ONE_DOC_PER_LINE). Targets:
local adapter with one worker ≥ 0.7× the plain loop; 2 Procrastinate workers faster than 1.
Needs the local PostgreSQL server (TAGLOOP_BENCH_POSTGRES_URL); a scratch database is made
and dropped. The machine's cores bound what 2 workers can gain: print them with the results.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import scratch_postgres

ROOT = Path(__file__).resolve().parents[1]
TAGLOOP = [sys.executable, "-m", "tagloop.cli"]


def tagloop(data_dir: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [*TAGLOOP, "--data-dir", str(data_dir), *args], capture_output=True, text=True, env=env, timeout=3600
    )
    if result.returncode != 0:
        raise SystemExit(f"tagloop {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def count_output(folder: Path) -> int:
    seen = set()
    for part in folder.glob("part-*.jsonl"):
        with part.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                seen.add((record["File"], record["Line"]))
    return len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--shard-documents", type=int, default=20_000)
    args = parser.parse_args()
    train, test = args.data_dir / "20ng_train.csv.gz", args.data_dir / "20ng_test.csv.gz"
    if not train.exists():
        raise SystemExit(f"missing {train}")
    with gzip.open(test, "rt", encoding="utf-8", newline="") as handle:
        texts = [row[1] for row in csv.reader(handle)]
    repeated = (texts * (args.docs // len(texts) + 1))[: max(args.docs, len(texts))]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAGLOOP_")}
    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres() as postgres:
        work = Path(tmp)
        source = work / "input.txt"
        source.write_text("\n".join(repeated) + "\n", encoding="utf-8")
        megabytes = source.stat().st_size / 1e6
        print(f"input: {len(repeated):,} documents, {megabytes:.0f} MB; cores: {os.cpu_count()}")

        local_env = {**clean, "TAGLOOP_JOB_WORKERS": "1"}
        tagloop(work / "local", local_env, "train", "news", "--data", str(train), "--test", str(test))

        # plain loop: the same model, scored in-process, no jobs, no files
        sys.path.insert(0, str(ROOT / "src"))
        from tagloop.app import Tagloop
        from tagloop.settings import Settings

        app = Tagloop(Settings(data_dir=work / "local"))
        _, model = app.predictions.model("news")
        started = time.perf_counter()
        for start in range(0, len(repeated), 2_000):
            model.scores(repeated[start : start + 2_000]).argmax(axis=1)
        plain = time.perf_counter() - started
        app.close()
        rows.append(("plain in-process scoring loop", 1, plain))

        started = time.perf_counter()
        shards = ("--shard-documents", str(args.shard_documents))
        tagloop(
            work / "local",
            local_env,
            "batch",
            "news",
            "--input",
            str(source),
            "--output",
            str(work / "out-local"),
            *shards,
        )
        rows.append(("local adapter (tagloop batch)", 1, time.perf_counter() - started))
        assert count_output(next((work / "out-local").iterdir())) == len(repeated)

        pg_env = {**clean, "TAGLOOP_DATABASE_URL": postgres, "TAGLOOP_JOBS": "procrastinate"}
        tagloop(work / "pg", pg_env, "db", "upgrade")
        tagloop(work / "pg", pg_env, "train", "news", "--data", str(train), "--test", str(test))
        for workers in (1, 2):
            processes = [
                subprocess.Popen(
                    [*TAGLOOP, "--data-dir", str(work / "pg"), "worker", "--concurrency", "1"],
                    env=pg_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(workers)
            ]
            time.sleep(3)  # workers started and listening
            output = work / f"out-pg-{workers}"
            started = time.perf_counter()
            batch_args = ("batch", "news", "--input", str(source), "--output", str(output), *shards)
            submitted = tagloop(work / "pg", pg_env, *batch_args, "--background", "--json")
            job_id = json.loads(submitted)["id"]
            sys.path.insert(0, str(ROOT / "src"))
            watcher = Tagloop(Settings(data_dir=work / "pg", database_url=postgres, jobs="procrastinate"))
            status = watcher.queue.wait(job_id, timeout=3600)
            elapsed = time.perf_counter() - started
            watcher.close()
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            if status != "COMPLETED":
                raise SystemExit(f"batch on {workers} Procrastinate worker(s) ended {status}")
            assert count_output(output / job_id) == len(repeated)
            rows.append((f"Procrastinate, {workers} worker process(es)", workers, elapsed))

    print("\n| mode | workers | seconds | docs/s | vs plain loop |")
    print("|---|---:|---:|---:|---:|")
    for mode, workers, seconds in rows:
        rate = len(repeated) / seconds
        print(f"| {mode} | {workers} | {seconds:.1f} | {rate:,.0f} | {plain / seconds:.2f}× |")
    local, one, two = rows[1][2], rows[2][2], rows[3][2]
    print("\nbatch seconds: submit to COMPLETED, including process start, planning, shards and writing;")
    print("every output was checked: each (File, Line) exactly once.")
    verdict = "PASS" if plain / local >= 0.7 else "FAIL"
    print(f"target local ≥ 0.7× plain loop: {plain / local:.2f}× → {verdict}")
    verdict = "PASS" if two < one else "FAIL"
    print(f"target 2 Procrastinate workers faster than 1: {one:.1f} s vs {two:.1f} s → {verdict}")


if __name__ == "__main__":
    main()
