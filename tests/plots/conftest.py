from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

SVG = "{http://www.w3.org/2000/svg}"


class Drawn:
    """A plot's SVG parsed: its title (alt text) and every text it shows."""

    def __init__(self, svg: str) -> None:
        self.svg = svg
        self.root = ET.fromstring(svg)
        assert self.root.tag == f"{SVG}svg"
        title = self.root.find(f"{SVG}title")
        self.title = title.text if title is not None else None
        self.texts = [
            "".join(element.itertext()).strip()
            for element in self.root.iter(f"{SVG}text")
            if "".join(element.itertext()).strip()
        ]


@pytest.fixture
def parse():
    return Drawn
