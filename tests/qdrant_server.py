"""Real Qdrant engines for the tests: one node, or a cluster of peers, on loopback.

The binary is the pinned Qdrant 1.16.3 that ``tools/fetch_qdrant.sh`` (run by ``make
test``) puts in ``.cache/qdrant/`` after checking its sha256; ``QDRANT_BINARY`` names
another. Each node gets free localhost ports and its own temporary storage, is started
with ``--disable-telemetry`` and stopped by pid. ``start`` waits for ``/readyz`` and, in a
cluster, for every peer to be known to every other and a Raft leader to be elected.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "1.16.3"
ROOT = Path(__file__).resolve().parents[1]


def qdrant_binary() -> Path | None:
    """The Qdrant binary the tests run, or None where there is none."""
    env = os.environ.get("QDRANT_BINARY")
    path = Path(env) if env else ROOT / ".cache" / "qdrant" / f"qdrant-{VERSION}"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def missing_reason() -> str | None:
    """Why no real server can run here (None when one can)."""
    if qdrant_binary() is None:
        return f"no Qdrant {VERSION} binary at .cache/qdrant/ (run `make qdrant`, or set QDRANT_BINARY)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0, api_key: str | None = None) -> dict | None:
    req = urllib.request.Request(url, headers={"api-key": api_key} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
            return json.loads(body) if body.strip().startswith(b"{") else {"text": body.decode()}
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class QdrantNode:
    """One Qdrant process with its own ports and storage."""

    storage: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    p2p_port: int | None = None  # set: cluster mode
    bootstrap: str | None = None  # the first peer's p2p URI, for the others
    api_key: str | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.p2p_port}"

    def start(self, timeout: float = 60.0) -> QdrantNode:
        binary = qdrant_binary()
        assert binary is not None, missing_reason()
        self.storage.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QDRANT__", "QDRANT_URL"))}
        env |= {
            "QDRANT__SERVICE__HOST": "127.0.0.1",
            "QDRANT__SERVICE__HTTP_PORT": str(self.http_port),
            "QDRANT__SERVICE__GRPC_PORT": str(self.grpc_port),
            "QDRANT__STORAGE__STORAGE_PATH": str(self.storage / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(self.storage / "snapshots"),
            "QDRANT__LOG_LEVEL": "WARN",
        }
        if self.api_key:
            env["QDRANT__SERVICE__API_KEY"] = self.api_key
        args = [str(binary), "--disable-telemetry"]
        if self.p2p_port is not None:
            env["QDRANT__CLUSTER__ENABLED"] = "true"
            env["QDRANT__CLUSTER__P2P__PORT"] = str(self.p2p_port)
            # a short Raft tick keeps elections and peer joins fast on loopback
            env["QDRANT__CLUSTER__CONSENSUS__TICK_PERIOD_MS"] = "50"
            args += ["--uri", self.uri]
            if self.bootstrap:
                args += ["--bootstrap", self.bootstrap]
        log = open(self.storage / "qdrant.log", "ab")  # noqa: SIM115 - kept by the process
        self.proc = subprocess.Popen(
            args, env=env, cwd=self.storage, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"qdrant exited with {self.proc.returncode}: {self.log_tail()}")
            if _get(f"{self.url}/readyz", api_key=self.api_key) is not None:
                return
            time.sleep(0.1)
        raise RuntimeError(f"qdrant at {self.url} not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.storage / "qdrant.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the process by pid (SIGKILL: as a crash; SIGTERM: a clean stop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def cluster_state(self) -> dict | None:
        data = _get(f"{self.url}/cluster", api_key=self.api_key)
        return (data or {}).get("result")


@dataclass
class QdrantCluster:
    """Peers of one Qdrant cluster; ``url`` is the first peer's (any peer answers)."""

    nodes: list[QdrantNode]

    @classmethod
    def start(cls, root: Path, size: int = 3, timeout: float = 90.0) -> QdrantCluster:
        first = QdrantNode(root / "peer0", p2p_port=free_port()).start(timeout)
        nodes = [first]
        for i in range(1, size):
            # peers join one at a time: Raft adds one member per configuration change
            node = QdrantNode(root / f"peer{i}", p2p_port=free_port(), bootstrap=first.uri)
            nodes.append(node.start(timeout))
            cls(nodes).wait_peers(timeout)
        return cls(nodes)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def wait_peers(self, timeout: float = 90.0) -> None:
        """Every live peer knows every peer and follows one elected leader."""
        live = [n for n in self.nodes if n.alive()]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [n.cluster_state() for n in live]
            if all(
                s
                and len(s.get("peers", {})) == len(self.nodes)
                and (s.get("raft_info") or {}).get("leader") is not None
                and (s.get("raft_info") or {}).get("is_voter", True)
                for s in states
            ):
                leaders = {s["raft_info"]["leader"] for s in states}
                if len(leaders) == 1:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"cluster peers did not agree within {timeout}s: {states}")

    def restart(self, i: int, timeout: float = 90.0) -> None:
        """Start peer ``i`` again on its ports and storage (after ``kill``)."""
        node = self.nodes[i]
        node.kill()
        node.bootstrap = None  # a known peer rejoins from its stored Raft state
        node.start(timeout)
        self.wait_peers(timeout)

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
