"""Amazon Augmented AI, tagloop's way: the SageMaker control-plane operations A2I users call
(task UIs and flow definitions: ``sagemaker``, JSON 1.1 on ``POST /``), the A2I runtime
(human loops: ``runtime``, rest-json on ``/human-loops``), and the pages reviewers answer a
loop's task template on (``pages``), with the crowd elements served locally."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Scope

from tagloop.api.a2i.errors import a2i_error, sagemaker_error
from tagloop.api.a2i.pages import FRAME_POLICY, PAGE_POLICY, loop_pages, task_frame_html, task_ui_url
from tagloop.api.a2i.runtime import is_runtime
from tagloop.api.a2i.runtime import router as runtime_router
from tagloop.api.a2i.sagemaker import is_sagemaker
from tagloop.errors import TagloopError


def error_door(scope: Scope) -> Callable[[TagloopError], Response] | None:
    """How errors of this request are answered, if it is for one of these APIs."""
    if is_runtime(scope):
        return a2i_error
    if is_sagemaker(scope):
        return sagemaker_error
    return None


__all__ = [
    "FRAME_POLICY",
    "PAGE_POLICY",
    "error_door",
    "loop_pages",
    "runtime_router",
    "task_frame_html",
    "task_ui_url",
]
