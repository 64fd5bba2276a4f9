"""Minimal safetensors reader and writer (the `safetensors` package is not on Debian).

Format: u64 little-endian header length N, N bytes of JSON header
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`,
then the raw little-endian tensor bytes, offsets relative to the end of the header.

Reading memory-maps the file copy-on-write and wraps slices with torch.frombuffer, so a
multi-GiB checkpoint costs no copy until a tensor is actually touched.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch

if sys.byteorder != "little":  # frombuffer uses native order; the format is little-endian
    raise ImportError("safetensors_io supports little-endian machines only")

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}

# The reference implementation refuses headers above 100 MB; a bigger one is a corrupt file.
MAX_HEADER_BYTES = 100_000_000
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


class SafetensorsError(ValueError):
    """The file is not a valid safetensors file (the message says why and where)."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives inside a safetensors file."""

    name: str
    dtype: str
    """safetensors dtype name, e.g. "BF16"."""
    shape: tuple[int, ...]
    begin: int
    """Byte offset of the data, relative to the start of the data section."""
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


class SafetensorsFile:
    """One memory-mapped .safetensors file; tensors returned share its pages."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise SafetensorsError(f"{self.path}: too short for a safetensors header")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > MAX_HEADER_BYTES:
                raise SafetensorsError(f"{self.path}: header length {header_len} is implausible")
            header_bytes = f.read(header_len)
            if len(header_bytes) != header_len:
                raise SafetensorsError(f"{self.path}: header is truncated")
            # ACCESS_COPY gives a writable buffer (torch.frombuffer warns on read-only ones)
            # whose writes never reach the file.
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        try:
            header = json.loads(header_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SafetensorsError(f"{self.path}: header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise SafetensorsError(f"{self.path}: header is not a JSON object")
        self._data_start = 8 + header_len
        data_len = len(self._map) - self._data_start
        raw_meta = header.pop("__metadata__", None) or {}
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in raw_meta.items()}
        self.tensors: dict[str, TensorInfo] = {}
        for name, entry in header.items():
            self.tensors[name] = self._parse_entry(name, entry, data_len)

    def _parse_entry(self, name: str, entry: object, data_len: int) -> TensorInfo:
        try:
            dtype = entry["dtype"]  # type: ignore[index]
            shape = tuple(int(d) for d in entry["shape"])  # type: ignore[index]
            begin, end = (int(o) for o in entry["data_offsets"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise SafetensorsError(f"{self.path}: malformed header entry for {name!r}") from None
        if dtype not in DTYPES:
            raise SafetensorsError(f"{self.path}: tensor {name!r} has unsupported dtype {dtype!r}")
        expected = math.prod(shape) * _itemsize(DTYPES[dtype])
        if not 0 <= begin <= end <= data_len or end - begin != expected:
            raise SafetensorsError(f"{self.path}: tensor {name!r} has bad data offsets [{begin}, {end}]")
        return TensorInfo(name, dtype, shape, begin, end)

    def keys(self) -> list[str]:
        return list(self.tensors)

    def get(self, name: str) -> torch.Tensor:
        """The tensor as a view of the mapped file (writes stay private to this process)."""
        info = self.tensors.get(name)
        if info is None:
            raise KeyError(f"{name!r} is not in {self.path}")
        dtype = DTYPES[info.dtype]
        count = info.nbytes // _itemsize(dtype)
        if count == 0:  # frombuffer rejects empty slices
            return torch.empty(info.shape, dtype=dtype)
        flat = torch.frombuffer(self._map, dtype=dtype, count=count, offset=self._data_start + info.begin)
        return flat.view(info.shape)


class CheckpointReader:
    """A Hugging Face checkpoint folder: one model.safetensors, or shards plus index.json."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        index_path = self.folder / INDEX_NAME
        self._files: dict[str, SafetensorsFile] = {}
        self.weight_map: dict[str, str] = {}
        if index_path.is_file():
            index = json.loads(index_path.read_text(encoding="utf-8"))
            weight_map = index.get("weight_map") if isinstance(index, dict) else None
            if not isinstance(weight_map, dict):
                raise SafetensorsError(f"{index_path}: no weight_map")
            self.weight_map = {str(k): str(v) for k, v in weight_map.items()}
        elif (self.folder / SINGLE_NAME).is_file():
            single = self._file(SINGLE_NAME)
            self.weight_map = {name: SINGLE_NAME for name in single.keys()}
        else:
            raise FileNotFoundError(f"{self.folder} has neither {SINGLE_NAME} nor {INDEX_NAME}")

    def _file(self, file_name: str) -> SafetensorsFile:
        if file_name not in self._files:
            self._files[file_name] = SafetensorsFile(self.folder / file_name)
        return self._files[file_name]

    def keys(self) -> list[str]:
        return list(self.weight_map)

    def info(self, name: str) -> TensorInfo:
        return self._file(self.weight_map[name]).tensors[name]

    def get(self, name: str) -> torch.Tensor:
        if name not in self.weight_map:
            raise KeyError(f"{name!r} is not in the checkpoint {self.folder}")
        return self._file(self.weight_map[name]).get(name)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.weight_map:
            yield name, self.get(name)


def _write_order(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    # Widest dtypes first (as the reference writer does): with an 8-aligned header every
    # tensor then starts at a multiple of its own item size, so mapped views are aligned.
    return sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))


def write_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> int:
    """Writes `tensors` atomically (temp file, fsync, os.replace); returns the file size."""
    path = Path(path)
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    order = _write_order(tensors)
    offset = 0
    for name in order:
        tensor = tensors[name]
        if tensor.dtype not in DTYPE_NAMES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors_io cannot write")
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # spaces are valid JSON padding
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header_bytes)))
            f.write(header_bytes)
            for name in order:
                f.write(tensor_bytes(tensors[name]))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return 8 + len(header_bytes) + offset


def tensor_bytes(tensor: torch.Tensor) -> bytearray:
    """The raw little-endian bytes of `tensor` in C order (one copy, no numpy needed)."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    out = bytearray(flat.numel() * flat.element_size())
    if out:
        # view(torch.uint8) reinterprets any dtype (bf16 and bool included) byte-for-byte.
        torch.frombuffer(out, dtype=torch.uint8).copy_(flat.view(torch.uint8))
    return out
