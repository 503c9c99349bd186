"""Which images the viewer may serve, and how: only files inside a dataset's own image
roots (a dataset folder, or members of its zip archive), only after they decode as an
image, typed by the decoded format and never by the file name.

A catalogue row naming ``/etc/passwd``, ``page.html`` or ``logo.svg`` as its image is
therefore refused, whatever an answer listed. Reads are bounded before they start: a
file's size comes from ``fstat`` of the opened descriptor (a FIFO, a device or
``/dev/zero`` is refused, never read), a zip member's from the archive's directory.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.data.images import ZIP_ERRORS, ZIP_SEP
from retrieval.errors import SearchError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_ARCHIVES = 4  # zip archives kept open
_ARCHIVES: OrderedDict[tuple, zipfile.ZipFile] = OrderedDict()
_ARCHIVES_LOCK = threading.Lock()
# Decoded formats served, with their content type; anything else (SVG, HTML, ...) is refused.
CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}


class ImageRefused(SearchError):
    """An image reference the viewer will not serve (HTTP 404, the same for all reasons)."""


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


@dataclass
class ImageRoots:
    """The folders and zip archives a dataset's images may come from."""

    folders: set[Path] = field(default_factory=set)
    archives: set[Path] = field(default_factory=set)

    def add_dataset(self, source: str | Path | None) -> None:
        """Add the image roots of a dataset path: its folder, its zip, or a file's folder."""
        if not source:
            return
        path = _real(source)
        if path.is_dir():
            self.folders.add(path)
        elif path.suffix.lower() == ".zip":
            self.archives.add(path)
        elif path.is_file():
            self.folders.add(path.parent)

    def contains(self, ref: str) -> bool:
        """Whether ``ref`` (a path or ``archive.zip::member``) lies inside a root."""
        if ZIP_SEP in ref:
            archive, member = ref.split(ZIP_SEP, 1)
            parts = member.replace("\\", "/").split("/")
            return _real(archive) in self.archives and ".." not in parts and member[:1] != "/"
        real = _real(ref)
        return any(root == real.parent or root in real.parents for root in self.folders)


def _too_big(cap: int) -> ImageRefused:
    return ImageRefused(f"image larger than {cap / 2**20:g} MB")


def _open_regular(path: str) -> int:
    """A read descriptor of ``path`` once ``fstat`` shows a regular file (``O_NONBLOCK``:
    opening a FIFO never waits for a writer)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageRefused("not a regular file")
    return fd


def _read_file(path: str, cap: int) -> bytes:
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fd).st_size > cap:
            raise _too_big(cap)
        data = fh.read(cap + 1)  # the file may have grown since fstat
    if len(data) > cap:
        raise _too_big(cap)
    return data


def _archive(path: str) -> zipfile.ZipFile:
    """The zip archive at ``path``, once it shows as a regular file; the last few stay
    open (a catalogue's zip lists thousands of members: its directory is read once),
    keyed by inode and mtime, so a replaced archive is opened again."""
    fd = _open_regular(path)
    st = os.fstat(fd)
    key = (path, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    with _ARCHIVES_LOCK:
        cached = _ARCHIVES.get(key)
        if cached is not None:
            _ARCHIVES.move_to_end(key)
    if cached is not None:
        os.close(fd)
        return cached
    fh = os.fdopen(fd, "rb")
    try:
        zf = zipfile.ZipFile(fh)  # reads of members are safe from many threads
    except BaseException:
        fh.close()
        raise
    with _ARCHIVES_LOCK:
        _ARCHIVES[key] = zf
        while len(_ARCHIVES) > MAX_ARCHIVES:  # dropped ones close when no reader holds them
            _ARCHIVES.popitem(last=False)
    return zf


def _read_member(archive: str, member: str, cap: int) -> bytes:
    zf = _archive(archive)
    if zf.getinfo(member).file_size > cap:
        raise _too_big(cap)
    with zf.open(member) as src:
        data = src.read(cap + 1)  # a lying directory entry stops here
    if len(data) > cap:
        raise _too_big(cap)
    return data


def read_capped(ref: str, cap: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of a regular file or zip member of at most ``cap`` bytes, the size
    checked before any byte is read; anything else is ImageRefused."""
    try:
        if ZIP_SEP in ref:
            return _read_member(*ref.split(ZIP_SEP, 1), cap)
        return _read_file(ref, cap)
    except ImageRefused:
        raise
    except (OSError, *ZIP_ERRORS) as exc:  # ValueError too: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or exc
        raise ImageRefused(f"cannot read image: {reason}") from exc


def image_response(ref: str) -> tuple[bytes, str]:
    """The bytes of ``ref`` and their content type, after decoding them as an image."""
    from PIL import Image

    data = read_capped(ref)
    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = img.format
            img.load()  # a file that only starts like an image fails here
    except Image.DecompressionBombError as exc:
        raise ImageRefused("image too large to decode") from exc
    except Exception as exc:  # PIL raises many types for data that is not an image
        raise ImageRefused("not a decodable image") from exc
    ctype = CONTENT_TYPES.get(kind or "")
    if ctype is None:
        raise ImageRefused(f"image format {kind} is not served")
    return data, ctype
