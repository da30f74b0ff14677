import json
import random

import pytest

from tagloop.domain.predictions import Prediction
from tagloop.domain.records import Mode
from tagloop.domain.routing import Reason, RoutingPolicy, decide, priority
from tagloop.errors import InvalidRequest

MC, ML = Mode.MULTI_CLASS, Mode.MULTI_LABEL
SURE = Prediction(["sport", "tech", "arts"], [0.9, 0.07, 0.03], MC)


def mc(*pairs: tuple[str, float]) -> Prediction:
    return Prediction([label for label, _ in pairs], [score for _, score in pairs], MC)


def ml(*pairs: tuple[str, float]) -> Prediction:
    return Prediction([label for label, _ in pairs], [score for _, score in pairs], ML)


def test_default_policy_routes_nothing():
    policy = RoutingPolicy()
    assert not policy.active
    assert decide(policy, mc(("a", 0.01), ("b", 0.0)), 0.0) is None
    assert decide(policy, ml(("a", 0.5)), 0.0) is None


def test_threshold_routes_below_and_not_at_the_threshold():
    policy = RoutingPolicy(threshold=0.6)
    assert decide(policy, mc(("a", 0.59), ("b", 0.41)), 0.9) is Reason.LOW_CONFIDENCE
    assert decide(policy, mc(("a", 0.6), ("b", 0.4)), 0.9) is None
    assert decide(policy, ml(("a", 0.55)), 0.9) is Reason.LOW_CONFIDENCE
    assert decide(policy, ml(("a", 0.95), ("b", 0.55)), 0.9) is None  # best assigned label decides


def test_margin_routes_close_calls_in_multi_class_only():
    policy = RoutingPolicy(margin=0.2)
    assert decide(policy, mc(("a", 0.5), ("b", 0.35), ("c", 0.15)), 0.9) is Reason.MARGIN
    assert decide(policy, mc(("a", 0.625), ("b", 0.375)), 0.9) is None  # 0.25 apart: above the margin
    assert decide(RoutingPolicy(margin=0.25), mc(("a", 0.75), ("b", 0.5)), 0.9) is None  # at it: not below
    assert decide(RoutingPolicy(margin=0.25), mc(("a", 0.75), ("b", 0.5625)), 0.9) is Reason.MARGIN
    assert decide(policy, mc(("a", 0.5)), 0.9) is None  # no second score shown (top=1)
    assert decide(policy, ml(("a", 0.9), ("b", 0.85)), 0.9) is None


def test_band_routes_multi_label_scores_inside_it_bounds_included():
    policy = RoutingPolicy(band=(0.4, 0.6))
    assert decide(policy, ml(("a", 0.95), ("b", 0.6)), 0.9) is Reason.LOW_CONFIDENCE
    assert decide(policy, ml(("a", 0.95), ("b", 0.4)), 0.9) is Reason.LOW_CONFIDENCE
    assert decide(policy, ml(("a", 0.95), ("b", 0.61)), 0.9) is None
    assert decide(policy, ml(), 0.9) is None  # nothing assigned: no score to judge
    assert decide(policy, mc(("a", 0.5), ("b", 0.5)), 0.9) is None  # the band is multi-label only


def test_chosen_labels_are_always_routed():
    policy = RoutingPolicy(labels=frozenset({"fraud"}))
    assert decide(policy, mc(("fraud", 0.99), ("ok", 0.01)), 0.9) is Reason.LABEL
    assert decide(policy, mc(("ok", 0.99), ("fraud", 0.01)), 0.9) is None  # only the best class
    assert decide(policy, ml(("ok", 0.99), ("fraud", 0.97)), 0.9) is Reason.LABEL  # any assigned
    assert decide(policy, ml(("ok", 0.99)), 0.9) is None


def test_first_rule_that_applies_is_the_reason():
    policy = RoutingPolicy(threshold=0.6, margin=0.3, labels=frozenset({"a"}), audit=1.0)
    assert decide(policy, mc(("a", 0.5), ("b", 0.45)), 0.0) is Reason.LOW_CONFIDENCE
    assert decide(policy, mc(("a", 0.62), ("b", 0.38)), 0.0) is Reason.MARGIN
    assert decide(policy, mc(("a", 0.9), ("b", 0.1)), 0.0) is Reason.LABEL
    assert decide(policy, mc(("b", 0.9), ("a", 0.1)), 0.0) is Reason.AUDIT


def test_prediction_with_an_error_is_never_routed():
    policy = RoutingPolicy(threshold=1.0, margin=1.0, band=(0.0, 1.0), labels=frozenset({"a"}), audit=1.0)
    for mode in (MC, ML):
        assert decide(policy, Prediction.failed(mode, InvalidRequest("too large")), 0.0) is None


def test_audit_uses_the_draw():
    policy = RoutingPolicy(audit=0.05)
    assert decide(policy, SURE, 0.0) is Reason.AUDIT
    assert decide(policy, SURE, 0.0499) is Reason.AUDIT
    assert decide(policy, SURE, 0.05) is None
    assert decide(RoutingPolicy(audit=0.0), SURE, 0.0) is None
    assert decide(RoutingPolicy(audit=1.0), SURE, 0.9999) is Reason.AUDIT
    assert decide(policy, ml(), 0.01) is Reason.AUDIT  # an empty multi-label prediction can be audited


def test_audit_share_over_many_draws():
    draws = random.Random(20261201)
    policy = RoutingPolicy(audit=0.05)
    n = 100_000
    audited = sum(decide(policy, SURE, draws.random()) is Reason.AUDIT for _ in range(n))
    # binomial sd = sqrt(n p (1-p)) ≈ 69: within 5 sd of 5,000
    assert abs(audited - 5_000) < 350


def test_priority_grows_with_uncertainty():
    assert priority(mc(("a", 0.5), ("b", 0.5))) == 1.0
    assert priority(mc(("a", 1.0), ("b", 0.0))) == 0.0
    assert priority(mc(("a", 0.6), ("b", 0.3))) == pytest.approx(0.7)
    assert priority(mc(("a", 0.8))) == pytest.approx(0.2)
    assert priority(mc(("a", 0.5), ("b", 0.45))) > priority(mc(("a", 0.7), ("b", 0.2)))
    assert priority(ml(("a", 0.99), ("b", 0.5))) == 1.0
    assert priority(ml(("a", 0.9), ("b", 0.7))) == pytest.approx(0.6)
    assert priority(ml()) == 0.0
    assert priority(Prediction.failed(MC, InvalidRequest("x"))) == 0.0


def test_policy_json_round_trip():
    policy = RoutingPolicy(
        threshold=0.5, margin=0.1, band=(0.3, 0.7), labels=frozenset({"b", "a"}), audit=0.05
    )
    data = json.loads(json.dumps(policy.to_dict()))
    assert data == {
        "threshold": 0.5,
        "margin": 0.1,
        "band": [0.3, 0.7],
        "labels": ["a", "b"],
        "audit": 0.05,
        "required": 1,  # the review tasks' settings: their defaults
        "lease_seconds": 300,
        "lifetime_seconds": None,
    }
    assert RoutingPolicy.from_dict(data) == policy
    assert RoutingPolicy.from_dict(RoutingPolicy().to_dict()) == RoutingPolicy()
    assert RoutingPolicy.from_dict({}) == RoutingPolicy()
    assert RoutingPolicy.from_dict({"threshold": 1, "audit": 0}).threshold == 1.0
    assert RoutingPolicy(labels=["x"]).labels == frozenset({"x"})  # type: ignore[arg-type]
    tasks = RoutingPolicy.from_dict({"required": 3, "lease_seconds": 60, "lifetime_seconds": 86_400})
    assert tasks.task_settings() == {"required": 3, "lease_seconds": 60, "lifetime_seconds": 86_400}
    assert not tasks.active  # task settings alone route nothing


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"required": 0}, "required"),
        ({"required": 4}, "required"),
        ({"required": 1.5}, "required"),
        ({"required": True}, "required"),
        ({"lease_seconds": 29}, "lease_seconds"),
        ({"lease_seconds": 28_801}, "lease_seconds"),
        ({"lifetime_seconds": 59}, "lifetime_seconds"),
        ({"lifetime_seconds": "1h"}, "lifetime_seconds"),
    ],
)
def test_task_settings_are_checked(data, field):
    with pytest.raises(InvalidRequest, match=f"^{field}:"):
        RoutingPolicy.from_dict(data)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": "0.5"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"margin": 2}, "margin"),
        ({"audit": 1.01}, "audit"),
        ({"audit": "5%"}, "audit"),
        ({"band": [0.7, 0.3]}, "band"),
        ({"band": [0.3]}, "band"),
        ({"band": 0.5}, "band"),
        ({"band": [0.3, 1.2]}, "band"),
        ({"labels": "fraud"}, "labels"),
        ({"labels": ["a", "a"]}, "labels"),
        ({"labels": ["a", ""]}, "labels"),
        ({"labels": [3]}, "labels"),
        ({"treshold": 0.5}, "treshold"),
    ],
)
def test_policy_validation_names_the_field(data, field):
    with pytest.raises(InvalidRequest) as raised:
        RoutingPolicy.from_dict(data)
    assert raised.value.message.startswith(f"{field}: ")


def test_policy_must_be_an_object():
    with pytest.raises(InvalidRequest, match="expected an object"):
        RoutingPolicy.from_dict([0.5])


def test_policy_is_frozen():
    with pytest.raises(AttributeError):
        RoutingPolicy().threshold = 0.5  # type: ignore[misc]
