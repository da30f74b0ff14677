"""The pipeline's figures (issue 15), each beside a plain baseline measured in the same run.

Parts: ``inbox`` (benchmarks/pipeline_inbox.py: a dropped 20ng file → an endpoint answering
with its version, beside ``tagloop train``); ``import`` (benchmarks/pipeline_import.py: a zip
of SQLite dumps read through an import profile, beside a plain Python loop doing the same ETL).
``--part`` picks one; the default runs every part.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline_import  # sibling scripts, not a package
import pipeline_inbox

PARTS = {"import": pipeline_import.main, "inbox": pipeline_inbox.main}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=sorted(PARTS), action="append")
    args, rest = parser.parse_known_args()
    status = 0
    for part in args.part or sorted(PARTS):
        print(f"== {part} ==", file=sys.stderr)
        status = max(status, PARTS[part](rest))
    return status


if __name__ == "__main__":
    sys.exit(main())
