"""Settings (settings.py): every one is documented in the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

from tagloop.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _settings_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Settings\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_setting_is_documented_in_the_readme_and_only_settings_are():
    prefix = str(Settings.model_config.get("env_prefix", ""))
    variables = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    documented = set(re.findall(r"`(TAGLOOP_[A-Z0-9_]+)`", _settings_section()))
    assert variables - documented == set(), "document these in README.md's Settings section"
    assert documented - variables == set(), "README.md's Settings section names settings that do not exist"
