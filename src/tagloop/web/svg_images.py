"""Plots as image URLs: an SVG document answered with its own, stricter headers.

A page shows a plot with ``<img src="....svg" alt="...">`` rather than inline: matplotlib's
SVG carries a ``<style>`` element and ``style`` attributes, which the pages' CSP (no inline
style) would refuse, while an image document runs no script and its styles touch nothing
outside it. The same URL can be embedded elsewhere (a wiki, a dashboard) by a signed-in person.
"""

from __future__ import annotations

from starlette.responses import Response

SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "same-origin",
}


def svg_response(svg: str) -> Response:
    """``svg`` (a whole SVG document) as an image answer."""
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)
