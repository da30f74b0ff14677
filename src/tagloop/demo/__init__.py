"""The demo classifier: IT service-desk tickets written by the tagloop authors."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from tagloop.services.training import TrainRequest

DEMO_CLASSIFIER = "service-desk"


def demo_data_path() -> str:
    return str(files("tagloop.demo").joinpath("service_desk.csv"))


def ensure_demo(tagloop: Any) -> dict[str, Any] | None:
    """Train the demo classifier unless it already has a trained version."""
    existing = {row["name"]: row for row in tagloop.catalog.classifiers()}
    if existing.get(DEMO_CLASSIFIER, {}).get("latest_trained_version"):
        return None
    return tagloop.training.train(TrainRequest(classifier=DEMO_CLASSIFIER, data=demo_data_path()))
