"""Property-based fuzz of every dataset reader (issue 10, items 9, 10, 14): random bytes,
random JSON and random CSV give either products or one SearchError line, never another
exception; through the CLI, a failure is one ``error:`` line and exit code 2."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from retrieval.data import open_dataset
from retrieval.errors import SearchError
from search.cli import app

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "/etc/passwd", "x.html", "a::b", "\x00"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.dictionaries(
    st.sampled_from(["id", "title", "image", "group", "matches", "split"]) | st.text(max_size=6),
    json_values,
    max_size=6,
)
cells = st.text(max_size=12) | st.sampled_from(['"', '""', "\n", "\r\n", ",", "\x00", "\ufeff"])
csv_tables = st.lists(st.lists(cells, min_size=1, max_size=6), min_size=0, max_size=6)
COLUMNS = ["posting_id", "image", "image_phash", "title", "label_group", "id", "group"]


def read_all(path: Path, fmt: str | None = None) -> None:
    """Open and read a dataset the way `search data info` does; only SearchError may escape."""
    try:
        ds = open_dataset(path, format=fmt)
        ds.describe()
    except SearchError as exc:
        assert "\n" not in str(exc).strip(), str(exc)


def write_dir(tmp: Path, files: dict[str, bytes]) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return tmp


def raw_csv(header: list[str], rows: list[list[str]]) -> bytes:
    """Rows joined by commas with no quoting at all (so quotes arrive unbalanced)."""
    return "\n".join(",".join(r) for r in [header, *rows]).encode("utf-8", "surrogatepass")


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".zip"]))
def test_random_bytes_in_any_file(tmp_path_factory, data, suffix):
    tmp = tmp_path_factory.mktemp("bytes")
    path = tmp / f"set{suffix}"
    path.write_bytes(data)
    read_all(path)
    for fmt in ("catalog", "shopee"):
        read_all(path, fmt)
    read_all(write_dir(tmp / "qg", {"gallery.jsonl": data, "queries.jsonl": data}))
    read_all(write_dir(tmp / "sh", {"train.csv": data}))


@FUZZ
@given(lines=st.lists(records | json_values, max_size=5))
def test_random_json_records(tmp_path_factory, lines):
    tmp = tmp_path_factory.mktemp("json")
    text = "".join(json.dumps(x) + "\n" for x in lines).encode()
    (tmp / "c.jsonl").write_bytes(text)
    read_all(tmp / "c.jsonl")
    (tmp / "c.json").write_text(json.dumps(lines))
    read_all(tmp / "c.json")
    read_all(write_dir(tmp / "qg", {"gallery.jsonl": text, "queries.jsonl": text}))


@FUZZ
@given(
    header=st.lists(st.sampled_from(COLUMNS) | st.text(max_size=6), min_size=1, max_size=6),
    rows=csv_tables,
    quoted=st.booleans(),
)
def test_random_csv(tmp_path_factory, header, rows, quoted):
    tmp = tmp_path_factory.mktemp("csv")
    if quoted:
        buf = io.StringIO()
        csv.writer(buf).writerows([header, *rows])
        data = buf.getvalue().encode("utf-8", "surrogatepass")
    else:
        data = raw_csv(header, rows)
    (tmp / "c.csv").write_bytes(data)
    read_all(tmp / "c.csv")
    read_all(tmp / "c.csv", "catalog")
    read_all(write_dir(tmp / "sh", {"train.csv": data, "test.csv": data}))
    with zipfile.ZipFile(tmp / "sh.zip", "w") as zf:
        zf.writestr("train.csv", data)
    read_all(tmp / "sh.zip")


@settings(FUZZ, max_examples=25)
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".jsonl", ".csv", ".json"]))
def test_data_info_cli_is_one_line(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("cli") / f"set{suffix}"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["data", "info", str(path), "--json"])
    assert result.exit_code in (0, 2), result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    if result.exit_code:
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
