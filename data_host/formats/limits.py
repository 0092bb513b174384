"""Bounds on untrusted dataset input, shared by every format reader.

A creator's files are parsed before anything is registered, so each reader stops at these
limits with a ``DatasetFormatError`` instead of using unbounded memory or time. This module
holds numbers only; it must never read a file.
"""

from __future__ import annotations

#: Longest CSV record or JSON Lines line, in bytes (quoted newlines included).
MAX_LINE_BYTES = 1 << 20
#: Most columns in a CSV header, keys in a JSON Lines object or columns in a Parquet schema.
MAX_COLUMNS = 10_000
#: Most arrays in one ``.npz`` archive (or ``.npy`` files in one folder).
MAX_ARRAYS = 10_000
#: Longest ``.npy`` header (numpy's own default for untrusted files).
MAX_NPY_HEADER_BYTES = 10_000
#: Most files in one dataset folder (all classes of an image folder together).
MAX_FILES = 1_000_000
#: Default pixel ceiling for one image when Pillow's own ``Image.MAX_IMAGE_PIXELS`` is unset.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
#: Bytes of text handed to the PII finder at once by the readers that build their own text
#: (Parquet columns, numpy string arrays).
SCAN_BYTES = 8 << 20
