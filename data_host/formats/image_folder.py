"""Image-folder datasets: one sub-folder of images per class, each image checked with Pillow.

Every image must open with Pillow as PNG, JPEG, GIF, BMP, WebP or TIFF, pass
``Image.verify`` (structure, such as PNG chunk CRCs) and decode in full (``verify``
checks almost nothing of a JPEG; a truncated one fails only when decoded). Images
larger than ``Image.MAX_IMAGE_PIXELS`` (or ``DEFAULT_MAX_IMAGE_PIXELS`` when Pillow's
limit is unset) are refused as possible decompression bombs. The schema has
one feature, ``image``, with shape ``(height, width, channels)`` when every image shares
it (else ``()`` and a note); the label is ``class`` and ``classes`` are the sub-folder
names, sorted. Images hold no text for the PII finder and are listed in ``not_scanned``.

This module must never decode an image before its pixel count is checked, or accept a
file Pillow cannot verify and decode: errors name the class folder and the file.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from data_host.errors import DatasetFormatError
from data_host.formats.blocks import in_order, open_regular
from data_host.formats.detect import DatasetLayout
from data_host.formats.findings import PiiFinder, PiiFindings
from data_host.formats.limits import DEFAULT_MAX_IMAGE_PIXELS
from data_host.formats.schema import IMAGE, DatasetFormat, DatasetSchema, Feature

#: The label of an image folder: each image's class (its sub-folder's name).
LABEL = "class"
_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
_ProgressCallback = Callable[[int], None]
#: (height, width, channels) of one image.
_Shape = tuple[int, int, int]


def _pixel_limit() -> int:
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else DEFAULT_MAX_IMAGE_PIXELS


def check_image(path: Path, where: str) -> _Shape:
    """Open, verify and decode one image; return its (height, width, channels)."""
    limit = _pixel_limit()
    with os.fdopen(open_regular(path), "rb") as source:
        try:
            with Image.open(source, formats=_FORMATS) as image:
                width, height = image.size
                if width * height > limit:
                    raise DatasetFormatError(
                        f"{where} is {width}x{height} pixels, over the limit of {limit} "
                        f"(a possible decompression bomb); shrink the image"
                    )
                shape = (height, width, len(image.getbands()))
                image.verify()
            # ``verify`` checks structure only (for JPEG, nearly nothing): decode the
            # pixels too, so that a truncated or damaged image is refused here and not
            # in the middle of a training round. The pixel limit was checked above.
            source.seek(0)
            with Image.open(source, formats=_FORMATS) as image:
                image.load()
        except DatasetFormatError:
            raise
        except UnidentifiedImageError:
            raise DatasetFormatError(
                f"{where} is not a PNG, JPEG, GIF, BMP, WebP or TIFF image (Pillow cannot "
                f"identify it); remove it or convert it"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DatasetFormatError(
                f"{where} is refused as a possible decompression bomb: {exc}"
            ) from exc
        except Exception as exc:  # Pillow reports damaged files with many exception types
            raise DatasetFormatError(
                f"{where} cannot be read as a PNG, JPEG, GIF, BMP, WebP or TIFF image: {exc}"
            ) from exc
    return shape


def analyse_images(
    layout: DatasetLayout,
    *,
    label: str | None,
    finder: PiiFinder | None,
    progress: _ProgressCallback | None,
    workers: int,
) -> tuple[DatasetSchema, PiiFindings]:
    """Check every image of an image folder and describe it; ``finder`` is not used (images
    hold no text). ``workers`` threads open images at once."""
    if label not in (None, LABEL):
        raise DatasetFormatError(
            f"label {label!r} is not available for image folder {layout.root}: its only "
            f"label is {LABEL!r} (the class sub-folder of each image)"
        )
    shapes: Counter[_Shape] = Counter()
    with warnings.catch_warnings():
        # Pillow warns (rather than fails) between MAX_IMAGE_PIXELS and twice that.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for path, shape in in_order(
            layout.files, lambda path: check_image(path, layout.relative(path)), workers
        ):
            shapes[shape] += 1
            if progress is not None:
                progress(path.stat().st_size)
    notes: tuple[str, ...] = ()
    if len(shapes) == 1:
        (shape,) = shapes
        feature = Feature("image", IMAGE, shape)
    else:
        feature = Feature("image", IMAGE)
        common = ", ".join(
            f"{height}x{width}x{channels} ({count})"
            for (height, width, channels), count in sorted(
                shapes.items(), key=lambda i: (-i[1], i[0])
            )[:5]
        )
        notes = (
            f"images vary in size: {len(shapes)} distinct (height x width x channels), most "
            f"common {common}",
        )
    per_class = Counter(path.parent.name for path in layout.files)
    findings = PiiFindings(
        not_scanned=[f"{name}/: images ({per_class[name]})" for name in layout.classes]
    )
    schema = DatasetSchema(
        DatasetFormat.IMAGE_FOLDER,
        (feature,),
        LABEL,
        len(layout.files),
        len(layout.files),
        classes=layout.classes,
        notes=notes,
    )
    return schema, findings
