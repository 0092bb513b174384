"""C2SP tlog-tiles: the static read layout of a log (paths, tile widths, entry bundles).

A tile holds up to 256 consecutive hashes of one tree level: tile level L carries the
hashes of tree level 8L. Tile N at level L covers node indexes [256N, 256N + 256). A
partial tile (``.p/W``) holds the W < 256 hashes that exist so far. Entry bundles hold
up to 256 entries, each prefixed by its length as a big-endian uint16. This module is
pure: it formats and parses paths and bundles; the log supplies the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from provenance.errors import LogError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_BYTES = 0xFFFF
#: Largest tile level accepted in a path (as trillian-tessera's parser).
MAX_TILE_LEVEL = 63


def encode_index(number: int) -> str:
    """Encode a tile index as path elements: 1234067 -> 'x001/x234/067'."""
    if number < 0:
        raise LogError(f"tile index {number} is negative")
    groups = []
    while True:
        groups.append(number % 1000)
        number //= 1000
        if not number:
            break
    groups.reverse()
    return "/".join([f"x{group:03d}" for group in groups[:-1]] + [f"{groups[-1]:03d}"])


def decode_index(elements: list[str]) -> int:
    """Parse path elements written by ``encode_index``; reject any other spelling."""
    if not elements or len(elements) > 7:
        raise LogError("tile index has no path elements or too many")
    number = 0
    for position, element in enumerate(elements):
        last = position == len(elements) - 1
        digits = element if last else element.removeprefix("x")
        if (
            (not last and not element.startswith("x"))
            or len(digits) != 3
            or not (digits.isascii() and digits.isdigit())
        ):
            raise LogError(f"tile path element {element!r} is malformed")
        number = number * 1000 + int(digits)
    if encode_index(number) != "/".join(elements):
        raise LogError("tile index is not canonically encoded")
    return number


@dataclass(frozen=True)
class TileRef:
    """A tile: level (or ``None`` for an entry bundle), index, and width (1..256)."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def path(self) -> str:
        """The tile's path under the log's prefix, e.g. ``tile/0/x001/234.p/5``."""
        kind = "entries" if self.level is None else str(self.level)
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{kind}/{encode_index(self.index)}{suffix}"


def parse_tile_path(path: str) -> TileRef:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise LogError(f"{path!r} is not a tile path")
    kind, rest = parts[1], parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width_text = rest[-1]
        if not (width_text.isascii() and width_text.isdigit()) or width_text.startswith("0"):
            raise LogError(f"partial tile width {width_text!r} is malformed")
        width = int(width_text)
        if not 1 <= width < TILE_WIDTH:
            raise LogError(f"partial tile width {width} is not between 1 and 255")
        rest = [*rest[:-2], rest[-2][:-2]]
    index = decode_index(rest)
    if kind == "entries":
        return TileRef(None, index, width)
    if not (kind.isascii() and kind.isdigit()) or (kind.startswith("0") and kind != "0"):
        raise LogError(f"tile level {kind!r} is malformed")
    level = int(kind)
    if level > MAX_TILE_LEVEL:
        raise LogError(f"tile level {level} is above the maximum {MAX_TILE_LEVEL}")
    return TileRef(level, index, width)


def tile_width(level: int, index: int, tree_size: int) -> int:
    """How many hashes tile (level, index) holds in a tree of ``tree_size`` (0 = none yet)."""
    nodes_at_level = tree_size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, nodes_at_level - index * TILE_WIDTH))


def bundle_width(index: int, tree_size: int) -> int:
    """How many entries bundle ``index`` holds in a tree of ``tree_size``."""
    return max(0, min(TILE_WIDTH, tree_size - index * TILE_WIDTH))


def encode_bundle(entries: list[bytes]) -> bytes:
    """Serialise entries as an entry bundle (uint16 big-endian length prefixes)."""
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise LogError(f"entry of {len(entry)} bytes is over the {MAX_ENTRY_BYTES} limit")
        parts.append(struct.pack(">H", len(entry)))
        parts.append(entry)
    return b"".join(parts)


def decode_bundle(data: bytes) -> list[bytes]:
    """Parse an entry bundle; a truncated entry is an error."""
    entries: list[bytes] = []
    position = 0
    while position < len(data):
        if len(data) - position < 2:
            raise LogError("entry bundle ends inside a length prefix")
        (length,) = struct.unpack_from(">H", data, position)
        position += 2
        if len(data) - position < length:
            raise LogError(f"entry bundle entry {len(entries)} is truncated")
        entries.append(data[position : position + length])
        position += length
        if len(entries) > TILE_WIDTH:
            raise LogError("entry bundle holds more than 256 entries")
    return entries
