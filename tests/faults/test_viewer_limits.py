"""Issue 23, viewer cases: a bounded model cache confined to ``--models-dir`` (7), slow
header clients that cannot starve the viewer (8), a 50,000-deep JSON body (9), the image
cap checked from ``stat`` before a byte is read (6, viewer part), and a client that hangs
up logs no traceback (16, viewer part). Every server here is a real uvicorn on
127.0.0.1; loops are bounded in count and time."""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import socket
import stat
import time
import urllib.parse

import pytest
from helpers.viewer import SlowClients, jpeg_bytes, query, request, running
from typer.testing import CliRunner

from search.cli import app
from search.config import load_config
from search.web.server import serve

REQUEST_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A catalogue of four listings with real JPEGs, indexed as collection ``shop``;
    after indexing, p1's image becomes a FIFO, p2's a 2 GB sparse file and p3's a
    character device (where mknod is allowed): what a careless catalogue can name."""
    root = tmp_path_factory.mktemp("limits")
    mp = pytest.MonkeyPatch()
    mp.setenv("SEARCH_HOME", str(root / "home"))
    (root / "shop" / "img").mkdir(parents=True)
    rows = []
    for i in range(4):
        (root / "shop" / "img" / f"p{i}.jpg").write_bytes(jpeg_bytes())
        rows.append(
            f'{{"id": "p{i}", "title": "red running shoe size {i}", "image": "img/p{i}.jpg"}}'
        )
    catalog = root / "shop" / "catalog.jsonl"
    catalog.write_text("\n".join(rows) + "\n")
    res = CliRunner().invoke(app, ["index", str(catalog), "-e", "sparse", "-c", "shop"])
    assert res.exit_code == 0, res.output
    img = root / "shop" / "img"
    (img / "p1.jpg").unlink()
    os.mkfifo(img / "p1.jpg")
    with open(img / "p2.jpg", "wb") as fh:
        fh.truncate(2 * 1024**3)  # sparse: no disk, no memory unless someone reads it
    (img / "p3.jpg").unlink()
    try:
        os.mknod(img / "p3.jpg", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers
    except OSError:
        (img / "p3.jpg").write_bytes(jpeg_bytes())  # not root: a plain image stands in
    (root / "models").mkdir()
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def site(shop):
    server = serve(
        load_config(None),
        shop / "runs",
        port=0,
        models_dirs=(shop / "models",),
        request_timeout=REQUEST_TIMEOUT,
    )
    with running(server) as (host, port):
        yield host, port, server


def image(site, ref):
    return request(site, "GET", "/api/image?ref=" + urllib.parse.quote(ref))


# -- case 6 (viewer part): the cap from stat, before a byte is read -------------------
def test_image_cap_is_checked_before_reading(site, shop):
    status, answer = query(site, {"text": "red running shoe", "collection": "shop", "n": 4})
    assert status == 200, answer
    refs = {h["id"]: h["image_path"] for h in answer["hits"]}
    assert image(site, refs["p0"])[0] == 200
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    status, _, body = image(site, refs["p2"])  # 2 GB: refused from its size alone
    assert status == 404 and b"larger than 20 MB" in body
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 200 * 1024, f"peak memory grew by {grown} KiB: the file was read"
    status, _, body = image(site, refs["p1"])  # a FIFO: refused at once, never waited on
    assert status == 404 and b"not a regular file" in body
    if stat.S_ISCHR(os.stat(refs["p3"]).st_mode):
        status, _, body = image(site, refs["p3"])  # a device: refused, never read
        assert status == 404 and b"not a regular file" in body


def test_zip_members_are_capped_from_the_directory(tmp_path):
    import zipfile

    from search.web.images import ImageRefused, read_capped

    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("small.jpg", jpeg_bytes())
        zf.writestr("bomb.jpg", b"\0" * (21 * 1024 * 1024))  # ~20 KB packed, 21 MB inside
    assert read_capped(f"{archive}::small.jpg") == jpeg_bytes()
    with pytest.raises(ImageRefused, match="larger than 20 MB"):
        read_capped(f"{archive}::bomb.jpg")
    with pytest.raises(ImageRefused, match="cannot read"):
        read_capped(f"{archive}::missing.jpg")
    fifo = tmp_path / "fifo.zip"
    os.mkfifo(fifo)
    with pytest.raises(ImageRefused, match="not a regular file"):
        read_capped(f"{fifo}::small.jpg")
    with pytest.raises(ImageRefused, match="larger than 1 MB"):
        big = tmp_path / "big.jpg"
        big.write_bytes(b"\0" * (1024 * 1024 + 1))
        read_capped(str(big), cap=1024 * 1024)


# -- case 9: a deeply nested JSON body is a 400, not a 500 ---------------------------
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"text": "shoe", "collection": "shop", "n": ' + b"[" * 50_000,  # and unclosed
    ],
)
def test_deep_json_body_is_400(site, raw):
    status, _, body = request(site, "POST", "/api/query", raw, {"Content-Type": "application/json"})
    assert status == 400 and b"deeper than" in body, body[:200]
    assert query(site, {"text": "shoe", "collection": "shop"})[0] == 200  # still serving


def test_brackets_inside_strings_do_not_count(site):
    text = "shoe " + "[" * 5_000
    status, answer = query(site, {"text": text, "collection": "shop", "n": 1})
    assert status == 200, answer


# -- case 8: slow-header clients cannot starve the viewer ----------------------------
def test_slow_header_clients_do_not_starve_normal_requests(site):
    host, port, _ = site
    slow = SlowClients(host, port, 80, interval=0.3, limit=60)
    try:
        for _ in range(10):
            status, _, _ = request(site, "GET", "/api/collections", timeout=20)
            assert status == 200
        # the deadline is per request, not per read: every trickling client is dropped
        assert slow.wait_dropped(timeout=10 * REQUEST_TIMEOUT + 20) == 80
    finally:
        slow.close()


def test_a_large_body_gets_time_to_arrive(site):
    """The deadline counts a second per announced MiB: a 3 MiB query sent over ~2.5 s
    (longer than the 2 s request deadline) is answered."""
    host, port, _ = site
    raw = json.dumps({"text": "shoe", "collection": "shop", "pad": "x" * 3 * 1024**2}).encode()
    head = (
        f"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head.encode())
        step = len(raw) // 5 + 1
        for i in range(0, len(raw), step):
            time.sleep(0.5)
            sock.sendall(raw[i : i + step])
        answer = sock.recv(64)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def test_header_flood_is_431_and_bad_length_is_411(site):
    host, port, _ = site
    with socket.create_connection((host, port), timeout=20) as sock:
        sock.sendall(f"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        sock.sendall(b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 431")
    status, _, body = request(
        site,
        "POST",
        "/api/query",
        b"{}",
        {"Content-Type": "application/json", "Content-Length": "x"},
    )
    assert status == 411 and b"Content-Length" in body


# -- case 7: a bounded model cache, local models only from --models-dir -------------------
@pytest.fixture(scope="module")
def tiny_ce(shop):
    pytest.importorskip("sentence_transformers")
    from helpers.tiny_bert import build_tiny_bert

    return build_tiny_bert(shop / "models" / "ce0", classifier=True)


def rerank(site, spec):
    return query(site, {"text": "red shoe", "collection": "shop", "n": 2, "k": 4, "reranker": spec})


def test_options_that_do_not_change_the_model_reuse_it(site, tiny_ce):
    _, _, server = site
    models = server.viewer.models
    for batch in (1, 2, 3, 4, 5):
        status, answer = rerank(site, f"cross-encoder:{tiny_ce},batch_size={batch}")
        assert status == 200, answer
        assert len(answer["stage2"]) == 2
    assert models.sizes()["rerankers"] == 1  # one model, however many batch sizes
    status, answer = rerank(site, f"cross-encoder:{tiny_ce},batch_size=0")
    assert status == 400 and "batch_size" in answer["error"]


def test_model_cache_holds_a_few_models(site, tiny_ce, shop):
    _, _, server = site
    models = server.viewer.models
    for i in range(1, 6):  # five different model folders, one after the other
        copy = shop / "models" / f"ce{i}"
        if not copy.exists():
            shutil.copytree(tiny_ce, copy)
        assert rerank(site, f"cross-encoder:{copy}")[0] == 200
        assert models.sizes()["rerankers"] <= models.max_rerankers
    assert models.sizes()["rerankers"] == models.max_rerankers


def test_local_models_outside_models_dir_are_refused(site, tiny_ce, shop, tmp_path):
    outside = shutil.copytree(tiny_ce, tmp_path / "elsewhere")
    for spec in (
        f"cross-encoder:{outside}",
        "pair-gbdt:/etc/passwd",
        f"cross-encoder:{shop / 'models' / '..' / 'shop'}",  # climbs out
        f"pair-gbdt:{shop / 'models' / 'x.txt'},with=cross-encoder:{outside}",  # stacked
    ):
        status, answer = rerank(site, spec)
        assert status == 400 and "models-dir" in answer["error"], (spec, answer)


def test_without_models_dir_only_hub_names_load(tmp_path):
    server = serve(load_config(None), tmp_path, port=0)
    with running(server) as (host, port):
        body = {"text": "shoe", "reranker": f"cross-encoder:{tmp_path}"}
        status, answer = query((host, port), body)
    assert status == 400 and "--models-dir" in answer["error"]


# -- case 16 (viewer part): a client that hangs up logs no traceback --------------------
def test_client_hang_up_logs_no_traceback(site, caplog):
    host, port, _ = site
    caplog.set_level(logging.DEBUG)
    for path in ("/", "/api/collections", "/api/runs"):
        for _ in range(5):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()  # linger 0: a reset, before the answer is read
    assert request(site, "GET", "/api/runs")[0] == 200  # still serving
    bad = [r for r in caplog.records if r.exc_info or "Broken" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


def test_serve_models_dir_flag(tmp_path):
    import re
    import subprocess
    import sys

    res = CliRunner().invoke(app, ["serve", "--port", "0", "--models-dir", str(tmp_path / "no")])
    assert res.exit_code == 1 and "is not a folder" in res.output and "Traceback" not in res.output
    (tmp_path / "models").mkdir()
    env = {**os.environ, "SEARCH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "search", "serve", "--port", "0", "--runs", str(tmp_path)]
    cmd += ["--models-dir", str(tmp_path / "models")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the viewer is up once it prints its address
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", line)[1])
        body = {"text": "shoe", "reranker": f"cross-encoder:{tmp_path}"}
        status, answer = query(("127.0.0.1", port), body)
        assert status == 400 and f"outside --models-dir {tmp_path / 'models'}" in answer["error"]
    finally:
        proc.kill()
        proc.communicate(timeout=30)
