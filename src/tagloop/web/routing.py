"""The admin pages of review routing: ``/admin/routing`` lists every endpoint with what it
serves and its routing policy; ``/admin/routing/{name}`` edits one endpoint's policy.

The form sends text; numbers are read as numbers where they read as such and everything else
goes as sent to :meth:`RoutingPolicy.from_dict`, so a bad value gets the message the CLI and
``/v1`` give (it names the field, and the page shows it next to that field). Each setting is
checked on its own first, so every bad field is named at once; nothing is stored unless all
are good. The labels are checkboxes of the served version's labels (plus any stored label that
version lacks, so saving never drops one unseen). Saving answers with a redirect to the page,
which shows the policy as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from tagloop.app import Tagloop
from tagloop.domain.names import check_name
from tagloop.domain.routing import RoutingPolicy
from tagloop.errors import InvalidRequest
from tagloop.services.users import WebSession
from tagloop.web.pages import see_other
from tagloop.web.render import page
from tagloop.web.security import role, tagloop_of

router = APIRouter(include_in_schema=False)
AdminSession = Annotated[WebSession, Depends(role("admin"))]

UNIT_FIELDS = ("threshold", "margin", "audit")
WHOLE_FIELDS = ("required", "lease_seconds", "lifetime_seconds")
MAX_VALUE = 50  # characters of one number field read (longer: refused by the policy as text)
NOTICES = {
    "saved": "Saved: the policy below is the one stored. Every server follows it within a second.",
    "off": "Routing is off: this endpoint sends nothing to review.",
}


@dataclass
class EndpointRouting:
    """One endpoint as the pages show it: what it serves and its routing policy."""

    name: str
    classifier: str
    version: str
    mode: str
    status: str
    policy: dict[str, Any]
    """``EndpointService.routing``'s answer (``active`` and every setting)."""
    labels: list[str] = field(default_factory=list)
    """The served version's labels, then any stored label it lacks."""
    unknown: frozenset[str] = frozenset()
    """Stored labels the served version lacks."""
    problem: str | None = None
    """Why the stored policy cannot be read (a row written by hand), if so."""

    @property
    def multi_label(self) -> bool:
        return self.mode == "MULTI_LABEL"


def _endpoint(tagloop: Tagloop, summary: dict[str, Any], with_labels: bool) -> EndpointRouting:
    name = summary["name"]
    try:
        policy, problem = tagloop.endpoints.routing(name), None
    except InvalidRequest as exc:
        policy, problem = {"endpoint": name, "active": False} | RoutingPolicy().to_dict(), exc.message
    found = EndpointRouting(
        name,
        summary["classifier"],
        summary["version"],
        summary["mode"],
        summary["status"],
        policy,
        problem=problem,
    )
    if with_labels:
        served = list(tagloop.catalog.version(summary["classifier"], summary["version"])["labels"])
        found.unknown = frozenset(policy["labels"]) - set(served)
        found.labels = served + sorted(found.unknown)
    return found


def endpoints(tagloop: Tagloop) -> list[EndpointRouting]:
    """Every endpoint with its policy (blocking: run on a worker thread)."""
    return [_endpoint(tagloop, summary, with_labels=False) for summary in tagloop.endpoints.list()]


def endpoint(tagloop: Tagloop, name: str) -> EndpointRouting:
    """One endpoint with its policy and labels (NotFound if there is none)."""
    check_name("endpoint", name)
    return _endpoint(tagloop, tagloop.endpoints.show(name), with_labels=True)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[: MAX_VALUE + 1] if isinstance(value, str) else ""  # past MAX_VALUE: refused


def _number(text: str, whole: bool) -> Any:
    """``text`` as a number if it reads as one (an int for a whole-number field when it is
    one), None if empty, else the text itself: the policy names what is wrong with it."""
    if not text:
        return None
    if len(text) > MAX_VALUE:
        return text[:MAX_VALUE] + "..."
    if whole:
        try:
            return int(text)
        except ValueError:
            pass
    try:
        return float(text)
    except ValueError:
        return text


def read_form(form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    """The policy the form asks for (``from_dict``'s shape) and the form's fields as sent."""
    sent = {name: _text(form, name) for name in (*UNIT_FIELDS, *WHOLE_FIELDS, "band_low", "band_high")}
    policy: dict[str, Any] = {name: _number(sent[name], False) for name in UNIT_FIELDS}
    policy |= {name: _number(sent[name], True) for name in WHOLE_FIELDS}
    low, high = _number(sent["band_low"], False), _number(sent["band_high"], False)
    policy["band"] = None if low is None and high is None else [low, high]
    policy["labels"] = [value for value in form.getlist("label") if isinstance(value, str)]
    return policy, sent


def problems(policy: dict[str, Any], offered: list[str]) -> dict[str, str]:
    """Each bad setting's message, by field (``from_dict``'s own, checked one setting at a
    time); a label the page did not offer is refused too."""
    found = {}
    for name, value in policy.items():
        try:
            RoutingPolicy.from_dict({name: value})
        except InvalidRequest as exc:
            found[name] = exc.message
    strange = [label for label in policy["labels"] if label not in offered]
    if strange and "labels" not in found:
        found["labels"] = f"labels: {strange[0][:100]!r} is not one of this endpoint's labels"
    return found


def shown(value: Any) -> str:
    """A stored setting as a form field's value."""
    return "" if value is None else str(value)


def fields_of(policy: dict[str, Any]) -> dict[str, str]:
    """The form's fields showing a stored policy."""
    fields = {name: shown(policy[name]) for name in (*UNIT_FIELDS, *WHOLE_FIELDS)}
    band = policy["band"] or [None, None]
    return fields | {"band_low": shown(band[0]), "band_high": shown(band[1])}


@router.get("/admin/routing")
async def routing_list(request: Request, session: AdminSession) -> Response:
    found = await run_in_threadpool(endpoints, tagloop_of(request))
    return await page(request, "routing.html", "Routing", session=session, active="routing", endpoints=found)


async def _edit_page(
    request: Request,
    session: WebSession,
    found: EndpointRouting,
    fields: dict[str, str],
    chosen: list[str],
    errors: dict[str, str] | None = None,
    notice: str | None = None,
) -> Response:
    return await page(
        request,
        "routing_edit.html",
        f"Routing of {found.name}",
        status=400 if errors else 200,
        session=session,
        active="routing",
        endpoint=found,
        fields=fields,
        chosen=set(chosen),
        errors=errors or {},
        notice=notice,
    )


@router.get("/admin/routing/{name}")
async def routing_page(request: Request, name: str, session: AdminSession, saved: str = "") -> Response:
    found = await run_in_threadpool(endpoint, tagloop_of(request), name)
    policy = found.policy
    notice = NOTICES.get(saved)
    return await _edit_page(request, session, found, fields_of(policy), policy["labels"], notice=notice)


@router.post("/admin/routing/{name}")
async def routing_save(request: Request, name: str, session: AdminSession) -> Response:
    tagloop = tagloop_of(request)
    found = await run_in_threadpool(endpoint, tagloop, name)
    policy, sent = read_form(await request.form())
    errors = problems(policy, found.labels)
    if not errors:
        try:
            await run_in_threadpool(tagloop.endpoints.set_routing, name, policy)
        except InvalidRequest as exc:  # a rule across settings (none today): shown at the top
            errors = {"policy": exc.message}
    if errors:
        return await _edit_page(request, session, found, sent, policy["labels"], errors=errors)
    return see_other(f"/admin/routing/{name}?saved=saved")


@router.post("/admin/routing/{name}/off")
async def routing_off(request: Request, name: str, session: AdminSession) -> Response:
    tagloop = tagloop_of(request)
    await run_in_threadpool(endpoint, tagloop, name)  # 404 for an endpoint that is not there
    await run_in_threadpool(tagloop.endpoints.set_routing, name, None)
    return see_other(f"/admin/routing/{name}?saved=off")
