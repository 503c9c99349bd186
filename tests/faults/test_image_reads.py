"""Image reads are bounded before they start (issue 23, case 6, the readers' and
encoders' part; the viewer's is ``test_viewer_limits.py``).

An image path naming ``/dev/zero`` grew without bound, a FIFO hung, a 2 GB file was read
whole, a 1 GiB zeroed zip member (a 1 MB zip) was inflated whole. Now a path must be a
regular file (opened with ``O_NONBLOCK``, checked with ``fstat``) and a file's size, or a
member's size from the zip directory, at most the cap (``SEARCH_MAX_IMAGE_MB``, 50 MB);
a refused image is an unreadable image among the encoder's failures. The encoder runs in
a child process under a 1 GiB address-space limit and a timeout, so the old unbounded
reads fail the test instead of eating the machine.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from retrieval.data.images import MAX_IMAGE_ENV, load_image, read_image_bytes, zip_ref

pytest.importorskip("imagehash")

ENCODE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from retrieval.encoders.base import build_encoder
from retrieval.types import Product
refs = json.loads(sys.argv[1])
products = [Product(name, name, image_path=ref) for name, ref in refs.items()]
encoded = build_encoder("phash").encode(products)
print(json.dumps(encoded.failures))
"""


def png(size: int = 64, noise: bool = False) -> bytes:
    """A PNG; with ``noise`` one that does not compress (about 3 bytes a pixel)."""
    if noise:
        img = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    else:
        img = Image.new("RGB", (size, size), (200, 30, 30))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def zeroed_member_zip(path, name: str, size: int) -> str:
    """A zip holding ``size`` zero bytes as ``name`` (deflated to about 1/1000th)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name, "w", force_zip64=True) as fh:
            for _ in range(size // len(chunk)):
                fh.write(chunk)
    return zip_ref(path, name)


def encode_failures(refs: dict[str, str], env: dict[str, str] | None = None) -> dict[str, str]:
    res = subprocess.run(
        [sys.executable, "-c", ENCODE, json.dumps(refs)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_devices_fifos_and_oversize_files_are_unreadable_images(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(png())
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.truncate(2 << 30)  # sparse: 2 GiB of zeros that take no disk
    bomb = zeroed_member_zip(tmp_path / "bomb.zip", "zero.png", 256 << 20)
    assert (tmp_path / "bomb.zip").stat().st_size < 2 << 20
    refs = {
        "good": str(good),
        "zero": "/dev/zero",
        "fifo": str(fifo),
        "big": str(big),
        "bomb": bomb,
        "folder": str(tmp_path),
    }
    failures = encode_failures(refs)
    assert sorted(failures) == ["big", "bomb", "fifo", "folder", "zero"]
    assert "not a regular file" in failures["zero"] and "not a regular file" in failures["fifo"]
    assert "over the image cap of 50 MB" in failures["big"]
    assert "over the image cap of 50 MB" in failures["bomb"] and "zero.png" in failures["bomb"]


def test_the_cap_is_checked_before_a_byte_is_read(tmp_path, monkeypatch):
    """An image over the cap is refused from ``stat`` or the zip directory, though it
    would decode; the cap comes from ``SEARCH_MAX_IMAGE_MB``."""
    data = png(700, noise=True)  # about 1.4 MB
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("photo.png", data)
    assert load_image(str(path)).size == (700, 700)  # under the default cap
    monkeypatch.setenv(MAX_IMAGE_ENV, "1")
    for ref in (str(path), zip_ref(archive, "photo.png")):
        with pytest.raises(OSError, match=r"over the image cap of 1 MB \(SEARCH_MAX_IMAGE_MB\)"):
            load_image(ref)
    assert read_image_bytes(str(path), max_bytes=len(data)) == data
    failures = encode_failures({"photo": str(path)}, {MAX_IMAGE_ENV: "1"})
    assert "over the image cap" in failures["photo"]
    monkeypatch.setenv(MAX_IMAGE_ENV, "lots")
    with pytest.raises(OSError, match="SEARCH_MAX_IMAGE_MB='lots' is not a size"):
        load_image(str(path))


def test_the_cap_is_a_flag_of_every_command(tmp_path, monkeypatch):
    """`search --max-image-mb N COMMAND` sets the cap the readers use; out of range is one line."""
    from typer.testing import CliRunner

    from search.cli import app

    monkeypatch.setenv("SEARCH_MAX_IMAGE_MB", "50")  # restored after: the flag sets it
    monkeypatch.setenv("SEARCH_HOME", str(tmp_path / "home"))
    big = tmp_path / "big.png"
    Image.new("RGB", (600, 600)).save(big, compress_level=0)  # about 1 MB
    data = tmp_path / "shop.jsonl"
    data.write_text(json.dumps({"id": "a", "title": "big", "image": str(big)}) + "\n")
    res = CliRunner().invoke(app, ["--max-image-mb", "0.5", "index", str(data), "-e", "phash"])
    assert res.exit_code == 0, res.output
    assert "1 with unreadable images" in res.output
    res = CliRunner().invoke(app, ["--max-image-mb", "-1", "index", str(data)])
    assert res.exit_code == 2 and "--max-image-mb" in res.output
