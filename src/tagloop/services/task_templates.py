"""A2I worker task templates: Liquid HTML rendered with ``task.input`` = a human loop's
``InputContent``, as A2I renders them for its workers.

Autoescaping is on: every ``{{ ... }}`` is HTML-escaped unless the template says
``skip_autoescape``, so a loop's input cannot inject markup or scripts into the page. The
filters A2I templates use:

- ``to_json``: the value as JSON, with ``<``, ``>`` and ``&`` written as ``\\u003c`` etc., so
  that even unescaped inside a ``<script>`` it cannot close the element;
- ``escape`` / ``escape_once`` (Liquid's), ``skip_autoescape`` (the value as markup);
- ``grant_read_access``: A2I turns an ``s3://`` URI into a presigned URL; tagloop gives back the
  URL unchanged when it is an ``http(s)://`` URL inside the data locations the operator allows
  (``TAGLOOP_ALLOWED_DATA_URLS``) and an empty string otherwise (the page's CSP blocks remote
  loads anyway: ``api/a2i/pages.py``).

Rendering is bounded (loop iterations, output size, nesting), so a template cannot make the
server loop or build a huge page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from liquid import Environment
from liquid.exceptions import LiquidError
from markupsafe import Markup

from tagloop.errors import InvalidRequest

MAX_OUTPUT_CHARS = 8_000_000
MAX_LOOP_ITERATIONS = 1_000_000


class _TemplateEnvironment(Environment):
    output_stream_limit = MAX_OUTPUT_CHARS
    loop_iteration_limit = MAX_LOOP_ITERATIONS
    context_depth_limit = 30
    local_namespace_limit = 1_000_000


def to_json(value: Any) -> str:
    """``value`` as JSON that is safe inside HTML text, attributes (once autoescaped) and scripts."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def skip_autoescape(value: Any) -> Markup:
    return Markup("" if value is None else str(value))


def environment(readable: Callable[[str], bool] | None = None) -> Environment:
    """A Liquid environment with A2I's filters; ``readable(url)`` says whether
    ``grant_read_access`` may hand out a URL (none may without it)."""
    env = _TemplateEnvironment(autoescape=True)

    def grant_read_access(value: Any) -> str:
        url = "" if value is None else str(value)
        allowed = url.startswith(("https://", "http://")) and readable is not None and readable(url)
        return url if allowed else ""

    env.filters["to_json"] = to_json
    env.filters["skip_autoescape"] = skip_autoescape
    env.filters["grant_read_access"] = grant_read_access
    return env


_PARSER = environment()


def check_template(content: str) -> None:
    """Refuse (InvalidRequest) a template that is not valid Liquid."""
    try:
        _PARSER.from_string(content)
    except LiquidError as exc:
        raise InvalidRequest(
            f"UiTemplate.Content is not a valid Liquid template: {_first_line(exc)}"
        ) from None


def render_task_ui(template: str, input_content: Any, readable: Callable[[str], bool] | None = None) -> str:
    """The HTML of ``template`` for one loop: ``task.input`` is its InputContent (parsed JSON)."""
    try:
        return environment(readable).from_string(template).render(task={"input": input_content})
    except LiquidError as exc:
        raise InvalidRequest(f"the task template cannot be rendered: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
