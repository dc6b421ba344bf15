"""The TFRecord container, read and written without TensorFlow.

A TFRecord file is a sequence of records, each::

    uint64 length (little-endian)
    uint32 masked CRC32C of those 8 bytes
    bytes  payload (length bytes)
    uint32 masked CRC32C of the payload

with ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2^32. Waymo's v1
segments are TFRecords of serialised ``dataset_pb2.Frame`` messages, up to a gigabyte a
file: :func:`read_records` streams them, one record in memory at a time, and checks both
CRCs (``google-crc32c``, a C implementation).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import google_crc32c

from rem_core.files import publish_file
from rem_core.schema import DataError

__all__ = ["masked_crc32c", "read_records", "write_records"]

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C TFRecord stores for ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str | Path, *, check_crc: bool = True) -> Iterator[bytes]:
    """The payloads of a TFRecord file, one at a time.

    Args:
        path: the file.
        check_crc: verify both CRCs of every record (on by default; off only to salvage).

    Yields:
        Each record's payload, in file order.

    Raises:
        DataError: naming the file, the record's number and its byte offset, when the file
            ends inside a record or a CRC does not match.
    """
    path = Path(path)
    with path.open("rb") as f:
        index = 0
        while True:
            offset = f.tell()
            header = f.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise DataError(
                    f"{path}: record {index} at byte {offset}: the file ends inside the "
                    "record's header (truncated?)"
                )
            length, length_crc = _HEADER.unpack(header)
            if check_crc and masked_crc32c(header[:8]) != length_crc:
                raise DataError(
                    f"{path}: record {index} at byte {offset}: the length's CRC does not "
                    "match (corrupt, or not a TFRecord file)"
                )
            payload = f.read(length)
            footer = f.read(_FOOTER.size)
            if len(payload) < length or len(footer) < _FOOTER.size:
                raise DataError(
                    f"{path}: record {index} at byte {offset}: the file ends inside the "
                    f"record ({length:,} bytes announced; truncated?)"
                )
            if check_crc and masked_crc32c(payload) != _FOOTER.unpack(footer)[0]:
                raise DataError(
                    f"{path}: record {index} at byte {offset}: the payload's CRC does not "
                    "match (corrupt)"
                )
            yield payload
            index += 1


def write_records(path: str | Path, payloads: Iterable[bytes], *, force: bool = False) -> Path:
    """Write payloads as a TFRecord file, atomically (temp file, then rename).

    Raises:
        FileExistsError: ``path`` exists and ``force`` is false.
    """

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            for payload in payloads:
                header = struct.pack("<Q", len(payload))
                f.write(header)
                f.write(_FOOTER.pack(masked_crc32c(header)))
                f.write(payload)
                f.write(_FOOTER.pack(masked_crc32c(payload)))

    return publish_file(path, write, force=force)
