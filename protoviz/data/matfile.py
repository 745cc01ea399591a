"""A structural check of MATLAB v5 files before ``scipy.io.loadmat`` reads them.

scipy inflates every compressed element in full and allocates cell and struct arrays from the
dimensions a file claims, so a 4 MB file can ask for gigabytes. This walk reads only element headers:
each compressed element is inflated through a bounded decompressor, and every array header's
dimensions are bounded (cell and struct arrays by their element count times fields, as scipy
allocates them). Only MAT v5 files (the Stanford datasets' format) are accepted.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from protoviz.errors import DatasetError

_MI_INT8, _MI_INT32, _MI_MATRIX, _MI_COMPRESSED = 1, 5, 14, 15
_CONTAINERS = {1: "cell", 2: "struct", 3: "object"}


@dataclass(frozen=True)
class MatLimits:
    """max_inflated: bytes all compressed elements inflate to. max_cells: elements x fields of one cell,
    struct or object array. max_elements: elements of one numeric or character array."""

    max_inflated: int = 64 * 2**20
    max_cells: int = 1_000_000
    max_elements: int = 64_000_000
    max_depth: int = 32


def check_mat(data: bytes, label: str, limits: MatLimits = MatLimits()) -> None:
    """Raise DatasetError (naming ``label``) unless ``data`` is a MAT v5 file within ``limits``."""
    if len(data) < 128 or not data.startswith(b"MATLAB 5.0 MAT-file") or data[126:128] not in (b"IM", b"MI"):
        raise DatasetError(f"{label}: not a MATLAB 5 file (MAT v4 and v7.3 files are not read)")
    walker = _Walker(label, limits, "<" if data[126:128] == b"IM" else ">")
    walker.elements(data, 128, len(data), 0)


class _Walker:
    def __init__(self, label: str, limits: MatLimits, order: str):
        self.label, self.limits, self.order = label, limits, order
        self.inflated = 0

    def fail(self, why: str) -> DatasetError:
        return DatasetError(f"{self.label}: {why}")

    def tag(self, data: bytes, at: int, end: int) -> tuple[int, int, int, int]:
        """(type, nbytes, start of data, start of the next element)."""
        if at + 8 > end:
            raise self.fail("an element header runs past the end of the file (truncated?)")
        kind, nbytes = struct.unpack(self.order + "II", data[at:at + 8])
        if kind >> 16:  # small element: the data sits in the tag's second word
            return kind & 0xFFFF, kind >> 16, at + 4, at + 8
        start = at + 8
        if start + nbytes > end:
            raise self.fail("an element claims more bytes than the file holds")
        padded = nbytes if kind == _MI_COMPRESSED else (nbytes + 7) // 8 * 8
        return kind, nbytes, start, min(start + padded, end)

    def elements(self, data: bytes, at: int, end: int, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise self.fail(f"arrays are nested more than {self.limits.max_depth} deep")
        while at < end:
            if end - at < 8 and not any(data[at:end]):
                return  # padding
            kind, nbytes, start, after = self.tag(data, at, end)
            if kind == _MI_COMPRESSED:
                inner = self.inflate(data[start:start + nbytes])
                self.elements(inner, 0, len(inner), depth + 1)
            elif kind == _MI_MATRIX:
                self.matrix(data, start, start + nbytes, depth + 1)
            at = after

    def inflate(self, chunk: bytes) -> bytes:
        """Inflate a megabyte at a time, stopping as soon as the total passes the limit."""
        room = self.limits.max_inflated - self.inflated
        inflater, out, pending = zlib.decompressobj(), bytearray(), chunk
        try:
            while True:
                piece = inflater.decompress(pending, 1 << 20)
                out += piece
                if len(out) > room:
                    raise self.fail(f"its compressed elements inflate to more than "
                                    f"{self.limits.max_inflated // 2**20} MB")
                pending = inflater.unconsumed_tail
                if not piece and not pending:
                    break
        except zlib.error as error:
            raise self.fail(f"a compressed element is corrupt ({error})") from None
        self.inflated += len(out)
        return bytes(out)

    def matrix(self, data: bytes, at: int, end: int, depth: int) -> None:
        if at == end:
            return  # an empty matrix element
        kind, nbytes, start, at = self.tag(data, at, end)  # array flags
        if nbytes < 8:
            raise self.fail("an array has malformed flags")
        array_class = struct.unpack(self.order + "I", data[start:start + 4])[0] & 0xFF
        kind, nbytes, start, at = self.tag(data, at, end)  # dimensions
        if kind != _MI_INT32 or nbytes % 4 or not 0 < nbytes // 4 <= 32:
            raise self.fail("an array has malformed dimensions")
        dims = struct.unpack(self.order + f"{nbytes // 4}i", data[start:start + nbytes])
        if min(dims) < 0:
            raise self.fail("an array has a negative dimension")
        count = math.prod(dims)
        _, _, _, at = self.tag(data, at, end)  # array name
        if array_class == 3:
            _, _, _, at = self.tag(data, at, end)  # class name of an object
        fields = 1
        if array_class in (2, 3):
            _, _, start, at = self.tag(data, at, end)  # field name length
            length = struct.unpack(self.order + "i", data[start:start + 4])[0]
            _, names, _, at = self.tag(data, at, end)  # field names
            fields = max(1, names // length) if length > 0 else 1
        bound = self.limits.max_cells if array_class in _CONTAINERS else self.limits.max_elements
        if count * fields > bound:
            raise self.fail(f"a {_CONTAINERS.get(array_class, 'numeric')} array claims {count:,} elements x "
                            f"{fields} field(s); the limit is {bound:,}")
        self.elements(data, at, end, depth)
