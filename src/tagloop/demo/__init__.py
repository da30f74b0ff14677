"""The demo classifier: IT service-desk tickets written by the tagloop authors."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from typing import Any

from tagloop.app import Tagloop
from tagloop.services.training import TrainRequest

DEMO_CLASSIFIER = "service-desk"


def demo_data_path() -> str:
    return str(files("tagloop.demo").joinpath("service_desk.csv"))


def ensure_demo(tagloop: Tagloop) -> dict[str, Any] | None:
    """Train the demo classifier unless it already has a trained version."""
    existing = {row["name"]: row for row in tagloop.catalog.classifiers()}
    if existing.get(DEMO_CLASSIFIER, {}).get("latest_trained_version"):
        return None
    return tagloop.training.train(TrainRequest(classifier=DEMO_CLASSIFIER, data=demo_data_path()))


ADMIN_KEY_FILE = "admin-key.json"


def ensure_first_admin_key(tagloop: Tagloop) -> dict[str, Any] | None:
    """On a fresh embedded install, create an admin key and save it to a 0600 file."""
    if tagloop.keys.list():
        return None
    created = tagloop.keys.create("first-admin-key", "admin")
    path = tagloop.settings.data_dir / ADMIN_KEY_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when an older file was there with a looser mode
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"access_key_id": created["access_key_id"], "secret": created["secret"]}, handle)
    return created | {"file": str(path)}
