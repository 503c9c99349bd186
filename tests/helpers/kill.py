"""SIGKILL a `search` run mid-way: an index run once it has stored enough points (its log
says so), any run once a condition on its files holds."""

from __future__ import annotations

import signal
import subprocess
import time


def kill_after_stored(
    cmd: list[str], env: dict[str, str], stored: int, timeout: float = 300
) -> None:
    """Start ``cmd`` (a ``search -v index`` command line) and SIGKILL it as soon as its log
    reports at least ``stored`` points written; assert the kill happened."""
    proc = subprocess.Popen(
        cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    deadline, killed = time.time() + timeout, False
    for line in proc.stderr:
        if "stored" in line and "skipped" in line:
            if int(line.split("stored")[1].split(",")[0]) >= stored:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
        if time.time() > deadline:
            break
    proc.wait(timeout=60)
    assert killed and proc.returncode == -signal.SIGKILL


def kill_when(cmd: list[str], env: dict[str, str], ready, timeout: float = 300) -> None:
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds (polled every 50 ms) and
    assert it was killed mid-way, not finished."""
    null = subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=null, stderr=null)
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # killed mid-way, not finished
