"""Settings: every TAGLOOP_* variable is documented in the README's settings table."""

from __future__ import annotations

import re
from pathlib import Path

from tagloop.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _settings_table() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_every_setting_is_in_the_readme_settings_table():
    table = _settings_table()
    documented = set(re.findall(r"`(TAGLOOP_[A-Z0-9_]+)`", table))
    variables = {f"TAGLOOP_{name.upper()}" for name in Settings.model_fields}
    assert not variables - documented, f"add to the README's settings table: {sorted(variables - documented)}"
    assert not documented - variables, f"documented but not settings: {sorted(documented - variables)}"
