"""Input limits (domain/limits.py): defaults from Settings, and one wording for every refusal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tagloop.domain.limits import Limits, over_limit
from tagloop.settings import Settings

SRC = Path(__file__).resolve().parents[2] / "src" / "tagloop"


def test_limits_are_settings_with_the_settings_defaults():
    for field in dataclasses.fields(Limits):
        assert field.name in Settings.model_fields
        assert field.default == Settings.model_fields[field.name].default, field.name


def test_limits_from_settings_take_every_limit_from_the_settings():
    changed = {field.name: field.default + 7 for field in dataclasses.fields(Limits)}
    settings = Settings(**changed)
    assert dataclasses.asdict(Limits.from_settings(settings)) == changed


def test_over_limit_names_the_size_the_limit_and_the_setting_to_change():
    message = over_limit("text is 1,200 bytes", 1_000, "max_text_bytes")
    assert message == "text is 1,200 bytes, over the limit of 1,000 (setting TAGLOOP_MAX_TEXT_BYTES)"
    with pytest.raises(ValueError, match="no setting"):
        over_limit("text is 1,200 bytes", 1_000, "max_text_size")


def test_every_over_the_limit_message_is_worded_by_over_limit():
    wording = "over the limit of"
    elsewhere = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "limits.py" and wording in path.read_text(encoding="utf-8")
    ]
    assert elsewhere == []
