"""Input limits, each named after the setting that changes it."""

from __future__ import annotations

from dataclasses import dataclass

from tagloop.settings import Settings

MAX_INFERENCE_UNITS = 1000  # an endpoint's units are recorded, not provisioned: a bound, not a quota


@dataclass(frozen=True)
class Limits:
    max_text_bytes: int = 1_000_000
    max_label_chars: int = 5_000
    max_labels_multi_class: int = 1_000
    max_labels_multi_label: int = 100
    min_docs_per_label: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_text_bytes=settings.max_text_bytes,
            max_label_chars=settings.max_label_chars,
            max_labels_multi_class=settings.max_labels_multi_class,
            max_labels_multi_label=settings.max_labels_multi_label,
            min_docs_per_label=settings.min_docs_per_label,
        )


def utf8_size_over(text: str, limit: int) -> int | None:
    """The UTF-8 size of ``text`` if it is over ``limit`` bytes, else None. Encodes only when
    the text could be over: UTF-8 takes at most 4 bytes a character."""
    if len(text) * 4 <= limit:
        return None
    size = len(text.encode("utf-8"))
    return size if size > limit else None
