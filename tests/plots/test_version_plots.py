"""Reliability diagram, score histogram, per-label bars, iterations: valid SVG, their labels
and counts, alt text."""

from __future__ import annotations

import pytest

from tagloop.plots.iterations import IterationPoint, metric_over_iterations
from tagloop.plots.per_label import per_label_bars, per_label_comparison
from tagloop.plots.reliability import reliability_diagram
from tagloop.plots.scores import score_histogram

PER_LABEL = {
    "ACCESS": {"precision": 1.0, "recall": 0.9, "f1": 0.95, "support": 10},
    "NETWORK": {"precision": 0.5, "recall": 0.3, "f1": 0.375, "support": 7},
}


def test_the_reliability_diagram_counts_each_bin(parse):
    drawn = parse(reliability_diagram([0.05, 0.92, 0.95, 0.97], [False, True, True, False]))
    assert "1" in drawn.texts and "3" in drawn.texts  # the pairs in the two filled bins
    assert drawn.title.startswith("Reliability diagram over 4 scores in 10 bins: expected calibration error")
    assert any(t.startswith("reliability (ECE") for t in drawn.texts)
    assert {"score", "share of right answers"} <= set(drawn.texts)


def test_the_score_histogram_says_how_many_were_right(parse):
    drawn = parse(score_histogram([0.3, 0.9, 0.95], [False, True, True]))
    assert (
        drawn.title
        == "Histogram of the best score of 3 test documents: 2 right, 1 wrong, median best score 0.90."
    )
    assert {"right", "wrong", "best score"} <= set(drawn.texts)
    with pytest.raises(ValueError):
        score_histogram([0.3], [True, False])


def test_per_label_bars_put_the_worst_label_first(parse):
    drawn = parse(per_label_bars(PER_LABEL))
    assert drawn.texts.index("NETWORK (7)") < drawn.texts.index("ACCESS (10)")
    assert (
        drawn.title == "Precision, recall and F1 of 2 labels; lowest F1: NETWORK 0.38, highest: ACCESS 0.95."
    )
    assert {"precision", "recall", "F1"} <= set(drawn.texts)


def test_two_versions_per_label_f1(parse):
    newer = {**PER_LABEL, "NETWORK": {**PER_LABEL["NETWORK"], "f1": 0.6}, "NEW": PER_LABEL["ACCESS"]}
    drawn = parse(per_label_comparison("v1", PER_LABEL, "v2", newer))
    assert drawn.title == "F1 per label of v1 and v2: v2 is better on 2 and worse on 0 of 3 labels."
    assert {"v1", "v2", "NEW", "NETWORK", "ACCESS"} <= set(drawn.texts)
    assert drawn.texts.index("NEW") < drawn.texts.index("ACCESS")  # largest change first


def test_metric_over_iterations_marks_the_promoted(parse):
    points = [
        IterationPoint("20261201T100000Z", None, 0.7, True),
        IterationPoint("20261201T110000Z", 0.7, 0.68, False),
        IterationPoint("20261201T120000Z", 0.7, 0.75, True),
    ]
    drawn = parse(metric_over_iterations(points, "F1Score"))
    assert drawn.title == "F1Score over 3 iterations, 2 promoted; last challenger 0.750."
    assert {"champion", "challenger", "promoted", "F1Score", "20261201T110000Z"} <= set(drawn.texts)
