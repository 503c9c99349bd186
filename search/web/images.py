"""Which images the viewer may serve, and how: only files inside a dataset's own image
roots (a dataset folder, or members of its zip archive), only after they decode as an
image, typed by the decoded format and never by the file name.

A catalogue row naming ``/etc/passwd``, ``page.html`` or ``logo.svg`` as its image is
therefore refused, whatever an answer listed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.data.images import ZIP_SEP, read_image_bytes
from retrieval.errors import SearchError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
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


def image_response(ref: str) -> tuple[bytes, str]:
    """The bytes of ``ref`` and their content type, after decoding them as an image."""
    from PIL import Image

    try:
        data = read_image_bytes(ref)
    except OSError as exc:
        raise ImageRefused(f"cannot read image: {exc.strerror or exc}") from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRefused("image larger than 20 MB")
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
