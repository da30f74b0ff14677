"""Amazon Comprehend's vocabulary for predictions (domain/comprehend.py)."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from tagloop.domain import comprehend
from tagloop.domain.predictions import Prediction, ranked
from tagloop.domain.records import Mode
from tagloop.errors import InvalidRequest, LimitExceeded, NotFound, TagloopError

MC = Mode.MULTI_CLASS
ML = Mode.MULTI_LABEL


def test_a_multi_class_result_lists_classes_best_first():
    prediction = Prediction(["HARDWARE", "NETWORK", "BILLING"], [0.75, 0.2, 0.05], MC)
    result = comprehend.result(prediction)
    assert result == {
        "Classes": [
            {"Name": "HARDWARE", "Score": 0.75},
            {"Name": "NETWORK", "Score": 0.2},
            {"Name": "BILLING", "Score": 0.05},
        ]
    }
    assert all(list(entry) == ["Name", "Score"] for entry in result["Classes"])
    # what the prediction log stores: these bytes, as before the record existed
    assert orjson.dumps(result) == (
        b'{"Classes":[{"Name":"HARDWARE","Score":0.75},{"Name":"NETWORK","Score":0.2},'
        b'{"Name":"BILLING","Score":0.05}]}'
    )


def test_a_multi_label_result_lists_the_assigned_labels():
    assert comprehend.result(Prediction(["NET", "HW"], [0.9, 0.6], ML)) == {
        "Labels": [{"Name": "NET", "Score": 0.9}, {"Name": "HW", "Score": 0.6}]
    }
    assert comprehend.result(Prediction([], [], ML)) == {"Labels": []}


def test_results_of_ranked_scores_have_plain_floats_and_serialize():
    scores = np.array([[0.2, 0.5, 0.3]], dtype=np.float32)
    (classes,) = ranked(["a", "b", "c"], MC, scores, [[1]], top=2)
    (labels,) = ranked(["a", "b", "c"], ML, scores, [[1, 2]], top=None)
    for result in (comprehend.result(classes), comprehend.result(labels)):
        entries = result.get("Classes") or result["Labels"]
        assert [entry["Name"] for entry in entries] == ["b", "c"]
        assert all(type(entry["Score"]) is float for entry in entries)
        assert json.loads(json.dumps(result)) == result


def test_a_failed_prediction_has_no_result():
    with pytest.raises(ValueError, match="could not be classified"):
        comprehend.result(Prediction.failed(MC, InvalidRequest("empty text")))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequest("x"), "InvalidRequestException"),
        (LimitExceeded("x"), "TextSizeLimitExceededException"),
        (NotFound("x"), "ResourceNotFoundException"),
        (TagloopError("x"), "InternalServerException"),
    ],
)
def test_error_codes_are_comprehends_names(error, code):
    assert comprehend.error_code(error) == code
    assert comprehend.client_error(error) == {"Error": {"Code": code, "Message": "x"}}


def test_batch_output_lines_follow_comprehend():
    prediction = Prediction(["HW", "NET"], [0.6, 0.4], MC)
    assert comprehend.output_line(prediction, "a.txt", 0) == {
        "File": "a.txt",
        "Line": 0,
        "Classes": [{"Name": "HW", "Score": 0.6}, {"Name": "NET", "Score": 0.4}],
    }
    labelled = Prediction(["NET"], [0.9], ML)
    assert comprehend.output_line(labelled, "docs/1.txt", None) == {  # one document per file: no Line
        "File": "docs/1.txt",
        "Labels": [{"Name": "NET", "Score": 0.9}],
    }
    failed = Prediction.failed(MC, LimitExceeded("text is too long"))
    line = comprehend.output_line(failed, "a.txt", 7)
    assert line == {
        "File": "a.txt",
        "Line": 7,
        "ErrorCode": "TextSizeLimitExceededException",
        "ErrorMessage": "text is too long",
    }
    assert list(line) == ["File", "Line", "ErrorCode", "ErrorMessage"]


def test_a_stored_result_reads_back_as_its_mode_and_entries():
    from tagloop.domain.comprehend import scored

    classes = {"Classes": [{"Name": "A", "Score": 0.75}, {"Name": "B", "Score": 0.25}]}
    labels = {"Labels": [{"Name": "X", "Score": 0.9}]}
    assert scored(classes) == (Mode.MULTI_CLASS, [("A", 0.75), ("B", 0.25)])
    assert scored(labels) == (Mode.MULTI_LABEL, [("X", 0.9)])
    assert scored({"Classes": []}) == (Mode.MULTI_CLASS, [])
