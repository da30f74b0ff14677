"""Reading input files: a truncated or damaged compressed file is refused with its name and why."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma

import pytest

from tagloop.errors import DatasetInvalid, InvalidRequest
from tagloop.services.training import TrainRequest


def _ticket_bytes(tickets) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(tickets)
    return buffer.getvalue().encode()


def _damaged(kind: str, data: bytes) -> bytes:
    """``data`` compressed, then cut in half (truncated) or with two bytes flipped mid-stream."""
    compress = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}
    compressed = compress[kind.split("-")[0]](data)
    if kind.endswith("-truncated"):
        return compressed[: len(compressed) // 2]
    if kind.endswith("-flipped"):
        middle = len(compressed) // 2
        return (
            compressed[:middle]
            + bytes([compressed[middle] ^ 0xFF, compressed[middle + 1] ^ 0xFF])
            + (compressed[middle + 2 :])
        )
    return b"LABEL,not compressed at all\n" * 50  # "-plain": a text file named as compressed


@pytest.mark.parametrize(
    "kind",
    ["gz-truncated", "gz-flipped", "gz-plain", "bz2-truncated", "bz2-plain", "xz-truncated", "xz-flipped"],
)
def test_training_on_a_damaged_compressed_file_names_the_file(make_tagloop, tickets, tmp_path, kind):
    suffix = kind.split("-")[0]
    source = tmp_path / f"data.csv.{suffix}"
    source.write_bytes(_damaged(kind, _ticket_bytes(tickets)))
    tagloop = make_tagloop()
    with pytest.raises(DatasetInvalid) as raised:
        tagloop.training.train(TrainRequest(classifier="desk", data=str(source)))
    message = raised.value.message
    assert message.startswith(f"{source}: compressed file is truncated or damaged ("), message
    assert isinstance(raised.value, InvalidRequest)  # the caller's file, not a server fault
    assert tagloop.catalog.classifiers() == []  # nothing of the file was kept


def test_evaluating_on_a_truncated_file_names_the_file(make_tagloop, tickets, tmp_path):
    tagloop = make_tagloop()
    good = tmp_path / "tickets.csv.gz"
    good.write_bytes(gzip.compress(_ticket_bytes(tickets)))
    tagloop.training.train(TrainRequest(classifier="desk", data=str(good)))  # a whole .gz reads fine
    truncated = tmp_path / "holdout.csv.gz"
    truncated.write_bytes(_damaged("gz-truncated", _ticket_bytes(tickets)))
    with pytest.raises(DatasetInvalid, match=r"holdout\.csv\.gz: compressed file is truncated or damaged"):
        tagloop.predictions.evaluate("desk", str(truncated))
