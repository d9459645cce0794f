"""Uploaded creative images: sniffed, bounded before decoding, re-encoded.

The bytes decide the type, never the file name or the browser's content
type: a script named ``ad.png`` has no image signature and is refused. The
header's pixel dimensions are checked before a single pixel is decoded, so a
small file that would inflate to gigabytes (a decompression bomb) is refused
for its declared size. What is kept is Pillow's re-encoding of the decoded
pixels, so nothing of the upload but its picture survives (no trailing
payloads, no metadata).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

_LOG = logging.getLogger(__name__)
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_SIDE_PX = 4096
MAX_PIXELS = 4096 * 2304
OUTPUT_SIDE_PX = 1920
DIR_NAME = "creatives"
FILE_NAME = re.compile(r"[0-9a-f]{32}\.(png|jpg)")
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"),
               (b"GIF87a", "GIF"), (b"GIF89a", "GIF"))


class ImageRejected(InputError):
    """Raised when an upload is not an acceptable image; choose another file."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="image")


@dataclass(frozen=True, slots=True)
class CleanImage:
    """A re-encoded image ready to store."""

    data: bytes
    extension: str  # "png" or "jpg"
    width: int
    height: int

    @property
    def name(self) -> str:
        """Return its content-addressed file name."""
        return hashlib.sha256(self.data).hexdigest()[:32] + "." + self.extension


def sniff(data: bytes) -> str | None:
    """Return the image format named by the leading bytes, or None."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def clean_image(data: bytes) -> CleanImage:
    """Check an upload and return its re-encoding (blocking; CPU-bound)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageRejected(f"image is larger than {MAX_UPLOAD_BYTES // 1024} KiB")
    kind = sniff(data)
    if kind is None:
        raise ImageRejected("not a PNG, JPEG, GIF or WebP image")
    # Imported at the first upload: Pillow costs start-up time (#7).
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            _check_size(image.size)
            return _reencode(image)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRejected("image would decode to too many pixels") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            EOFError) as err:
        raise ImageRejected(f"the {kind} image is damaged or unsupported") from err


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    if width > MAX_SIDE_PX or height > MAX_SIDE_PX or width * height > MAX_PIXELS:
        raise ImageRejected(f"image is {width}×{height} px; at most "
                            f"{MAX_SIDE_PX} px a side and {MAX_PIXELS} pixels")


def _reencode(image: Image.Image) -> CleanImage:
    """Decode the first frame and write it anew as PNG (alpha) or JPEG."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image.load()
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    pixels = image.convert("RGBA" if alpha else "RGB")
    pixels.thumbnail((OUTPUT_SIDE_PX, OUTPUT_SIDE_PX))
    out = io.BytesIO()
    if alpha:
        pixels.save(out, "PNG", optimize=True)
    else:
        pixels.save(out, "JPEG", quality=85)
    return CleanImage(out.getvalue(), "png" if alpha else "jpg", *pixels.size)


def store(state_dir: Path, image: CleanImage) -> str:
    """Write the image under the state dir (atomically) and return its name."""
    directory = state_dir / DIR_NAME
    directory.mkdir(mode=0o750, exist_ok=True)
    path = directory / image.name
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(image.data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    return image.name


def path_of(state_dir: Path, name: str) -> Path | None:
    """Return the stored file for a creative image name, or None if invalid."""
    if not FILE_NAME.fullmatch(name):
        return None
    path = state_dir / DIR_NAME / name
    return path if path.is_file() else None
