"""Image references: a file path, or a member of a zip archive (``archive.zip::member``)."""

from __future__ import annotations

import io
import threading
import zipfile
import zlib
from pathlib import Path

from PIL import Image

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


def zip_ref(archive: str | Path, member: str) -> str:
    """The image reference of a zip archive member."""
    return f"{archive}{ZIP_SEP}{member}"


def _archive(path: str) -> zipfile.ZipFile:
    cache = getattr(_local, "zips", None)
    if cache is None:
        cache = _local.zips = {}
    zf = cache.get(path)
    if zf is None:
        zf = cache[path] = zipfile.ZipFile(path)
    return zf


def read_image_bytes(ref: str) -> bytes:
    """Raw bytes of an image reference; raises OSError when it cannot be read."""
    if ZIP_SEP in ref:
        archive, member = ref.split(ZIP_SEP, 1)
        try:
            return _archive(archive).read(member)
        except ZIP_ERRORS as exc:
            raise OSError(f"cannot read {member} from {archive}: {exc}") from exc
    try:
        return Path(ref).read_bytes()
    except ValueError as exc:  # a NUL byte in the path
        raise OSError(f"bad image path {ref!r}: {exc}") from exc


def load_image(ref: str) -> Image.Image:
    """Decode an image reference to RGB; raises OSError for missing or corrupt files."""
    data = read_image_bytes(ref)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except Exception as exc:  # PIL raises several types for corrupt data
        raise OSError(f"corrupt image {ref}: {exc}") from exc
