"""Property-based fuzz of the viewer's API parameters (issue 10, items 1, 2, 11; issue 23,
cases 7 and 9): any body (nested to any depth, naming any model path), query string or
header gets an answer of 200 or a 4xx with one JSON error line, never a 500 or a hang. Traffic goes to 127.0.0.1 only; examples are bounded in count and
every request in time (the client's socket timeout)."""

from __future__ import annotations

import json
import urllib.parse

from helpers.viewer import request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=60,
    deadline=None,  # a shared CI machine: bounded by the socket timeout instead
    derandomize=True,  # the same examples on every run: no flaky CI
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = ["text", "image", "collection", "vector", "reranker", "n", "k"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["shop", "sparse", "hybrid", "", "0", "-1", "1e9", "pair-gbdt:/etc/passwd"])
    | st.sampled_from(  # local models outside --models-dir (none given): refused unloaded
        [
            "cross-encoder:/tmp",
            "cross-encoder:.,batch_size=2",
            "pair-gbdt:~/x.txt",
            "pair-gbdt:m.txt,with=cross-encoder:/",
            "cross-encoder:/dev/zero,batch_size=0",
            "qwen-vl:/proc/self",
        ]
    )
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
bodies = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=6)


def check(status, raw):
    assert status == 200 or 400 <= status < 500, (status, raw[:300])
    if status != 200:
        error = json.loads(raw)["error"]
        assert isinstance(error, str) and "\n" not in error and "Traceback" not in error


@FUZZ
@given(body=bodies)
def test_query_bodies(site, body):
    body.setdefault("collection", "shop")
    raw = json.dumps(body, allow_nan=True).encode()
    status, _, out = request(site, "POST", "/api/query", raw, {"Content-Type": "application/json"})
    check(status, out)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_raw_bodies(site, raw):
    status, _, out = request(site, "POST", "/api/query", raw, {"Content-Type": "application/json"})
    check(status, out)


@FUZZ
@given(
    path=st.sampled_from(["/api/run", "/api/image", "/api/runs", "/api/collections", "/x"]),
    args=st.dictionaries(st.sampled_from(["path", "ref", "q"]), st.text(max_size=60), max_size=2),
    extra=st.integers(min_value=0, max_value=40),
)
def test_get_parameters(site, path, args, extra):
    query = urllib.parse.urlencode(args) + "&x=1" * extra  # past 20 fields: refused, not a crash
    status, _, out = request(site, "GET", path + "?" + query)
    check(status, out)


@FUZZ
@given(
    host=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
    origin=st.none()
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    | st.sampled_from(["http://[", "null", "http://127.0.0.1:1", "file://", "http://evil.example"]),
)
def test_host_and_origin_headers(site, host, origin):
    headers = {"Host": host} if host else {}
    if origin is not None:
        headers["Origin"] = origin
    status, _, out = request(site, "GET", "/api/collections", headers=headers)
    check(status, out)


@FUZZ
@given(
    depth=st.integers(min_value=0, max_value=60_000),
    opener=st.sampled_from([b"[", b"{", b'{"a":', b'{"text": ', b'{"n": [']),
    closed=st.booleans(),
)
def test_nested_bodies(site, depth, opener, closed):
    closer = b"}" if opener.startswith(b"{") else b"]"
    raw = opener * depth + b"1" + (closer * depth if closed else b"")
    status, _, out = request(site, "POST", "/api/query", raw, {"Content-Type": "application/json"})
    check(status, out)
