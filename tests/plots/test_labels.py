import xml.etree.ElementTree as ET

from tagloop.plots.labels import MAX_BARS, label_counts

SVG = "{http://www.w3.org/2000/svg}"


def test_label_counts_is_a_valid_svg_naming_every_label_and_count():
    svg = label_counts({"NETWORK": 12, "BILLING": 1_234, "ACCESS": 3}, "Training documents per label")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text.startswith("Training documents per label: 3 labels, 1,249 documents")
    assert "BILLING 1,234" in title.text  # largest first in the alt text too
    texts = list(root.itertext())
    for shown in ("NETWORK", "BILLING", "ACCESS", "1,234", "12", "3"):
        assert shown in texts


def test_many_labels_are_summed_past_the_bar_limit():
    counts = {f"L{i:03d}": 100 - i for i in range(MAX_BARS + 5)}
    texts = list(ET.fromstring(label_counts(counts, "many")).itertext())
    assert "6 other labels" in texts
    assert "L000" in texts and f"L{MAX_BARS + 4:03d}" not in texts
    assert f"{sum(100 - i for i in range(MAX_BARS - 1, MAX_BARS + 5)):,}" in texts


def test_no_labels_still_draws():
    root = ET.fromstring(label_counts({}, "empty"))
    assert root.find(f"{SVG}title").text == "empty: 0 labels, 0 documents"
