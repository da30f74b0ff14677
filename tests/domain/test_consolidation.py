from fractions import Fraction

import pytest
from sklearn.metrics import cohen_kappa_score

from tagloop.domain.consolidation import (
    Answer,
    Outcome,
    ReviewerAgreement,
    Status,
    category_counts,
    cohen_kappa,
    consolidate,
    fleiss_kappa,
    krippendorff_alpha,
    label_alpha,
    moderate,
    observed_agreement,
    reviewer_agreement,
)
from tagloop.domain.records import Mode
from tagloop.errors import InvalidRequest

MC, ML = Mode.MULTI_CLASS, Mode.MULTI_LABEL


def ans(reviewer: str, *labels: str) -> Answer:
    return Answer(reviewer, tuple(labels), seconds=3.0, accepted=False)


# --- consolidation ---------------------------------------------------------------------------


def test_one_answer_required_is_final():
    outcome = consolidate([ans("r1", "sport")], 1, MC)
    assert outcome.status is Status.CONSOLIDATED and outcome.final and not outcome.needs_moderator
    assert outcome.labels == ("sport",)
    assert outcome.votes == {"sport": 1}


def test_pending_until_enough_answers():
    outcome = consolidate([ans("r1", "sport")], 3, MC)
    assert outcome.status is Status.PENDING and outcome.labels is None and not outcome.final
    assert consolidate([], 1, MC).status is Status.PENDING


def test_multi_class_majority():
    outcome = consolidate([ans("r1", "sport"), ans("r2", "tech"), ans("r3", "sport")], 3, MC)
    assert outcome.status is Status.CONSOLIDATED
    assert outcome.labels == ("sport",)
    assert outcome.votes == {"sport": 2, "tech": 1}


def test_multi_class_ties_go_to_the_moderator():
    two = consolidate([ans("r1", "sport"), ans("r2", "tech")], 2, MC)
    assert two.needs_moderator and two.labels is None and two.tied == ("sport", "tech")
    three = consolidate([ans("r1", "a"), ans("r2", "b"), ans("r3", "c")], 3, MC)
    assert three.needs_moderator and three.tied == ("a", "b", "c")


def test_multi_label_per_label_majority():
    answers = [ans("r1", "a", "b"), ans("r2", "a"), ans("r3", "a", "b", "c")]
    outcome = consolidate(answers, 3, ML)
    assert outcome.status is Status.CONSOLIDATED
    assert outcome.labels == ("a", "b")  # c: 1 of 3, not more than half
    assert outcome.votes == {"a": 3, "b": 2, "c": 1}


def test_multi_label_no_label_is_a_valid_answer():
    outcome = consolidate([ans("r1"), ans("r2"), ans("r3", "a")], 3, ML)
    assert outcome.status is Status.CONSOLIDATED and outcome.labels == ()


def test_multi_label_half_is_a_tie():
    outcome = consolidate([ans("r1", "a", "b"), ans("r2", "a")], 2, ML)
    assert outcome.needs_moderator and outcome.labels is None and outcome.tied == ("b",)


def test_moderator_decides_finally():
    tie = consolidate([ans("r1", "sport"), ans("r2", "tech")], 2, MC)
    final = moderate(tie, ("tech",), MC)
    assert final.status is Status.MODERATED and final.final and final.labels == ("tech",)
    assert final.votes == tie.votes
    # a moderator can overrule a majority too (end-user feedback)
    majority = consolidate([ans("r1", "a"), ans("r2", "a"), ans("r3", "b")], 3, MC)
    assert moderate(majority, ("c",), MC).labels == ("c",)
    assert moderate(tie, ("x", "y"), ML).labels == ("x", "y")
    with pytest.raises(InvalidRequest, match="exactly one label"):
        moderate(tie, ("a", "b"), MC)
    with pytest.raises(InvalidRequest, match="tuple of label names"):
        moderate(tie, ["a"], MC)  # type: ignore[arg-type]


@pytest.mark.parametrize("required", [0, 4, -1, True, 1.5])
def test_required_answers_are_1_to_3(required):
    with pytest.raises(InvalidRequest, match="required"):
        consolidate([ans("r1", "a")], required, MC)


def test_bad_answers_are_refused():
    with pytest.raises(InvalidRequest, match="twice"):
        consolidate([ans("r1", "a"), ans("r1", "b")], 2, MC)
    with pytest.raises(InvalidRequest, match="exactly one label"):
        consolidate([ans("r1", "a", "b")], 1, MC)
    with pytest.raises(InvalidRequest, match="exactly one label"):
        consolidate([ans("r1")], 1, MC)
    with pytest.raises(InvalidRequest, match="chosen twice"):
        consolidate([ans("r1", "a", "a")], 1, ML)
    with pytest.raises(InvalidRequest, match="tuple of label names"):
        consolidate([ans("r1", "")], 1, ML)


# --- agreement: worked examples --------------------------------------------------------------

# Wikipedia, "Cohen's kappa", worked example: 50 proposals, Yes/Yes 20, Yes/No 5, No/Yes 10,
# No/No 15: p_o = 0.7, p_e = 0.5, kappa = 0.4.
COHEN_A = ["yes"] * 25 + ["no"] * 25
COHEN_B = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15


def test_cohen_kappa_worked_example():
    assert cohen_kappa(COHEN_A, COHEN_B) == pytest.approx(0.4, abs=1e-12)
    assert observed_agreement(COHEN_A, COHEN_B) == pytest.approx(0.7)


def test_cohen_kappa_matches_scikit_learn():
    a = ["a", "b", "c", "a", "a", "b", "c", "c", "a", "b", "b", "a"]
    b = ["a", "b", "b", "a", "c", "b", "c", "a", "a", "b", "c", "a"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_cohen_kappa_degenerate_cases():
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # both raters always "a": undefined
    assert observed_agreement(["a", "a"], ["a", "a"]) == 1.0
    assert observed_agreement([], []) is None
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert cohen_kappa(["a", "b"], ["b", "a"]) == -1.0
    with pytest.raises(InvalidRequest, match="2 and 1"):
        cohen_kappa(["a", "b"], ["a"])


# Fleiss (1971) as tabulated on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters,
# 5 categories; P̄ = 688/1820, P̄_e = 4170/19600, kappa ≈ 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example():
    p_bar, p_e = Fraction(688, 1820), Fraction(4170, 19600)
    exact = float((p_bar - p_e) / (1 - p_e))
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(exact, abs=1e-15)
    assert round(exact, 3) == 0.210


def test_fleiss_kappa_of_two_raters_is_scotts_pi():
    # with two raters Fleiss' kappa is Scott's pi: p_e from the pooled shares
    a = ["a", "a", "b", "b", "a"]
    b = ["a", "b", "b", "b", "a"]
    pooled_a = Fraction(5, 10)  # "a" in 5 of 10 ratings
    p_e = pooled_a**2 + (1 - pooled_a) ** 2
    expected = float((Fraction(4, 5) - p_e) / (1 - p_e))
    assert fleiss_kappa(category_counts(list(zip(a, b, strict=True)))) == pytest.approx(expected)


def test_fleiss_kappa_degenerate_and_bad_tables():
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # everyone always chose the first category
    assert fleiss_kappa([[3, 0], [0, 3]]) == 1.0
    with pytest.raises(InvalidRequest, match="same number of ratings"):
        fleiss_kappa([[3, 0], [1, 1]])
    with pytest.raises(InvalidRequest, match="at least 2 raters"):
        fleiss_kappa([[1, 0], [0, 1]])
    with pytest.raises(InvalidRequest, match="one non-negative count"):
        fleiss_kappa([[3, 0], [3]])
    with pytest.raises(InvalidRequest, match="one non-negative count"):
        fleiss_kappa([[3, 0], [4, -1]])


def test_category_counts():
    assert category_counts([["a", "b", "a"], ["c", "c", "c"]]) == [[2, 1, 0], [0, 0, 3]]


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers,
# 12 units, values 1-5, missing data; nominal alpha = 0.743 (exactly 1 - 39 * 8 / 1216 = 113/152
# here: n = 40 pairable values, Σ o_cc = 32, Σ n_c² = 384).
_ = None
KRIPP_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]


def test_krippendorff_alpha_worked_example_with_missing_values():
    units = [[value for value in column if value is not None] for column in zip(*KRIPP_C, strict=True)]
    alpha = krippendorff_alpha(units)
    assert alpha == pytest.approx(113 / 152, abs=1e-15)
    assert round(alpha or 0, 3) == 0.743


def test_krippendorff_alpha_worked_example_binary_two_observers():
    # the same paper, example A: two observers, ten units, binary; alpha = 0.095 (= 2/21)
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha(list(zip(a, b, strict=True))) == pytest.approx(2 / 21, abs=1e-15)


def test_krippendorff_alpha_degenerate_cases():
    assert krippendorff_alpha([]) is None
    assert krippendorff_alpha([["a"], ["b"]]) is None  # one rater per unit: nothing to pair
    assert krippendorff_alpha([["a", "a"], ["a", "a", "a"]]) is None  # all identical: undefined
    assert krippendorff_alpha([["a", "a"], ["b", "b"], ["c"]]) == 1.0


def test_label_alpha_reads_each_label_as_yes_no():
    tasks = [
        [ans("r1", "a", "b"), ans("r2", "a")],
        [ans("r1", "b"), ans("r2", "b")],
        [ans("r1"), ans("r2", "a")],
    ]
    alphas = label_alpha(tasks, ["a", "b", "c"])
    assert alphas["a"] == krippendorff_alpha([[True, True], [False, False], [False, True]])
    assert alphas["b"] == krippendorff_alpha([[True, False], [True, True], [False, False]])
    assert alphas["c"] is None  # nobody ever chose c: no disagreement to expect


def test_reviewer_agreement_with_the_final_labels():
    majority = [ans("r1", "a"), ans("r2", "a"), ans("r3", "b")]
    tie = [ans("r1", "a"), ans("r3", "b")]
    multi = [ans("r1", "x", "y"), ans("r2", "y", "x")]
    tasks: list[tuple[list[Answer], Outcome]] = [
        (majority, consolidate(majority, 3, MC)),
        (tie, consolidate(tie, 2, MC)),  # waits for a moderator: not counted
        (tie, moderate(consolidate(tie, 2, MC), ("b",), MC)),
        (multi, consolidate(multi, 2, ML)),
    ]
    agreement = reviewer_agreement(tasks)
    assert agreement == {
        "r1": ReviewerAgreement(3, 2),
        "r2": ReviewerAgreement(2, 2),
        "r3": ReviewerAgreement(2, 1),
    }
    assert agreement["r1"].share == pytest.approx(2 / 3)
    assert ReviewerAgreement(0, 0).share == 0.0
