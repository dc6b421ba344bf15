"""The TFRecord container (rem_core.io.tfrecord), on real Waymo files and broken copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from rem_core.io import masked_crc32c, read_records, write_records
from rem_core.schema import DataError

WAYMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "waymo" / "frames"
needs_samples = pytest.mark.skipif(
    not WAYMO.is_dir(), reason=f"the real Waymo samples are not at {WAYMO}"
)


def test_masked_crc32c_known_values():
    # CRC32C("123456789") = 0xE3069283 (RFC 3720); masked as TFRecord does.
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"") == 0xA282EAD8


def test_round_trip(tmp_path: Path):
    payloads = [b"", b"a", bytes(range(256)) * 40]
    path = write_records(tmp_path / "x.tfrecord", payloads)
    assert list(read_records(path)) == payloads
    with pytest.raises(FileExistsError):
        write_records(path, payloads)


@needs_samples
def test_reads_the_real_waymo_frames_as_frame_protos():
    from waymo_open_dataset import dataset_pb2

    (record,) = list(read_records(WAYMO / "pvps_data_one_frame.tfrecord"))
    frame = dataset_pb2.Frame.FromString(record)
    assert len(frame.laser_labels) == 75
    (record,) = list(read_records(WAYMO / "mmdet3d_val.tfrecord"))
    assert len(dataset_pb2.Frame.FromString(record).laser_labels) == 18


@needs_samples
def test_broken_files_name_the_file_record_and_offset(tmp_path: Path):
    data = (WAYMO / "mmdet3d_val.tfrecord").read_bytes()
    two = tmp_path / "two.tfrecord"
    two.write_bytes(data + data)
    assert len(list(read_records(two))) == 2

    truncated = tmp_path / "truncated.tfrecord"
    truncated.write_bytes(data + data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"truncated.tfrecord: record 1 at byte {len(data)}"):
        list(read_records(truncated))

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    (tmp_path / "flipped.tfrecord").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="record 0 at byte 0: the payload's CRC does not match"):
        list(read_records(tmp_path / "flipped.tfrecord"))
    assert len(list(read_records(tmp_path / "flipped.tfrecord", check_crc=False))) == 1

    (tmp_path / "text.tfrecord").write_bytes(b"this is not a tfrecord file at all")
    with pytest.raises(DataError, match="the length's CRC does not match"):
        list(read_records(tmp_path / "text.tfrecord"))
    (tmp_path / "short.tfrecord").write_bytes(data[:5])
    with pytest.raises(DataError, match="inside the record's header"):
        list(read_records(tmp_path / "short.tfrecord"))
