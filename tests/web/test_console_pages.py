"""The console's pages through the real app (TestClient): what each shows, who may open and
use them, the upload's row-by-row errors, stop and retry, promote and roll back."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path

import pytest

from tagloop.domain.records import Mode
from tagloop.domain.test_predictions import TEST_PREDICTIONS
from tagloop.services.training import TrainRequest
from tagloop.storage.repositories import ClassifierRepository, ModelVersionRepository

from .conftest import csrf_of

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def desk(web_app, tickets_csv):
    """Two trained versions of ``desk``, v2 the champion served by the following ``desk-live``."""
    tagloop = web_app.state.tagloop
    tagloop.training.train(TrainRequest("desk", str(tickets_csv)))
    tagloop.training.train(TrainRequest("desk", str(tickets_csv)))
    tagloop.endpoints.create("desk-live", "desk")
    tagloop.loops.promote("desk", "v1")
    tagloop.loops.promote("desk", "v2")
    return tagloop


def test_empty_states_tell_the_next_step(browser):
    admin, reviewer = browser("ad"), browser("ana")
    page = admin.get("/console/classifiers")
    assert page.status_code == 200 and "No classifier yet" in page.text
    assert 'href="/console/upload"' in page.text
    page = reviewer.get("/console/classifiers").text
    assert "Ask an admin" in page and 'href="/console/upload"' not in page
    assert 'data-testid="no-jobs"' in admin.get("/console/jobs").text
    assert admin.get("/console", follow_redirects=False).headers["location"] == "/console/classifiers"


def test_classifier_and_version_pages_show_the_stored_figures_and_plots(browser, desk, tickets_csv):
    client = browser("ana")
    cards = client.get("/console/classifiers").text
    assert 'data-classifier="desk"' in cards and "desk-live" in cards
    page = client.get("/console/classifiers/desk").text
    assert re.search(r'data-version="v2">\s*<td><a [^>]+>v2</a> <span class="state on">champion', page)
    assert "desk-live" in page and 'data-testid="origins"' in page
    assert "<td>tickets.csv</td>" in page and str(tickets_csv.parent) not in page  # no server folders
    assert "Promote" not in page and "Roll back" not in page  # a reviewer reads, an admin acts
    version = desk.catalog.version("desk", "v1")
    page = client.get("/console/classifiers/desk/versions/v1").text
    assert f"{version['metrics']['Accuracy']:.3f}" in page and "F1 (macro)" in page
    weakest_first = sorted(version["per_label"], key=lambda label: (version["per_label"][label]["f1"], label))
    rows = re.findall(r"<tr><td>([A-Z]+)</td><td class=\"num\">", page)
    assert rows == weakest_first
    by_name = client.get("/console/classifiers/desk/versions/v1?sort=label&order=desc").text
    assert re.findall(r"<tr><td>([A-Z]+)</td><td class=\"num\">", by_name) == sorted(
        version["labels"], reverse=True
    )
    # every non-empty cell of the heatmap opens exactly its test documents
    matrix, labels = version["confusion_matrix"]["confusion_matrix"], version["confusion_matrix"]["labels"]
    links = re.findall(
        r'href="(/console/classifiers/desk/versions/v1/cell\?actual=(\w+)&amp;predicted=(\w+))"', page
    )
    assert len(links) == sum(1 for row in matrix for count in row if count)
    for href, actual, predicted in links[:3] + [link for link in links if link[1] != link[2]][:2]:
        cell = client.get(unescape(href)).text
        count = matrix[labels.index(actual)][labels.index(predicted)]
        assert f"{count} test document" in cell
        assert len(re.findall(r'<li class="doc">', cell)) == count
    mistakes = sum(matrix[i][j] for i in range(len(labels)) for j in range(len(labels)) if i != j)
    assert page.count('<li class="doc">') == min(mistakes, 200)
    # plots are image URLs with their alt text
    page = client.get("/console/classifiers/desk/versions/v2").text
    (src, alt) = re.search(r'<img src="([^"]+labels\.svg)" alt="([^"]+)"', page).groups()
    image = client.get(src)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/svg+xml")
    assert "script-src" not in image.headers["content-security-policy"]
    root = ET.fromstring(image.text)
    assert root.find(f"{SVG}title").text.startswith(alt)
    assert "NETWORK" in list(root.itertext())
    assert client.get("/console/classifiers/desk/versions/v2/plots/nothing.svg").status_code == 404
    # the version report's plots (services/reports.py), each drawn by its own URL
    shown = dict(re.findall(r'<img src="[^"]+/plots/([a-z_]+)\.svg" alt="([^"]+)"', page))
    assert {"labels", "per_label", "confusion", "reliability", "scores"} <= set(shown)
    for name in ("confusion", "reliability", "scores"):
        drawn = client.get(f"/console/classifiers/desk/versions/v2/plots/{name}.svg")
        assert drawn.status_code == 200 and drawn.headers["content-type"].startswith("image/svg+xml")
        assert ET.fromstring(drawn.text).find(f"{SVG}title").text == shown[name].replace("&#39;", "'")
    assert client.get("/console/classifiers/desk/iterations/plots/metric.svg").status_code == 404  # none yet
    assert browser().get(src, follow_redirects=False).status_code == 303  # not signed in: to the login page
    tagloop = desk
    decided = tagloop.iterations.run("desk")  # a turn of the loop: the promotion metric gets a point
    page = client.get("/console/classifiers/desk/iterations").text
    (src, alt) = re.search(r'<img src="([^"]+/iterations/plots/metric\.svg)" alt="([^"]+)"', page).groups()
    drawn = client.get(src)
    assert drawn.status_code == 200
    assert decided["iteration"] in "".join(ET.fromstring(drawn.text).itertext())


def _features_shown(page: str) -> dict[str, list[tuple[str, str]]]:
    """The version page's strongest features: label -> [(term, weight as shown)]."""
    found = re.search(r'<div class="features" data-testid="features">(.*?)</section>', page, re.S)
    assert found, page[-4000:]
    return {
        label: [
            (unescape(term), weight)
            for term, weight in re.findall(
                r'<li><span class="term">(.*?)</span> <small class="num">([-0-9.]+)</small></li>', block
            )
        ]
        for label, block in re.findall(
            r'<div data-label="([^"]+)"><h3>.*?</h3>(.*?)</div>', found.group(1), re.S
        )
    }


def test_a_version_page_shows_the_strongest_features_per_label_or_why_not(browser, desk, tickets_csv):
    client = browser("ana")
    report = desk.reports.version_report("desk", "v2")
    shown = _features_shown(client.get("/console/classifiers/desk/versions/v2").text)
    assert list(shown) == desk.catalog.version("desk", "v2")["labels"]  # in the version's label order
    assert shown == {
        label: [(term, f"{weight:.2f}") for term, weight in terms] for label, terms in report.features.items()
    }
    assert all(len(terms) == 10 for terms in shown.values())
    # versions whose model file is gone: the section says why; the rest of the page is there
    desk.training.train(TrainRequest("desk", str(tickets_csv)))
    desk.training.train(TrainRequest("desk", str(tickets_csv)))
    files = {}
    with desk.database.reading() as session:
        classifier = ClassifierRepository(session).get("desk")
        for name in ("v3", "v4"):
            row = ModelVersionRepository(session).find(classifier.id, name)
            assert row is not None and row.artifact_path
            stored = desk.artifacts.path(f"models/{row.classifier_id}/{row.id}/{TEST_PREDICTIONS}")
            files[name] = (Path(row.artifact_path), Path(stored))
    files["v3"][0].unlink()  # the model only: its stored test predictions still list the mistakes
    page = client.get("/console/classifiers/desk/versions/v3")
    assert page.status_code == 200 and 'data-testid="features"' not in page.text
    assert re.search(r'data-testid="no-features">No strongest features: the model cannot be read', page.text)
    assert 'data-testid="per-label"' in page.text and 'data-testid="confusion"' in page.text
    assert 'data-testid="no-test-documents"' not in page.text and '<li class="doc">' in page.text
    for path in files["v4"]:  # the model and its test predictions: the mistakes say why too
        path.unlink()
    page = client.get("/console/classifiers/desk/versions/v4")
    assert page.status_code == 200 and 'data-testid="no-features"' in page.text
    assert re.search(
        r'data-testid="no-test-documents">The test documents cannot be listed: .*no scored test', page.text
    )
    assert 'data-testid="per-label"' in page.text


def test_a_reviewer_cannot_open_admin_pages_nor_promote_but_an_admin_promotes_and_rolls_back(browser, desk):
    reviewer = browser("ana")
    for path in ("/console/jobs", "/console/upload", "/console/jobs/rows", "/console/jobs/0123abcd"):
        response = reviewer.get(path, follow_redirects=False)
        assert response.status_code == 403 and "for the role admin" in response.text
    token = csrf_of(reviewer.get("/review").text)
    for action, form in (("promote", {"version": "v1"}), ("rollback", {})):
        response = reviewer.post(f"/console/classifiers/desk/{action}", data={"csrf": token} | form)
        assert response.status_code == 403
    job_id = desk.jobs.list()[0]["id"]
    for path in (f"/console/jobs/{job_id}/stop", f"/console/jobs/{job_id}/retry", "/console/upload"):
        assert reviewer.post(path, data={"csrf": token}).status_code == 403, path
    assert desk.loops.champion("desk")["version"] == "v2"
    client = browser("ad")
    page = client.get("/console/classifiers/desk").text
    token = csrf_of(page)
    assert 'data-testid="promote-v1"' in page and 'data-testid="promote-v2"' not in page
    assert (
        client.post("/console/classifiers/desk/promote", data={"version": "v1"}).status_code == 403
    )  # no token
    response = client.post("/console/classifiers/desk/promote", data={"csrf": token, "version": "v1"})
    assert response.status_code == 200 and "Promoted" in response.text
    assert desk.endpoints.show("desk-live")["version"] == "v1"
    response = client.post("/console/classifiers/desk/rollback", data={"csrf": token})
    assert "Rolled back" in response.text and desk.endpoints.show("desk-live")["version"] == "v2"
    response = client.post("/console/classifiers/desk/promote", data={"csrf": token, "version": "v9"})
    assert response.status_code == 404 and "no version" in response.text


def test_an_upload_with_bad_rows_shows_each_rows_error_and_stores_nothing(browser, web_app, tickets):
    client = browser("ad")
    token = csrf_of(client.get("/console/upload").text)
    good = "".join(f'{label},"{text.replace(chr(34), "")}"\n' for label, text in tickets[:40])
    body = good + "NETWORK,\n" + good + ",no label here\n"
    files = {"file": ("../../etc/tickets.csv", body.encode(), "text/csv")}
    response = client.post("/console/upload", data={"csrf": token, "classifier": "fresh"}, files=files)
    assert response.status_code == 200 and 'data-testid="problem"' in response.text
    rows = re.findall(r"<li>(tickets\.csv:\d+: [^<]+)</li>", response.text)
    assert [row.split(":")[1] for row in rows] == ["41", "82"]
    assert all("uploads" not in row for row in rows)  # the user's file name, not the server's copy
    assert 'value="fresh"' in response.text  # the form keeps what was sent
    assert web_app.state.tagloop.catalog.classifiers() == []
    assert not any((web_app.state.tagloop.settings.data_dir / "uploads").glob("*/*"))


def test_an_upload_queues_its_training_and_the_job_page_follows_it(browser, web_app, tickets):
    client = browser("ad")
    token = csrf_of(client.get("/console/upload").text)
    data = "".join(json.dumps({"text": text, "labels": [label]}) + "\n" for label, text in tickets)
    files = {"file": ("tickets.jsonl", data.encode(), "application/octet-stream")}
    response = client.post(
        "/console/upload", data={"csrf": token, "classifier": "fresh"}, files=files, follow_redirects=False
    )
    assert response.status_code == 303, response.text[:3000]
    job_page = client.get(response.headers["location"])
    assert "File imported" in job_page.text and 'data-testid="job-status">SUBMITTED' in job_page.text
    assert 'hx-trigger="every 1s"' in job_page.text  # live until it ends
    job_id = response.headers["location"].split("/")[-1].split("?")[0]
    tagloop = web_app.state.tagloop
    # stop it from the list (not started: it stops at once), then retry it and let it run
    listing = client.get("/console/jobs").text
    assert f'data-job="{job_id}"' in listing and 'data-testid="stop"' in listing
    stopped = client.post(f"/console/jobs/{job_id}/stop", data={"csrf": token, "back": "list"})
    assert "Stop requested" in stopped.text and tagloop.jobs.show(job_id)["status"] == "STOPPED"
    retried = client.post(f"/console/jobs/{job_id}/retry", data={"csrf": token})
    assert "Queued again" in retried.text
    tagloop.queue.run_until_idle()
    final = client.get(f"/console/jobs/{job_id}/progress").text
    assert 'data-testid="job-status">COMPLETED' in final and "hx-trigger" not in final
    assert "hx-trigger" not in client.get("/console/jobs/rows").text  # nothing moves: polling stops
    assert tagloop.catalog.version("fresh", "v1")["status"] == "TRAINED"


def test_a_multi_label_version_opens_each_labels_cells(browser, web_app, tickets, tmp_path):
    data = tmp_path / "multi.jsonl"
    with data.open("w") as out:
        for i, (label, text) in enumerate(tickets[:200]):
            out.write(
                json.dumps({"text": text, "labels": [label, *(["URGENT"] if i % 3 == 0 else [])]}) + "\n"
            )
    tagloop = web_app.state.tagloop
    tagloop.training.train(TrainRequest("multi", str(data), mode=Mode.MULTI_LABEL))
    version = tagloop.catalog.version("multi", "v1")
    client = browser("ana")
    page = client.get("/console/classifiers/multi/versions/v1").text
    links = re.findall(
        r'href="(/console/classifiers/multi/versions/v1/cell\?label=(\w+)&amp;cell=(\w+))"', page
    )
    order = ["true_negative", "false_positive", "false_negative", "true_positive"]
    expected = {
        (label, order[2 * i + j])
        for label, matrix in zip(
            version["labels"], version["confusion_matrix"]["confusion_matrix"], strict=True
        )
        for i in range(2)
        for j in range(2)
        if matrix[i][j]
    }
    assert {(label, cell) for _, label, cell in links} == expected
    href = next(link[0] for link in links if link[1:] == ("URGENT", "true_positive"))
    matrices = version["confusion_matrix"]["confusion_matrix"]
    count = matrices[version["labels"].index("URGENT")][1][1]
    assert f"{count} test document" in client.get(unescape(href)).text
    assert (
        client.get("/console/classifiers/multi/versions/v1/cell?label=URGENT&cell=nothing").status_code == 400
    )
