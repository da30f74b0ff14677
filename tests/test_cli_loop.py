"""The learning loop's CLI: iterate, iterations, versions promote/rollback, loop show/set,
endpoints --follow/--pin (one JSON document on stdout with --json; one-line errors)."""

from __future__ import annotations

import json

from tests.test_cli import finish, ok, refused, run, start


def test_loop_commands(tmp_path, tickets_csv):
    data_dir = tmp_path / "data"
    for _ in range(2):
        ok(run("train", "desk", "--data", str(tickets_csv), "--json", data_dir=data_dir))
    created = json.loads(
        ok(run("endpoints", "create", "desk", "--classifier", "desk", "--json", data_dir=data_dir))
    )
    assert (created["version"], created["follows"]) == ("v2", True)  # no champion yet: the newest

    iteration = json.loads(ok(run("iterate", "desk", "--json", data_dir=data_dir)))
    assert (iteration["status"], iteration["champion"], iteration["challenger"]) == ("COMPLETED", "v2", "v3")
    assert iteration["decision"] == "kept"
    listed, shown, loop = finish(
        start("iterations", "desk", "--json", data_dir=data_dir),
        start("iterations", "desk", iteration["iteration"], "--json", data_dir=data_dir),
        start("loop", "show", "desk", "--json", data_dir=data_dir),
    )
    assert [i["iteration"] for i in json.loads(ok(listed))] == [iteration["iteration"]]
    assert json.loads(ok(shown))["per_label"] == iteration["per_label"]
    assert json.loads(ok(loop))["champion"] == "v2"

    promoted = json.loads(ok(run("versions", "promote", "desk", "v3", "--json", data_dir=data_dir)))
    assert (promoted["champion"], promoted["previous"], promoted["endpoints"]) == ("v3", "v2", ["desk"])
    back = json.loads(ok(run("versions", "rollback", "desk", "--json", data_dir=data_dir)))
    assert back["champion"] == "v2"
    text = ok(run("versions", "rollback", "desk", "--to", "v1", data_dir=data_dir))
    assert "champion v2 → v1" in text

    changed = json.loads(
        ok(run("loop", "set", "desk", "--min-gain", "0.01", "--every", "3600", "--json", data_dir=data_dir))
    )
    assert changed["settings"]["min_gain"] == 0.01 and changed["settings"]["every_seconds"] == 3600
    cleared = json.loads(ok(run("loop", "set", "desk", "--every", "off", "--json", data_dir=data_dir)))
    assert cleared["settings"]["every_seconds"] is None

    pinned = json.loads(ok(run("endpoints", "update", "desk", "--pin", "--json", data_dir=data_dir)))
    assert (pinned["version"], pinned["follows"]) == ("v1", False)

    bad_metric, bad_every, nothing, no_version, no_classifier = finish(
        start("loop", "set", "desk", "--metric", "Nope", data_dir=data_dir),
        start("loop", "set", "desk", "--every", "soon", data_dir=data_dir),
        start("loop", "set", "desk", data_dir=data_dir),
        start("versions", "promote", "desk", "v9", data_dir=data_dir),
        start("iterate", "nobody", data_dir=data_dir),
    )
    assert "metric" in refused(bad_metric)
    assert "every_seconds" in refused(bad_every)
    assert "nothing to change" in refused(nothing)
    assert "v9" in refused(no_version)
    assert "nobody" in refused(no_classifier)
