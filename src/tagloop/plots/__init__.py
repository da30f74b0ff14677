"""Plots rendered on the server to SVG (matplotlib, one style): pure drawing from figures the
services computed, for the console's pages, their image URLs and the HTML report.

matplotlib is imported by :mod:`tagloop.plots.style` only when a plot is drawn, never at
package import (it would add ~0.3 s to every CLI call and server start).
"""
