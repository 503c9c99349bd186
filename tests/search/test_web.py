"""The result viewer's HTTP API over a real edge index and a real evaluation run."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from retrieval.data.synth import synthesize
from search.cli import app
from search.config import load_config
from search.web.server import serve


@pytest.fixture
def viewer(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SEARCH_HOME", str(home))
    data = synthesize(tmp_path / "synth", groups=15, seed=1, image_size=48)
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(data), "-e", "sparse", "-e", "phash"]).exit_code == 0
    res = runner.invoke(
        app,
        [
            "eval",
            str(data),
            "--collection",
            "synth",
            "--out",
            str(tmp_path / "runs" / "r1"),
            "--k",
            "10",
        ],
    )
    assert res.exit_code == 0, res.output
    server = serve(load_config(None), tmp_path / "runs", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", data
    server.shutdown()
    server.server_close()


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.read()


def post(url, body):
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_page_collections_and_text_query(viewer):
    base, _ = viewer
    status, page = get(base + "/")
    assert status == 200 and b"product-search" in page
    _, body = get(base + "/api/collections")
    assert [c["name"] for c in json.loads(body)] == ["synth"]
    answer = post(
        base + "/api/query", {"text": "samsung galaxy a52 128gb", "collection": "synth", "n": 3}
    )
    assert answer["vector"] == "hybrid" and len(answer["hits"]) == 3
    # an image an answer listed can be fetched; any other path is refused
    ref = answer["hits"][0]["image_path"]
    status, img = get(base + "/api/image?ref=" + urllib.parse.quote(ref))
    assert status == 200 and img[:2] == b"\xff\xd8"  # JPEG
    with pytest.raises(urllib.error.HTTPError) as err:
        get(base + "/api/image?ref=/etc/passwd")
    assert err.value.code == 404


def test_image_upload_query_uses_phash(viewer):
    base, data = viewer
    first = sorted((data / "train_images").iterdir())[0]
    image = base64.b64encode(first.read_bytes()).decode()
    answer = post(
        base + "/api/query",
        {"text": "", "image": image, "collection": "synth", "vector": "phash", "n": 1},
    )
    assert answer["hits"][0]["image_path"].endswith(first.name)  # the same picture comes first


def test_bad_query_is_a_json_error(viewer):
    base, _ = viewer
    with pytest.raises(urllib.error.HTTPError) as err:
        post(base + "/api/query", {"text": "x", "collection": "synth", "vector": "nope"})
    assert err.value.code == 400
    assert "unknown vector" in json.loads(err.value.read())["error"]


def test_runs_list_and_one_run(viewer):
    base, _ = viewer
    _, body = get(base + "/api/runs")
    runs = json.loads(body)
    assert [r["path"] for r in runs] == ["r1"]
    _, body = get(base + "/api/run?path=r1")
    run = json.loads(body)
    assert "stage1/recall@10" in run["metrics"]
    q = run["queries"][0]
    assert (
        q["title"] and q["stage1"] and {"id", "title", "image", "relevant"} <= set(q["stage1"][0])
    )
    assert any(i["relevant"] for qq in run["queries"] for i in qq["stage1"])


def test_port_in_use_is_one_line(tmp_path):
    import socket

    from typer.testing import CliRunner

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        res = CliRunner().invoke(app, ["serve", "--runs", str(tmp_path), "--port", str(port)])
    assert res.exit_code == 1 and "try --port 0" in res.output
    assert "Traceback" not in res.output
