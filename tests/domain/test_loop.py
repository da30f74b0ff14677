import pytest

from tagloop.domain.loop import LoopSettings, held_out, text_hash
from tagloop.errors import InvalidRequest


def test_text_hash_ignores_case_and_whitespace_runs() -> None:
    assert text_hash("Printer  is\nbroken ") == text_hash("printer is broken")
    assert text_hash("printer is broken") != text_hash("printer is fixed")
    assert len(text_hash("x")) == 32


def test_held_out_is_a_fixed_share_of_hashes() -> None:
    hashes = [text_hash(f"document {i}") for i in range(20_000)]
    share = sum(held_out(h, 0.2) for h in hashes) / len(hashes)
    assert 0.19 < share < 0.21
    assert not any(held_out(h, 0.0) for h in hashes)
    assert all(held_out(h, 1.0) for h in hashes)
    # a larger share keeps every document the smaller one held out
    assert all(held_out(h, 0.3) for h in hashes if held_out(h, 0.2))
    assert held_out("00000000" + "f" * 24, 0.001) and not held_out("ffffffff" + "0" * 24, 0.999)


def test_settings_round_trip_and_defaults() -> None:
    settings = LoopSettings.from_dict({"min_gain": 0.01, "after_verified": 100})
    assert settings.metric == "F1Score" and settings.min_gain == 0.01 and settings.after_verified == 100
    assert LoopSettings.from_dict(settings.to_dict()) == settings
    assert settings.updated({"after_verified": None}).after_verified is None
    assert LoopSettings(metric="HammingLoss").higher_is_better is False


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"metric": "Speed"}, "metric"),
        ({"min_gain": 2}, "min_gain"),
        ({"max_label_drop": -0.1}, "max_label_drop"),
        ({"test_share": "0.2"}, "test_share"),
        ({"promote": "sometimes"}, "promote"),
        ({"every_seconds": 5}, "every_seconds"),
        ({"after_verified": 0}, "after_verified"),
        ({"refill_count": 0}, "refill_count"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        LoopSettings.from_dict(data)
