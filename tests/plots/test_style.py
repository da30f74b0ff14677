import xml.etree.ElementTree as ET

from tagloop.plots.style import svg_figure

SVG = "{http://www.w3.org/2000/svg}"


def _draw(alt: str) -> str:
    with svg_figure(alt, width=3, height=2) as (_figure, axes, out):
        axes.bar(["a", "b"], [3, 5])
        axes.set_title("counts")
    return out[0]


def test_a_figure_becomes_a_valid_svg_with_its_alt_text_as_title():
    svg = _draw("counts of a & b <per label>")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "counts of a & b <per label>"
    texts = "".join(root.itertext())
    assert "counts" in texts and "a" in texts  # text kept as text, not paths


def test_the_same_figures_give_the_same_bytes():
    assert _draw("x") == _draw("x")
