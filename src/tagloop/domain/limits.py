"""Input limits, each named after the setting that changes it, and the one wording of the
message that refuses what is over one."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tagloop.settings import Settings

MAX_INFERENCE_UNITS = 1000  # an endpoint's units are recorded, not provisioned: a bound, not a quota


def _default(setting: str) -> Any:
    """The default of a setting: :class:`Settings` is the one place defaults are written."""
    return Settings.model_fields[setting].default


@dataclass(frozen=True)
class Limits:
    """The limits datasets are checked against; each field is the setting of the same name."""

    max_text_bytes: int = _default("max_text_bytes")
    max_label_chars: int = _default("max_label_chars")
    max_labels_multi_class: int = _default("max_labels_multi_class")
    max_labels_multi_label: int = _default("max_labels_multi_label")
    min_docs_per_label: int = _default("min_docs_per_label")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(**{field.name: getattr(settings, field.name) for field in fields(cls)})


def over_limit(what: str, limit: int, setting: str) -> str:
    """Why something is refused for its size: ``what`` it is (with its size), the limit, and
    the setting (a :class:`Settings` field) that changes it.

    >>> over_limit("text is 1,200 bytes", 1_000, "max_text_bytes")
    'text is 1,200 bytes, over the limit of 1,000 (setting TAGLOOP_MAX_TEXT_BYTES)'
    """
    if setting not in Settings.model_fields:
        raise ValueError(f"no setting named {setting!r}")
    variable = f"{Settings.model_config.get('env_prefix', '')}{setting}".upper()
    return f"{what}, over the limit of {limit:,} (setting {variable})"


def utf8_size_over(text: str, limit: int) -> int | None:
    """The UTF-8 size of ``text`` if it is over ``limit`` bytes, else None. Encodes only when
    the text could be over: UTF-8 takes at most 4 bytes a character."""
    if len(text) * 4 <= limit:
        return None
    size = len(text.encode("utf-8"))
    return size if size > limit else None
