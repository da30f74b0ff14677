"""The demo classifier: IT service-desk tickets written by the tagloop authors."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path
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
