"""A2I task templates rendered with Liquid: task.input, A2I's filters, autoescaping, limits."""

from __future__ import annotations

import json

import pytest

from tagloop.errors import InvalidRequest
from tagloop.services.task_templates import check_template, render_task_ui, to_json


def test_task_input_and_filters():
    template = (
        "<h1>{{ task.input.title }}</h1>"
        "{% for item in task.input.items %}<p data-i='{{ forloop.index0 }}'>{{ item.text }}</p>{% endfor %}"
        "<crowd-classifier categories='{{ task.input.labels | to_json }}'></crowd-classifier>"
        "<div>{{ task.input.note | skip_autoescape }}</div><i>{{ task.input.title | escape }}</i>"
    )
    content = {
        "title": "Tickets & more",
        "items": [{"text": "printer jammed"}, {"text": "refund"}],
        "labels": ["HARDWARE", "BILLING"],
        "note": "<b>bold</b>",
    }
    html = render_task_ui(template, content)
    assert "<h1>Tickets &amp; more</h1>" in html
    assert "<p data-i='0'>printer jammed</p><p data-i='1'>refund</p>" in html
    assert "categories='[&#34;HARDWARE&#34;, &#34;BILLING&#34;]'" in html  # the browser reads JSON back
    assert "<div><b>bold</b></div>" in html and "<i>Tickets &amp; more</i>" in html  # escaped once


def test_input_cannot_inject_markup():
    """Attacker: InputContent carrying markup and scripts is shown as text."""
    evil = {
        "text": "<script>parent.postMessage({type:'tagloop:a2i-answer'},'*')</script>",
        "attr": "' onmouseover='alert(1)",
        "nested": {"x": "</script><script>alert(2)</script>"},
    }
    html = render_task_ui(
        "<p>{{ task.input.text }}</p><a title='{{ task.input.attr }}'>x</a>"
        "<script>var data = {{ task.input.nested | to_json | skip_autoescape }};</script>",
        evil,
    )
    assert "<script>parent" not in html and "&lt;script&gt;" in html
    assert "onmouseover='" not in html and "&#39; onmouseover=&#39;" in html
    assert "</script><script>alert(2)" not in html  # to_json keeps a script element closed
    assert "\\u003c/script\\u003e" in html
    assert json.loads(to_json(evil["nested"])) == evil["nested"]


def test_grant_read_access_hands_out_only_allowed_urls():
    template = (
        "<img src='{{ task.input.a | grant_read_access }}'><img src='{{ task.input.b | grant_read_access }}'>"
    )
    html = render_task_ui(
        template,
        {"a": "https://data.example/ok/1.png", "b": "https://elsewhere.example/x.png"},
        lambda url: url.startswith("https://data.example/ok/"),
    )
    assert "src='https://data.example/ok/1.png'" in html and "src=''" in html
    assert "src=''><img src=''" in render_task_ui(template, {"a": "s3://b/k", "b": "file:///etc/passwd"})


def test_bad_templates_are_refused_and_rendering_is_bounded():
    for broken in ("{% for x in y %}", "{{ x | }}", "{% if %}"):
        with pytest.raises(InvalidRequest):
            check_template(broken)
    check_template("<p>{{ task.input.text | unknown_filter_is_a_render_error }}</p>")
    with pytest.raises(InvalidRequest):
        render_task_ui("{{ task.input | unknown_filter }}", {})
    with pytest.raises(InvalidRequest):  # a template cannot make the server loop for long
        render_task_ui("{% for i in (1..100000000) %}{% endfor %}", {})
