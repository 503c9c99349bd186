"""Issue 10, items 1, 2, 11 (viewer) and 14 (host warning): the viewer is safe to leave
running. Every test talks to a real server on 127.0.0.1 (fixture ``site``)."""

from __future__ import annotations

import logging
import socket
import urllib.parse

import pytest
from helpers.viewer import query, request

from search.config import load_config
from search.web.server import serve


def hits_by_id(site):
    status, answer = query(site, {"text": "red running shoe", "collection": "shop", "n": 20})
    assert status == 200, answer
    return {h["id"]: h["image_path"] for h in answer["hits"]}


def image(site, ref):
    return request(site, "GET", "/api/image?ref=" + urllib.parse.quote(ref))


# -- item 1: one idle or lying client never freezes the viewer ------------------------
def test_idle_connection_does_not_block_others(site):
    host, port, _ = site
    idle = socket.create_connection((host, port), timeout=30)
    try:
        status, _, _ = request(site, "GET", "/api/collections", timeout=20)
        assert status == 200
        assert idle.recv(1) == b""  # the server drops the silent socket after its timeout
    finally:
        idle.close()


def test_body_shorter_than_content_length_does_not_block_others(site):
    host, port, _ = site
    liar = socket.create_connection((host, port), timeout=30)
    try:
        liar.sendall(
            f"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        status, _, _ = request(site, "GET", "/api/collections", timeout=20)
        assert status == 200
        assert liar.recv(1024) == b""  # dropped without an answer after the timeout
    finally:
        liar.close()


@pytest.mark.parametrize(
    ("length", "status"), [("-1", 411), ("abc", 411), ("99999999999", 413), ("", 411)]
)
def test_bad_content_length_is_refused(site, length, status):
    got, _, body = request(
        site,
        "POST",
        "/api/query",
        b"{}",
        {"Content-Type": "application/json", "Content-Length": length},
    )
    assert got == status and b"error" in body


# -- item 2: images only from the dataset's roots, typed by what they decode as ---------
def test_only_decodable_images_inside_the_dataset_are_served(site):
    refs = hits_by_id(site)
    status, headers, body = image(site, refs["p0"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    status, headers, body = image(site, refs["p1"])  # a PNG named .jpg
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    for pid in ("p2", "p3", "p4", "p5", "p6"):  # html, svg, /etc/passwd, outside (x2)
        status, headers, body = image(site, refs[pid])
        assert status == 404, (pid, refs[pid])
        assert headers["Content-Type"].startswith("application/json")
    assert image(site, "/etc/passwd")[0] == 404  # never listed at all


def test_host_allow_list_blocks_dns_rebinding(site):
    _, port, _ = site
    status, _, body = request(site, "GET", "/api/collections", headers={"Host": "evil.example"})
    assert status == 403 and b"not allowed" in body
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert request(site, "GET", "/api/collections", headers={"Host": host})[0] == 200


def test_cross_origin_posts_are_refused(site):
    _, port, _ = site
    body = {"text": "shoe", "collection": "shop", "reranker": "cross-encoder:evil/model"}
    status, answer = query(site, body, {"Origin": "http://evil.example"})
    assert status == 403 and "cross-origin" in answer["error"]
    status, answer = query(site, body, {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    # a "simple" cross-site form post (text/plain) is not JSON: refused before parsing
    status, _, raw = request(
        site, "POST", "/api/query", b'{"text": "x"}', {"Content-Type": "text/plain"}
    )
    assert status == 415
    status, answer = query(
        site, {"text": "shoe", "collection": "shop"}, {"Origin": f"http://127.0.0.1:{port}"}
    )
    assert status == 200


# -- item 11 (viewer side): bad parameters are HTTP 400 naming the field ----------------
@pytest.mark.parametrize(
    "body",
    [
        {"n": -5},
        {"n": 0},
        {"n": "many"},
        {"k": 0},
        {"k": 10**20},
        {"n": True},
        {"k": "12345678901234567890"},
        {"collection": "x" * 300},
        {"collection": ["shop"]},
        {"image": "not base64!"},
        {"text": None},  # and no image: nothing to search
        {"text": 5},
    ],
)
def test_bad_query_parameters_are_400(site, body):
    status, answer = query(site, {"text": "shoe", "collection": "shop", **body})
    assert status == 400, answer
    assert set(answer) == {"error"} and "\n" not in answer["error"]


@pytest.mark.parametrize("raw", [b"[1, 2]", b"not json", b"\xff\xfe", b'"text"'])
def test_body_that_is_not_a_json_object_is_400(site, raw):
    status, _, body = request(site, "POST", "/api/query", raw, {"Content-Type": "application/json"})
    assert status == 400 and b"error" in body


# -- item 14: binding beyond loopback warns --------------------------------------------
def test_binding_all_interfaces_warns(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    server = serve(load_config(None), tmp_path, host="0.0.0.0", port=0)
    server.server_close()
    assert any("listens on 0.0.0.0" in r.getMessage() for r in caplog.records)
    caplog.clear()
    server = serve(load_config(None), tmp_path, port=0)
    server.server_close()
    assert not caplog.records


def test_serve_on_all_interfaces_prints_a_warning(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SEARCH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "search", "serve", "--host", "0.0.0.0", "--port", "0"]
    cmd += ["--runs", str(tmp_path), "--allow-host", "box.lan"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the viewer is up once it prints its address
        assert "viewer at http://0.0.0.0:" in line
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert "listens on 0.0.0.0" in " ".join(err.split())


def test_allow_host_admits_a_named_host(tmp_path):
    import threading

    server = serve(load_config(None), tmp_path, port=0, allow_hosts=("box.lan",))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = ("127.0.0.1", server.server_address[1], tmp_path)
    try:
        assert request(site, "GET", "/api/runs", headers={"Host": "box.lan:1"})[0] == 200
        assert request(site, "GET", "/api/runs", headers={"Host": "other.lan"})[0] == 403
    finally:
        server.shutdown()
        server.server_close()
