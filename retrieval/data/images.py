"""Image references: a file path, or a member of a zip archive (``archive.zip::member``).

Reads are bounded before they start: a path is opened with ``O_NONBLOCK`` and must show
as a regular file in ``fstat`` (a FIFO, ``/dev/zero`` or a folder is refused, never read),
and its size, or a zip member's size from the archive's directory, must be at most the
image cap: ``max_image_bytes()``, 50 MB unless the environment variable
``SEARCH_MAX_IMAGE_MB`` says otherwise (read at each call, so DataLoader and Ray workers
inherit it). A refused image is an ``OSError`` like any unreadable one: the encoders
count it among the index report's failures.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
import zipfile
import zlib
from pathlib import Path

from PIL import Image, UnidentifiedImageError

ZIP_SEP = "::"
# What reading a damaged, encrypted or odd zip archive can raise besides OSError.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    KeyError,
    ValueError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
)
_local = threading.local()
OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
MAX_IMAGE_ENV = "SEARCH_MAX_IMAGE_MB"
DEFAULT_MAX_IMAGE_MB = 50


def max_image_bytes() -> int:
    """The largest image file or zip member read, in bytes (``SEARCH_MAX_IMAGE_MB``,
    default 50); a value that is not a positive number refuses every image, saying so."""
    raw = os.environ.get(MAX_IMAGE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not (0 < mb < 2**20):  # NaN fails too
        raise OSError(f"{MAX_IMAGE_ENV}={raw!r} is not a size in MB between 0 and 1048576")
    return max(1, int(mb * 2**20))


def _too_big(what: str, size: int, cap: int) -> OSError:
    return OSError(
        f"{what} is {size} bytes, over the image cap of {cap / 2**20:g} MB ({MAX_IMAGE_ENV})"
    )


def open_regular(path: str | Path) -> int:
    """A read descriptor of ``path`` once ``fstat`` shows a regular file; ``O_NONBLOCK``,
    so opening a FIFO never waits for a writer. Raises OSError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError as exc:  # a NUL byte in the path
        raise OSError(f"bad image path {str(path)!r}: {exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file_capped(path: str | Path, cap: int) -> bytes:
    """The bytes of the regular file ``path``, refused from ``fstat`` (before a byte is
    read) when larger than ``cap``; a file that grows past it meanwhile is refused too."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size > cap:
            raise _too_big(str(path), size, cap)
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise _too_big(str(path), len(data), cap)
    return data


def zip_ref(archive: str | Path, member: str) -> str:
    """The image reference of a zip archive member."""
    return f"{archive}{ZIP_SEP}{member}"


def _archive(path: str) -> zipfile.ZipFile:
    cache = getattr(_local, "zips", None)
    if cache is None:
        cache = _local.zips = {}
    zf = cache.get(path)
    if zf is None:
        handle = os.fdopen(open_regular(path), "rb")
        try:
            zf = zipfile.ZipFile(handle)
        except BaseException:
            handle.close()
            raise
        cache[path] = zf
    return zf


def _read_member(archive: str, member: str, cap: int) -> bytes:
    zf = _archive(archive)
    info = zf.getinfo(member)
    if info.file_size > cap:  # from the archive's directory: nothing inflated yet
        raise _too_big(f"{member} in {archive}", info.file_size, cap)
    with zf.open(info) as fh:  # stops at the directory's size, whatever the stream holds
        return fh.read(cap + 1)


def read_image_bytes(ref: str, max_bytes: int | None = None) -> bytes:
    """Raw bytes of an image reference, at most ``max_bytes`` (default
    ``max_image_bytes()``); raises OSError when it cannot be read or is refused."""
    cap = max_image_bytes() if max_bytes is None else max_bytes
    if ZIP_SEP in ref:
        archive, member = ref.split(ZIP_SEP, 1)
        try:
            return _read_member(archive, member, cap)
        except ZIP_ERRORS as exc:
            raise OSError(f"cannot read {member} from {archive}: {exc}") from exc
    return read_file_capped(ref, cap)


def load_image(ref: str, max_bytes: int | None = None) -> Image.Image:
    """Decode an image reference to RGB; raises OSError for missing, refused (not a
    regular file, over the cap) or corrupt files."""
    data = read_image_bytes(ref, max_bytes)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except UnidentifiedImageError as exc:  # its text names the buffer: <_io.BytesIO at 0x..>
        raise OSError(f"corrupt image {ref}: not an image format PIL reads") from exc
    except Exception as exc:  # PIL raises several types for corrupt data
        raise OSError(f"corrupt image {ref}: {stable(str(exc))}") from exc


def stable(message: str) -> str:
    """``message`` without object reprs (``<... object at 0x7f..>``), which differ
    between runs: a failure reads the same in two reports of one input."""
    return OBJECT_REPR.sub("<object>", message)
