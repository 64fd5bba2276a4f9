"""The home-made safetensors reader/writer against the format spec."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from finetune_sidecar.safetensors_io import (
    CheckpointReader,
    SafetensorsError,
    SafetensorsFile,
    write_safetensors,
)


def _sample() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 5, generator=gen),
        "f16": torch.randn(7, generator=gen).half(),
        "bf16": torch.randn(2, 3, 4, generator=gen).bfloat16(),
        "u8": torch.randint(0, 256, (5,), generator=gen, dtype=torch.uint8),  # odd size: alignment test
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "i32": torch.tensor([[1, -2], [3, 2**31 - 1]], dtype=torch.int32),
        "i64": torch.tensor([2**40, -1]),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 4),
        "strided": torch.arange(12.0).reshape(3, 4).t(),  # non-contiguous input
    }


def test_round_trip_all_dtypes(tmp_path: Path) -> None:
    tensors = _sample()
    path = tmp_path / "a.safetensors"
    size = write_safetensors(path, tensors, {"format": "pt"})
    assert size == path.stat().st_size
    f = SafetensorsFile(path)
    assert f.metadata == {"format": "pt"}
    assert sorted(f.keys()) == sorted(tensors)
    for name, want in tensors.items():
        got = f.get(name)
        assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), name
        assert torch.equal(got, want), name
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"], "temp file left behind"


def test_layout_follows_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "b.safetensors"
    write_safetensors(path, _sample())
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header_text = raw[8 : 8 + n].decode("utf-8")
    assert header_text.rstrip(" ").endswith("}"), "padding must be trailing spaces"
    header = json.loads(header_text)
    assert "__metadata__" not in header
    spans = sorted(tuple(entry["data_offsets"]) for entry in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - n
    for (_, end), (begin, _) in zip(spans, spans[1:]):
        assert end == begin, "the data section must have no holes"
    for entry in header.values():  # widest dtypes first keeps every tensor aligned
        item = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1, "I32": 4, "I64": 8, "BOOL": 1}[entry["dtype"]]
        assert (8 + n + entry["data_offsets"][0]) % item == 0


def test_reads_a_hand_written_file(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": {"k": "v"}, "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "hand.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, -2.5))
    f = SafetensorsFile(path)
    assert f.get("x").tolist() == [1.0, -2.5] and f.metadata == {"k": "v"}


def test_reader_maps_without_copying_and_never_writes_back(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    write_safetensors(path, {"w": torch.ones(1000)})
    f = SafetensorsFile(path)
    a, b = f.get("w"), f.get("w")
    assert a.data_ptr() == b.data_ptr(), "two reads should view the same mapped pages"
    a.add_(1)  # copy-on-write mapping: private to this process
    assert torch.equal(SafetensorsFile(path).get("w"), torch.ones(1000))


def _raw(header: dict[str, object], data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x00", "too short"),
        (struct.pack("<Q", 50) + b"{}", "truncated"),
        (struct.pack("<Q", 4) + b"nope", "not JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (_raw({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4), "bad data offsets"),
        (_raw({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "bad data offsets"),
        (_raw({"x": {"dtype": "F8", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2), "unsupported dtype"),
        (_raw({"x": {"dtype": "F32"}}, b""), "malformed header entry"),
    ],
)
def test_rejects_corrupt_files(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(payload)
    with pytest.raises(SafetensorsError, match=message):
        SafetensorsFile(path)


def test_checkpoint_reader_follows_the_index(tmp_path: Path) -> None:
    tensors = _sample()
    names = sorted(tensors)
    first, second = names[:4], names[4:]
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {n: tensors[n] for n in first})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {n: tensors[n] for n in second})
    weight_map = {n: "model-00001-of-00002.safetensors" for n in first}
    weight_map.update({n: "model-00002-of-00002.safetensors" for n in second})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    reader = CheckpointReader(tmp_path)
    assert sorted(reader.keys()) == names
    for name, tensor in reader.items():
        assert torch.equal(tensor, tensors[name])
    assert reader.info("bf16").dtype == "BF16" and reader.info("bf16").shape == (2, 3, 4)
    with pytest.raises(KeyError):
        reader.get("missing")


def test_checkpoint_reader_needs_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CheckpointReader(tmp_path)
