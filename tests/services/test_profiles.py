"""Import profiles through the services, on real files, archives and databases: the documented
recipe trained end to end, column mappings and filters, labels from member names and folders,
errors that name member and line with nothing imported, archive bombs and escaping paths
refused, and a SQL source that cannot write, is limited in rows and time, and keeps its password
sealed."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import sqlite3
import tarfile
import zipfile
from collections import Counter

import psycopg
import pytest
from sqlalchemy import func, select

from tagloop.domain.profiles import ProfileSpec
from tagloop.domain.records import Mode
from tagloop.errors import (
    AlreadyExists,
    ArchiveRefused,
    DatasetInvalid,
    InvalidRequest,
    LimitExceeded,
    NotFound,
)
from tagloop.services import sql_sources
from tagloop.services.profiles import ImportLimits, ProfileReader
from tagloop.services.training import TrainRequest
from tagloop.storage.tables import DocumentRow, ImportProfileRow, ModelVersionRow

RECIPE = {
    "query": "SELECT type, summary, description FROM issue",
    "filters": ["type=Bug"],
    "text_columns": ["summary", "description"],
    "label_from": "member",
}


def rows_of(spec: dict, source: str, **limits) -> list:
    reader = ProfileReader("p", ProfileSpec.from_dict(spec), ImportLimits(**limits))
    return list(reader.rows(source))


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def bug_counts(path, projects=("hadoop", "spark", "kafka")) -> Counter:
    """What the recipe must import: the Bug rows of each project, counted with sqlite3 directly."""
    counts: Counter = Counter()
    with zipfile.ZipFile(path) as archive:
        for project in projects:
            data = bz2.decompress(archive.read(f"{project}.sqlite3.bz2"))
            connection = sqlite3.connect(":memory:")
            connection.deserialize(data)
            counts[project.upper()] = connection.execute(
                "SELECT count(*) FROM issue WHERE type = 'Bug'"
            ).fetchone()[0]
    return counts


def test_the_documented_recipe_trains_a_version(make_tagloop, issue_archive):
    archive = issue_archive(rows=60)
    tagloop = make_tagloop()
    tagloop.profiles.put("issues", "bugs", RECIPE)
    result = tagloop.training.train(TrainRequest("issues", str(archive), profile="bugs"))
    assert result["status"] == "TRAINED" and result["labels"] == ["HADOOP", "KAFKA", "SPARK"]
    expected = bug_counts(archive)
    assert sum(result["documents"].values()) == sum(expected.values())
    with tagloop.database.reading() as session:
        version = session.scalars(select(ModelVersionRow)).one()
        assert version.parameters["sources"]["profile"]["name"] == "bugs"
        assert version.parameters["sources"]["profile"]["spec"]["filters"][0]["values"] == ["Bug"]
        texts = session.scalars(select(DocumentRow.text).limit(3)).all()
    assert all(" the " in text for text in texts)  # summary + " " + description


def test_profile_and_format_options_do_not_mix(make_tagloop, issue_archive):
    tagloop = make_tagloop()
    tagloop.profiles.put("issues", "bugs", RECIPE)
    with pytest.raises(InvalidRequest, match=r"either an import profile or a format"):
        tagloop.training.submit(TrainRequest("issues", str(issue_archive()), profile="bugs", format="csv"))
    with pytest.raises(NotFound, match=r"no import profile 'other'"):
        tagloop.training.submit(TrainRequest("issues", str(issue_archive(name="b.zip")), profile="other"))
    with pytest.raises(InvalidRequest, match=r"reads files: give the file"):
        tagloop.training.submit(TrainRequest("issues", None, profile="bugs"))


def test_csv_mapping_multi_label_delimiter_and_filters(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_bytes(
        csv_bytes(
            [
                ["id", "subject", "body", "tags", "status"],
                ["1", "VPN down", "since monday", "NETWORK;ACCESS", "open"],
                ["2", "spam", "buy now", "JUNK", "spam"],
                ["3", "Printer", "", "HARDWARE", "closed"],
            ]
        )
    )
    spec = {
        "format": "csv",
        "text_columns": ["subject", "body"],
        "joiner": " / ",
        "label_column": "tags",
        "label_delimiter": ";",
        "filters": [{"column": "status", "values": ["spam"], "exclude": True}],
    }
    rows = rows_of(spec, str(path))
    assert [(r.line, r.text, r.labels) for r in rows] == [
        (2, "VPN down / since monday", "NETWORK;ACCESS"),
        (4, "Printer", "HARDWARE"),
    ]


def test_jsonl_keys_and_labels_list(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    lines = [
        {"title": "a", "body": "b", "tags": ["X", "Y"]},
        {"title": "c", "tags": "Z"},
        {"note": "no text"},
    ]
    path.write_bytes(gzip.compress("\n".join(json.dumps(x) for x in lines).encode()))
    rows = rows_of({"text_columns": ["title", "body"], "label_column": "tags"}, str(path))
    assert [(r.line, getattr(r, "text", None)) for r in rows] == [(1, "a b"), (2, "c"), (3, None)]
    assert rows[0].labels == ["X", "Y"] and "missing key 'title', 'body'" in rows[2].reason


def test_tar_gz_of_folders_per_label_with_documents_and_lines(tmp_path):
    path = tmp_path / "news.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in {
            "news/sci.space/1.txt": b"orbit of the moon",
            "news/sci.space/2.txt": b"launch window",
            "news/rec.autos/1.txt": b"engine oil",
            "news/rec.autos/.hidden": b"ignored",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    rows = rows_of({"format": "document", "label_from": "folder", "label_case": "keep"}, str(path))
    assert sorted((r.text, r.labels, r.member) for r in rows) == [
        ("engine oil", "rec.autos", "news/rec.autos/1.txt"),
        ("launch window", "sci.space", "news/sci.space/2.txt"),
        ("orbit of the moon", "sci.space", "news/sci.space/1.txt"),
    ]
    lines = tmp_path / "per-label.zip"
    with zipfile.ZipFile(lines, "w") as archive:
        archive.writestr("comp.graphics.txt", "render a cube\n\nshade a sphere\n")
        archive.writestr("misc.forsale.txt.bz2", bz2.compress(b"bike for sale\n"))
    rows = rows_of({"label_from": "member", "label_map": {"misc": "FORSALE"}}, str(lines))
    assert [(r.line, r.text, r.labels) for r in rows] == [
        (1, "render a cube", "COMP"),
        (3, "shade a sphere", "COMP"),
        (1, "bike for sale", "FORSALE"),
    ]


def test_sqlite_file_alone_in_place_and_compressed(tmp_path, issue_archive):
    archive = issue_archive(rows=10, projects=("hadoop",))
    data = bz2.decompress(zipfile.ZipFile(archive).read("hadoop.sqlite3.bz2"))
    plain = tmp_path / "hadoop.sqlite3"
    plain.write_bytes(data)
    (tmp_path / "hadoop.sqlite3.bz2").write_bytes(bz2.compress(data))
    for source in (plain, tmp_path / "hadoop.sqlite3.bz2"):
        rows = rows_of(RECIPE, str(source))
        assert len(rows) == 5 and {r.labels for r in rows} == {"HADOOP"}
    assert plain.read_bytes() == data  # opened read-only, in place


def test_rejected_rows_name_member_and_line_and_nothing_is_imported(make_tagloop, tmp_path):
    path = tmp_path / "teams.zip"
    good = [["text"], *[[f"ticket {i} about the printer"] for i in range(12)]]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hardware.csv", csv_bytes(good))
        archive.writestr(
            "network.csv", csv_bytes([["text", "note"], ["vpn down", ""], ["", "x"], ["dns", ""]])
        )
    tagloop = make_tagloop()
    tagloop.profiles.put("desk", "teams", {"format": "csv", "label_from": "member"})
    with pytest.raises(DatasetInvalid) as caught:
        tagloop.training.submit(TrainRequest("desk", str(path), profile="teams"))
    issue = caught.value.issues[0]
    assert (issue.member, issue.line, issue.reason) == ("network.csv", 3, "empty text")
    assert "network.csv, line 3: empty text" in caught.value.message
    with tagloop.database.reading() as session:
        assert session.scalar(select(func.count()).select_from(DocumentRow)) == 0
        assert session.scalar(select(func.count()).select_from(ModelVersionRow)) == 0


def test_a_damaged_member_is_named(tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv.gz", b"\x1f\x8b\x08\x00not gzip at all")
    with pytest.raises(DatasetInvalid, match=r"member a.csv.gz is truncated or damaged"):
        rows_of({"label_from": "member", "format": "lines"}, str(path))


# ---- archive bombs and escaping paths --------------------------------------------------
def test_a_deflate_bomb_is_refused_by_ratio(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", b"\n" * 5_000_000)  # ~5 KB stored: ratio ~1000
    with pytest.raises(
        ArchiveRefused, match=r"member a.txt unpacks to more than 200 times.*TAGLOOP_ARCHIVE_MAX_RATIO"
    ):
        rows_of({"label_from": "member"}, str(path))


def test_a_nested_bz2_bomb_is_refused_by_ratio(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("x.sqlite3.bz2", bz2.compress(b"\0" * 50_000_000))  # ~40 bytes, ratio 10^6
    with pytest.raises(ArchiveRefused, match=r"member x.sqlite3.bz2 unpacks to more than"):
        rows_of(RECIPE, str(path))


def test_a_single_compressed_file_bomb_is_refused(tmp_path):
    from tagloop.domain.archives import ArchiveLimits

    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(b"A,x\n" * 1_000_000, compresslevel=1))
    with pytest.raises(ArchiveRefused, match=r"big.csv.gz unpacks to more than 20 times"):
        rows_of({}, str(path), archive=ArchiveLimits(max_ratio=20))


def test_member_count_and_total_size_limits(tmp_path):
    from tagloop.domain.archives import ArchiveLimits

    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(5):
            archive.writestr(f"l{i}.txt", f"text {i}\n" * 1000)
    with pytest.raises(ArchiveRefused, match=r"more than 4 members"):
        rows_of({"label_from": "member"}, str(path), archive=ArchiveLimits(max_members=4))
    with pytest.raises(ArchiveRefused, match=r"declare 35,000 bytes unpacked"):
        rows_of({"label_from": "member"}, str(path), archive=ArchiveLimits(max_total_bytes=20_000))
    tar = tmp_path / "many.tar"
    with tarfile.open(tar, "w") as archive:
        for i in range(3):
            data = b"t\n" * 5000
            info = tarfile.TarInfo(f"l{i}.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with pytest.raises(ArchiveRefused, match=r"TAGLOOP_ARCHIVE_MAX_TOTAL_BYTES"):
        rows_of({"label_from": "member"}, str(tar), archive=ArchiveLimits(max_total_bytes=15_000))


@pytest.mark.parametrize("name", ["../evil.csv", "/etc/evil.csv", "a/../../evil.csv"])
def test_zip_members_escaping_the_folder_are_refused_before_any_read(tmp_path, name):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fine.txt", "a fine line\n")
        archive.writestr(zipfile.ZipInfo(name), "x\n")
    with pytest.raises(ArchiveRefused, match=r"out of the extraction folder|absolute path"):
        rows_of({"label_from": "member", "format": "lines"}, str(path))
    assert not (tmp_path.parent / "evil.csv").exists()


def test_tar_links_and_escaping_paths_are_refused(tmp_path):
    link = tmp_path / "link.tar"
    with tarfile.open(link, "w") as archive:
        info = tarfile.TarInfo("a.txt")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(ArchiveRefused, match=r"member a.txt is a link"):
        rows_of({"label_from": "member"}, str(link))
    escape = tmp_path / "escape.tar.gz"
    with tarfile.open(escape, "w:gz") as archive:
        info = tarfile.TarInfo("../../x.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"x\n"))
    with pytest.raises(ArchiveRefused, match=r"'..' in its path"):
        rows_of({"label_from": "member"}, str(escape))


def test_zip_symlink_members_are_refused(tmp_path):
    path = tmp_path / "link.zip"
    info = zipfile.ZipInfo("a.txt")
    info.external_attr = (0o120777 << 16) | 0
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveRefused, match=r"symbolic link"):
        rows_of({"label_from": "member"}, str(path))


# ---- SQL sources -------------------------------------------------------------------------
def sqlite_file(tmp_path, rows: int = 5):
    path = tmp_path / "src.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (text TEXT, label TEXT)")
    connection.executemany(
        "INSERT INTO t VALUES (?, ?)", [(f"row {i}", "A" if i % 2 else "B") for i in range(rows)]
    )
    connection.commit()
    connection.close()
    return path


def mapper_for(columns):
    return ProfileSpec(label_column="label").mapper(columns)


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM t",
        "INSERT INTO t VALUES ('x', 'y')",
        "ATTACH DATABASE '/tmp/other.db' AS other",
        "PRAGMA query_only = OFF",
        "CREATE TABLE u (a)",
    ],
)
def test_the_sqlite_connection_cannot_write(tmp_path, query):
    """Past the static check (called here directly), the connection itself refuses."""
    path = sqlite_file(tmp_path)
    before = path.read_bytes()
    with pytest.raises(InvalidRequest):
        list(sql_sources.sqlite_rows(str(path), query, mapper_for, 100, 10, "src.sqlite3"))
    assert path.read_bytes() == before


def test_sqlite_row_limit_and_timeout(tmp_path):
    path = sqlite_file(tmp_path, rows=50)
    rows = list(sql_sources.sqlite_rows(str(path), "SELECT * FROM t", mapper_for, 50, 10, "src"))
    assert len(rows) == 50
    with pytest.raises(LimitExceeded, match=r"more than 49 rows.*TAGLOOP_IMPORT_MAX_ROWS"):
        list(sql_sources.sqlite_rows(str(path), "SELECT * FROM t", mapper_for, 49, 10, "src"))
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT count(*) AS text, 'A' AS label FROM n"
    )
    with pytest.raises(LimitExceeded, match=r"ran longer than 0.2 s.*TAGLOOP_IMPORT_QUERY_TIMEOUT_SECONDS"):
        list(sql_sources.sqlite_rows(str(path), endless, mapper_for, 50, 0.2, "src"))


def test_a_query_error_and_a_file_that_is_no_database_are_named(tmp_path):
    path = sqlite_file(tmp_path)
    with pytest.raises(InvalidRequest, match=r"src.sqlite3: the query failed: no such table: nope"):
        list(sql_sources.sqlite_rows(str(path), "SELECT * FROM nope", mapper_for, 10, 10, "src.sqlite3"))
    other = tmp_path / "notes.db"
    other.write_bytes(b"hello, I am not a database" * 100)
    with pytest.raises(InvalidRequest, match=r"notes.db: not a SQLite database"):
        list(sql_sources.sqlite_rows(str(other), "SELECT * FROM t", mapper_for, 10, 10, "notes.db"))


@pytest.fixture
def issue_database(fresh_postgres):
    with psycopg.connect(fresh_postgres, autocommit=True) as connection:
        connection.execute("CREATE TABLE issue (project text, type text, summary text, description text)")
        connection.execute("CREATE SEQUENCE numbers")
        for i in range(30):
            connection.execute(
                "INSERT INTO issue VALUES (%s, %s, %s, %s)",
                ("hadoop" if i % 3 else "spark", "Bug" if i % 2 else "Task", f"summary {i}", f"details {i}"),
            )
    return fresh_postgres


def test_a_postgresql_source_trains_and_keeps_its_password_sealed(make_tagloop, issue_database):
    url = issue_database.replace("postgres@", "postgres:s3cret@")  # trust auth: any password works
    tagloop = make_tagloop()
    spec = {
        "database_url": url,
        "query": "SELECT summary, description, upper(project) AS label FROM issue WHERE type = 'Bug'",
        "text_columns": ["summary", "description"],
    }
    shown = tagloop.profiles.put("issues", "db", spec)
    assert "s3cret" not in json.dumps(shown) and "***" in shown["spec"]["database_url"]
    with tagloop.database.reading() as session:
        assert "s3cret" not in json.dumps(session.scalars(select(ImportProfileRow.spec)).one())
    assert tagloop.profiles.get("issues", "db").database_url == url
    result = tagloop.training.train(TrainRequest("issues", None, profile="db"))
    assert result["labels"] == ["HADOOP", "SPARK"] and sum(result["documents"].values()) == 15
    with tagloop.database.reading() as session:
        version = session.scalars(select(ModelVersionRow)).one()
    assert "s3cret" not in json.dumps(version.parameters)


def test_a_postgresql_connection_cannot_write_and_times_out(issue_database):
    with pytest.raises(InvalidRequest, match=r"query failed: syntax error"):  # no cursor for a statement
        list(sql_sources.database_rows(issue_database, "CREATE TABLE stolen (a int)", mapper_for, 10, 10))
    with pytest.raises(InvalidRequest, match=r"must only read.*read-only transaction"):
        list(
            sql_sources.database_rows(
                issue_database, "SELECT nextval('numbers')::text AS text, 'a' AS label", mapper_for, 10, 10
            )
        )
    with pytest.raises(InvalidRequest, match=r"data-modifying"):
        list(
            sql_sources.database_rows(
                issue_database,
                "WITH gone AS (DELETE FROM issue RETURNING summary AS text, type AS label) "
                "SELECT * FROM gone",
                mapper_for,
                100,
                10,
            )
        )
    with psycopg.connect(issue_database) as connection:
        assert connection.execute("SELECT count(*) FROM issue").fetchone() == (30,)
        assert connection.execute("SELECT to_regclass('stolen')").fetchone() == (None,)
        assert connection.execute("SELECT last_value, is_called FROM numbers").fetchone() == (1, False)
    with pytest.raises(LimitExceeded, match=r"ran longer than 0.3 s"):
        list(
            sql_sources.database_rows(
                issue_database, "SELECT pg_sleep(5)::text AS text, 'a' AS label", mapper_for, 10, 0.3
            )
        )
    with pytest.raises(LimitExceeded, match=r"more than 10 rows"):
        list(
            sql_sources.database_rows(
                issue_database, "SELECT summary AS text, type AS label FROM issue", mapper_for, 10, 10
            )
        )


def test_other_databases_are_refused():
    with pytest.raises(InvalidRequest, match=r"reads sqlite, postgresql, mysql, mariadb databases only"):
        sql_sources.parse_database_url("oracle://scott@host/db")


# ---- the service -------------------------------------------------------------------------
def test_crud_and_preview(make_tagloop, issue_archive, tmp_path):
    tagloop = make_tagloop()
    created = tagloop.profiles.put("issues", "bugs", RECIPE, mode=Mode.MULTI_CLASS)
    assert created["created"] and created["spec"]["label_from"] == "member"
    with pytest.raises(AlreadyExists):
        tagloop.profiles.put("issues", "bugs", RECIPE, replace=False)
    assert not tagloop.profiles.put("issues", "bugs", RECIPE | {"joiner": "\n"})["created"]
    assert [p["name"] for p in tagloop.profiles.list("issues")] == ["bugs"]
    archive = issue_archive(rows=20)
    preview = tagloop.profiles.preview("issues", "bugs", str(archive), rows=2)
    assert preview["complete"] and preview["rejected"] == 0 and len(preview["sample"]) == 2
    assert preview["filtered"] == 30 and preview["kept"] == 30
    assert preview["label_counts"] == {"HADOOP": 10, "KAFKA": 10, "SPARK": 10}
    assert [m["name"] for m in preview["members"]] == [
        "hadoop.sqlite3.bz2",
        "spark.sqlite3.bz2",
        "kafka.sqlite3.bz2",
    ]
    tagloop.profiles.delete("issues", "bugs")
    with pytest.raises(NotFound):
        tagloop.profiles.show("issues", "bugs")


def test_temporary_copies_are_removed_also_on_errors(tmp_path, issue_archive, monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    archive = issue_archive(rows=10)
    assert len(rows_of(RECIPE, str(archive))) == 15
    reader = ProfileReader("p", ProfileSpec.from_dict(RECIPE), ImportLimits())
    rows = reader.rows(str(archive))
    next(rows)  # a reader left half-way (a preview) ...
    rows.close()
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as handle:
        handle.writestr("a.sqlite3.bz2", bz2.compress(b"not a database" * 100))
    with pytest.raises(InvalidRequest, match="not a SQLite database"):
        rows_of(RECIPE, str(broken))
    assert list(scratch.iterdir()) == []


def test_a_tar_gz_bomb_is_refused_by_the_archive_ratio(tmp_path):
    path = tmp_path / "bomb.tar.gz"
    data = b"\n" * 5_000_000
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("a.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(ArchiveRefused, match=r"the archive unpacks to more than 200 times"):
        rows_of({"label_from": "member"}, str(path))
