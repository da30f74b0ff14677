"""The demo classifier: IT service-desk tickets written by the tagloop authors."""

from __future__ import annotations

import json
import os
import random
from importlib.resources import files
from pathlib import Path
from typing import Any

from tagloop.app import Tagloop
from tagloop.domain.records import Split
from tagloop.domain.routing import RoutingPolicy, decide
from tagloop.services.routing import routed_task
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import DocumentRepository, ModelVersionRepository

DEMO_CLASSIFIER = "service-desk"


def demo_data_path() -> str:
    return str(files("tagloop.demo").joinpath("service_desk.csv"))


def ensure_demo(tagloop: Tagloop) -> dict[str, Any] | None:
    """Train the demo classifier unless it already has a trained version."""
    existing = {row["name"]: row for row in tagloop.catalog.classifiers()}
    if existing.get(DEMO_CLASSIFIER, {}).get("latest_trained_version"):
        return None
    return tagloop.training.train(TrainRequest(classifier=DEMO_CLASSIFIER, data=demo_data_path()))


DEMO_ROUTING = RoutingPolicy(threshold=0.6, audit=0.05)
"""The demo endpoint's routing: predictions scored below 0.6, and 5 % of the others."""


def ensure_demo_review(tagloop: Tagloop, endpoint: str) -> int:
    """Give a new demo endpoint its routing policy and route the demo's held-out test tickets
    through it once, so the review page has tasks on the first start (what the policy would
    have sent to review had users asked). Returns how many tasks were queued."""
    tagloop.endpoints.set_routing(endpoint, DEMO_ROUTING)
    serving = tagloop.endpoints.serving(endpoint, refresh=True)
    with tagloop.database.reading() as session:
        version = ModelVersionRepository(session).get(serving.version_id)
        if version.test_dataset_id is None:
            return 0
        texts = list(DocumentRepository(session).texts(version.test_dataset_id, Split.TEST.value))
    draws = random.Random(DEMO_CLASSIFIER)  # the same tasks on every fresh start
    tasks = []
    for text, prediction in zip(texts, tagloop.predictions.classify(serving.model, texts), strict=True):
        reason = decide(DEMO_ROUTING, prediction, draws.random())
        if reason is not None:
            tasks.append(routed_task(serving, DEMO_ROUTING, reason, text, prediction, None))
    tagloop.review.add_tasks(tasks)
    return len(tasks)


ADMIN_KEY_FILE = "admin-key.json"


ADMIN_PASSWORD_FILE = "admin-password.json"


def _write_private_json(path: Path, document: dict[str, Any]) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when an older file was there with a looser mode
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle)


def ensure_first_admin_key(tagloop: Tagloop) -> dict[str, Any] | None:
    """On a fresh embedded install, create an admin key and save it to a 0600 file."""
    if tagloop.keys.list():
        return None
    created = tagloop.keys.create("first-admin-key", "admin")
    path = tagloop.settings.data_dir / ADMIN_KEY_FILE
    _write_private_json(path, {"access_key_id": created["access_key_id"], "secret": created["secret"]})
    return created | {"file": str(path)}


def ensure_first_admin_user(tagloop: Tagloop, save: bool) -> dict[str, Any] | None:
    """When there is no web UI user, create ``admin``: with ``TAGLOOP_ADMIN_PASSWORD``, or, on
    the embedded database, a generated password (returned; with ``save`` also written to a
    0600 file, whose path is returned as ``file``). None when users exist (or nothing to do)."""
    given = tagloop.settings.admin_password
    if given is None and not tagloop.database.is_embedded:
        return None  # a server database: its operator runs `tagloop users create`
    created = tagloop.users.ensure_first_admin(given.get_secret_value() if given else None)
    if created is not None and created["generated"] and save:
        path = tagloop.settings.data_dir / ADMIN_PASSWORD_FILE
        _write_private_json(path, {"name": created["name"], "password": created["password"]})
        created = created | {"file": str(path)}
    return created
