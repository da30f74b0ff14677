"""The unlabelled pool on 20ng: what adding a file and filling the review queue cost, next to
plain baselines measured in the same run.

1. ``PoolService.add`` of ``20ng_test.csv.gz`` (labels dropped; read, checked, hashed, deduped
   against the pool and verified texts, inserted) next to importing the same file as a
   training dataset (``services.datasets.import_dataset``: read, checked, inserted), each in
   its own transaction on the same database;
2. ``ReviewFill.fill`` of 50 picks with ``margin`` and with ``coreset`` (batch-aware) over the
   whole pool (read the pool, score it, choose, store the tasks and mark the documents) next
   to the model's plain ``scores`` of the same texts.

Timing is reported, never asserted. SQLite by default; ``--database-url`` for PostgreSQL.

    .venv/bin/python benchmarks/pool.py [--data-dir DIR] [--database-url URL] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tagloop.app import Tagloop
from tagloop.domain.formats import FormatSpec
from tagloop.domain.limits import Limits
from tagloop.domain.records import Mode, Split
from tagloop.services.datasets import ReadOptions, import_dataset
from tagloop.services.review_fill import ReviewFill
from tagloop.services.training import TrainRequest
from tagloop.settings import Settings
from tagloop.storage.repositories import ClassifierRepository

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"  # ../shared/data


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    train, pool_file = args.data_dir / "20ng_train.csv.gz", args.data_dir / "20ng_test.csv.gz"
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), database_url=args.database_url)
        tagloop = Tagloop(settings)
        if not tagloop.database.is_embedded:
            from tagloop.storage import migrate

            migrate.upgrade(tagloop.database)
        try:
            tagloop.training.train(TrainRequest(classifier="news", data=str(train)))
            adds, imports = [], []
            for _ in range(args.repeats):
                tagloop.pool.clear("news")
                seconds, report = timed(lambda: tagloop.pool.add("news", str(pool_file)))
                adds.append(seconds)

                def plain_import() -> None:
                    with tagloop.database.transaction() as session:
                        classifier = ClassifierRepository(session).get("news")
                        options = ReadOptions(
                            FormatSpec.infer(str(pool_file)), Mode.MULTI_CLASS, "|", Limits()
                        )
                        import_dataset(session, classifier, str(pool_file), options, Split.TEST)
                        session.rollback()  # measured up to the insert; nothing kept

                imports.append(timed(plain_import)[0])
            print(f"pool: {report['added']:,} documents added, {report['duplicates']:,} duplicates")
            rows.append(("pool add vs dataset import", statistics.median(adds), statistics.median(imports)))
            _, model = tagloop.predictions.model("news")
            texts = [doc["text"] for doc in tagloop.pool.list("news", limit=1_000)["documents"]]
            page = tagloop.pool.list("news", limit=1_000)
            while page["next_after"] is not None:
                page = tagloop.pool.list("news", limit=1_000, after=page["next_after"])
                texts += [doc["text"] for doc in page["documents"]]
            for strategy in ("margin", "coreset"):
                fills, scores = [], []
                for _ in range(args.repeats):
                    with tagloop.database.transaction() as session:  # put the picks back
                        from sqlalchemy import delete, update

                        from tagloop.storage.tables import DocumentRow, ReviewTaskRow

                        session.execute(update(DocumentRow).values(pool_task_id=None))
                        session.execute(delete(ReviewTaskRow))
                    fill = ReviewFill(tagloop.database, tagloop.models, seed=0)
                    fills.append(timed(lambda s=strategy, f=fill: f.fill("news", s, 50))[0])
                    scores.append(timed(lambda: model.scores(texts))[0])
                rows.append(
                    (
                        f"fill 50 ({strategy}) vs plain scores",
                        statistics.median(fills),
                        statistics.median(scores),
                    )
                )
        finally:
            tagloop.close()
    print(f"pool of {len(texts):,} documents, {args.repeats} repeats (medians), {tagloop.database.dialect}")
    print("| what | tagloop s | baseline s | ratio |")
    print("|---|---:|---:|---:|")
    for what, ours, baseline in rows:
        print(f"| {what} | {ours:.2f} | {baseline:.2f} | {ours / baseline:.2f} |")


if __name__ == "__main__":
    main()
