"""Issue 22, point 5 (Ray): ``search index --ray`` against a real Qdrant server and a local
Ray cluster survives a SIGKILLed worker (Ray restarts it and retries its batch: exact
count) and a SIGKILLed driver (the re-run resumes: exact count, the same report); Ray
missing and a Ray address that does not answer are one line and a non-zero exit.

Runs in ``make test``; skipped (with the reason) only where Ray is not installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install '.[distributed]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install '.[distributed]'")

from helpers.kill import kill_after_stored  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from retrieval.data.synth import synthesize  # noqa: E402
from search.cli import app  # noqa: E402
from search.config import load_config  # noqa: E402
from search.indexing_ray import index_dataset_ray  # noqa: E402

ENCODERS = ["sparse", "phash"]
BAD = 3  # 2 corrupt images, 1 missing


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-faults")
    return synthesize(root / "synth", groups=120, image_size=48, corrupt=2, missing=1)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, catalogue, qdrant_node, ray_cluster):
    """The report of a clean Ray run over the catalogue (its collection dropped)."""
    home = tmp_path_factory.mktemp("clean-home")
    name = f"clean-{uuid.uuid4().hex[:8]}"
    report, _ = index_dataset_ray(config(home, qdrant_node), str(catalogue), collection=name)
    drop(qdrant_node, name)
    assert len(report.failures) == BAD and report.written == report.seen
    return report


def config(home, node):
    return load_config(
        None,
        store={"data_dir": home, "url": node.url},
        stage1={"encoders": ENCODERS, "batch_size": 8},
    )


def count(node, name) -> int:
    with client_of(node) as client:
        return client.count(name, exact=True).count


def drop(node, name) -> None:
    with client_of(node) as client:
        client.delete_collection(name)


@contextmanager
def client_of(node):
    from qdrant_client import QdrantClient

    client = QdrantClient(url=node.url)
    try:
        yield client
    finally:
        client.close()


def worker_pids() -> list[int]:
    """Pids of this test's Ray encoder actors (descendants of this process only)."""
    me, out = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "IndexWorker" in title and descends_from(int(entry.name), me):
            out.append(int(entry.name))
    return sorted(out)


def descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):  # bounded walk up the process tree
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def test_a_killed_worker_is_restarted_and_its_batch_retried(
    tmp_path, catalogue, qdrant_node, clean
):
    name = f"kill-worker-{uuid.uuid4().hex[:8]}"
    killed: list[int] = []

    def progress(total):
        def tick(n):
            if not killed:  # after the first stored batch: SIGKILL one encoder actor
                pids = worker_pids()
                assert pids, "no encoder actor found"
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        return tick

    try:
        report, _ = index_dataset_ray(
            config(tmp_path / "home", qdrant_node),
            str(catalogue),
            collection=name,
            workers=2,
            progress=progress,
        )
        assert killed and report.seen == clean.seen
        assert report.written + report.skipped_existing == clean.seen
        assert count(qdrant_node, name) == clean.seen  # every point, none twice
        assert report.failures == clean.failures
        assert killed[0] not in worker_pids()
    finally:
        drop(qdrant_node, name)


def test_a_killed_driver_resumes_with_the_same_report(tmp_path, catalogue, qdrant_node, clean):
    name = f"kill-driver-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    env = {**os.environ, "SEARCH_HOME": str(home), "COLUMNS": "200"}
    env.pop("QDRANT_URL", None)
    cmd = [sys.executable, "-m", "search", "-v", "index", str(catalogue), "-c", name]
    cmd += ["-e", "sparse", "-e", "phash", "--batch-size", "2", "--qdrant-url", qdrant_node.url]
    cmd += ["--ray-address", ray.get_runtime_context().gcs_address, "--workers", "2"]
    try:
        # killed early, in batches of 2, by the driver's own log: the driver dies mid-run
        # (no report). Its Ray actors outlive it for a moment and may finish the blocks
        # they hold, so the count is not asked to stay under the total (once, in CI, they
        # had stored all 415 before they went): the re-run must still give the same report
        kill_after_stored(cmd, env, 16, timeout=120)
        report_path = home / "reports" / f"{name}-index-report.json"
        assert not report_path.exists()
        stored = count(qdrant_node, name)
        assert 16 <= stored <= clean.seen
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        resumed = json.loads(report_path.read_text())
        assert resumed["seen"] == clean.seen
        assert resumed["skipped_existing"] >= stored
        assert resumed["written"] + resumed["skipped_existing"] == clean.seen
        assert resumed["failed_items"] == clean.failures
        assert count(qdrant_node, name) == clean.seen
    finally:
        drop(qdrant_node, name)


def test_ray_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "home"))
    data = synthesize(tmp_path / "synth", groups=2, image_size=32)
    for module in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, module, None)  # `import ray` raises ImportError
    res = CliRunner().invoke(
        app, ["index", str(data), "-e", "sparse", "--qdrant-url", "http://127.0.0.1:9", "--ray"]
    )
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "pip install '.[distributed]'" in lines[0], res.output


@pytest.mark.parametrize("answer", ["closed", "not-ray"])
def test_a_ray_address_that_does_not_answer(tmp_path, qdrant_node, answer):
    """Nothing listening, or a server that is not Ray (Qdrant's own port): one line within
    seconds (``ray.init`` alone retries for minutes)."""
    data = synthesize(tmp_path / "synth", groups=2, image_size=32)
    if answer == "closed":
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{s.getsockname()[1]}"
    else:
        address = qdrant_node.url.removeprefix("http://")
    env = {**os.environ, "SEARCH_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "search", "index", str(data), "-e", "sparse"]
    cmd += ["--qdrant-url", qdrant_node.url, "--ray-address", address]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"no Ray cluster answers at {address}" in lines[0], res.stderr


def test_the_server_stopped_mid_run_is_one_line_and_a_rerun_resumes(
    tmp_path, catalogue, clean, ray_cluster
):
    """A worker that loses the Qdrant server stops the run with the server's URL in one
    line (not Ray's traceback); the server restarted, the same command resumes."""
    from qdrant_server import QdrantNode

    node = QdrantNode(tmp_path / "qdrant").start()
    name = f"server-gone-{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    env = {**os.environ, "SEARCH_HOME": str(home), "COLUMNS": "400"}
    env.pop("QDRANT_URL", None)
    cmd = [sys.executable, "-m", "search", "-v", "index", str(catalogue), "-c", name]
    cmd += ["-e", "sparse", "-e", "phash", "--batch-size", "8", "--qdrant-url", node.url]
    cmd += ["--ray-address", ray_cluster, "--workers", "2"]
    try:
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in proc.stderr:  # ends when the run does
            lines.append(line)
            if node.alive() and "stored" in line and "skipped" in line:
                if int(line.split("stored")[1].split(",")[0]) >= 40:
                    node.kill()  # SIGKILL mid-run
        assert proc.wait(timeout=120) != 0 and not node.alive()
        errors = [ln for ln in lines if ln.startswith("error:")]
        assert len(errors) == 1 and f"cannot reach Qdrant at {node.url}" in errors[0], lines
        assert not any("Traceback" in ln for ln in lines)

        node.start()  # same storage, same ports
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        resumed = json.loads((home / "reports" / f"{name}-index-report.json").read_text())
        assert resumed["skipped_existing"] >= 40
        assert resumed["failed_items"] == clean.failures
        assert count(node, name) == clean.seen
    finally:
        node.stop()
