"""The demo a new user meets on `make run`: a classifier, an endpoint that routes to review, and
a review queue that is not empty."""

from __future__ import annotations

from tagloop.demo import DEMO_CLASSIFIER, DEMO_ROUTING, ensure_demo, ensure_demo_review
from tagloop.domain.review import Queue


def test_the_demo_endpoint_routes_its_uncertain_test_tickets_to_review(make_tagloop):
    tagloop = make_tagloop()
    result = ensure_demo(tagloop)
    assert result is not None and ensure_demo(tagloop) is None  # once
    created = tagloop.endpoints.create(DEMO_CLASSIFIER, DEMO_CLASSIFIER)
    if created.get("job_id"):
        tagloop.queue.run_now(created["job_id"])
    queued = ensure_demo_review(tagloop, DEMO_CLASSIFIER)
    policy = tagloop.endpoints.routing(DEMO_CLASSIFIER)
    assert policy["threshold"] == DEMO_ROUTING.threshold and policy["audit"] == DEMO_ROUTING.audit
    assert 0 < queued <= result["documents"]["test"]
    assert tagloop.review.stats(classifier=DEMO_CLASSIFIER).pending == queued
    tasks = tagloop.review.list(classifier=DEMO_CLASSIFIER, limit=1_000)
    assert {task.reason for task in tasks} <= {"low_confidence", "audit", "margin"}
    low = [task for task in tasks if task.reason == "low_confidence"]
    assert low and all(task.prediction["scores"][0] < DEMO_ROUTING.threshold for task in low)
    assert all(task.queue is Queue.REVIEW and task.endpoint == DEMO_CLASSIFIER for task in tasks)
    first = tagloop.review.next_task("ana")
    assert first is not None and first.choices[0] == first.prediction["labels"][0]
