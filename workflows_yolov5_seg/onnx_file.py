"""What the pipeline needs from an ONNX file, read straight from its protobuf (no ``onnx`` or ``onnxruntime``).

The model package layer reads an ONNX once, whichever backend runs it: the graph's inputs and outputs (names,
element types, shapes with symbolic dimensions) and ``ModelProto.metadata_props`` (Ultralytics' ``names`` and
``stride``). Only the fields below are read from the file; nodes and tensor data are seeked past, so reading the header
of a model of any size reads a few kilobytes (the backend then reads the whole file once).

Field numbers (``onnx/onnx.proto3``): ``ModelProto.graph = 7``, ``ModelProto.metadata_props = 14``;
``GraphProto.input = 11``, ``GraphProto.output = 12``, ``GraphProto.initializer = 5``; ``TensorProto.name = 8``;
``ValueInfoProto.name = 1``, ``ValueInfoProto.type = 2``; ``TypeProto.tensor_type = 1``;
``TypeProto.Tensor.elem_type = 1``, ``TypeProto.Tensor.shape = 2``; ``TensorShapeProto.dim = 1``;
``Dimension.dim_value = 1``, ``Dimension.dim_param = 2``; ``StringStringEntryProto.key = 1``, ``.value = 2``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

# TensorProto.DataType values the messages name, as ONNX Runtime spells them.
ELEMENT_TYPES = {
    1: "tensor(float)",
    2: "tensor(uint8)",
    3: "tensor(int8)",
    5: "tensor(int16)",
    6: "tensor(int32)",
    7: "tensor(int64)",
    9: "tensor(bool)",
    10: "tensor(float16)",
    11: "tensor(double)",
    16: "tensor(bfloat16)",
}
NUMPY_TYPES = {1: np.dtype(np.float32), 10: np.dtype(np.float16)}

Dimension = int | str | None  # a static size, a symbolic name, or unknown


class OnnxFormatError(ValueError):
    """The bytes are not a readable ONNX ``ModelProto``."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output.

    Attributes:
        name: the tensor's name.
        element_type: ``TensorProto.DataType`` (1 float32, 10 float16, ...).
        shape: per dimension its size, its symbolic name, or ``None`` when unknown.
    """

    name: str
    element_type: int
    shape: tuple[Dimension, ...]

    @property
    def type_name(self) -> str:
        """``tensor(float)``, ``tensor(float16)``, ... (ONNX Runtime's spelling)."""
        return ELEMENT_TYPES.get(self.element_type, f"tensor(type {self.element_type})")

    @property
    def dtype(self) -> np.dtype | None:
        """The numpy dtype of a float32 / float16 tensor, else ``None``."""
        return NUMPY_TYPES.get(self.element_type)


@dataclass(frozen=True)
class OnnxHeader:
    """An ONNX model's interface.

    Attributes:
        inputs: the graph's real inputs (initializers listed as inputs by old exporters are left out).
        outputs: the graph's outputs, in order.
        metadata: ``metadata_props`` as a dict.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str]


def _varint(data: memoryview, offset: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if offset >= len(data) or shift > 63:
            raise OnnxFormatError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    """A message's fields ``(number, wire_type, value)``: varints as ints, length-delimited ones as views."""
    offset = 0
    while offset < len(data):
        tag, offset = _varint(data, offset)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise OnnxFormatError("field number 0")
        if wire == 0:
            value, offset = _varint(data, offset)
            yield number, wire, value
        elif wire == 2:
            length, offset = _varint(data, offset)
            if offset + length > len(data):
                raise OnnxFormatError("truncated field")
            yield number, wire, data[offset : offset + length]
            offset += length
        elif wire in (1, 5):
            offset += 8 if wire == 1 else 4
            if offset > len(data):
                raise OnnxFormatError("truncated fixed-size field")
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")


def _text(value: memoryview | int) -> str:
    if isinstance(value, int):
        raise OnnxFormatError("expected a string field")
    return bytes(value).decode("utf-8", "replace")


def _message(value: memoryview | int) -> memoryview:
    if isinstance(value, int):
        raise OnnxFormatError("expected a nested message")
    return value


def _dimension(data: memoryview) -> Dimension:
    for number, _, value in _fields(data):
        if number == 1 and isinstance(value, int):
            return value
        if number == 2:
            return _text(value)
    return None


def _tensor_spec(data: memoryview) -> TensorSpec:
    name, element_type, shape = "", 0, ()
    for number, _, value in _fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:
            for type_number, _, tensor_type in _fields(_message(value)):
                if type_number != 1:  # only tensor types concern YOLOv5-seg
                    continue
                for tensor_number, _, tensor_value in _fields(_message(tensor_type)):
                    if tensor_number == 1 and isinstance(tensor_value, int):
                        element_type = tensor_value
                    elif tensor_number == 2:
                        shape = tuple(
                            _dimension(_message(dim)) for n, _, dim in _fields(_message(tensor_value)) if n == 1
                        )
    return TensorSpec(name, element_type, shape)


def _read_varint(stream: BinaryIO) -> int:
    value, shift = 0, 0
    while True:
        byte = stream.read(1)
        if not byte or shift > 63:
            raise OnnxFormatError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7


def _stream_fields(stream: BinaryIO, end: int) -> Iterator[tuple[int, int, int]]:
    """The fields of the message from ``stream``'s position to ``end``, without reading their content:
    ``(number, wire_type, value)``, where ``value`` is a varint's value, or a length-delimited field's length with the
    stream at its first byte. The caller may read the field (or the start of it); the next step seeks past it."""
    while stream.tell() < end:
        tag = _read_varint(stream)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise OnnxFormatError("field number 0")
        if wire == 0:
            yield number, wire, _read_varint(stream)
        elif wire == 2:
            length = _read_varint(stream)
            start = stream.tell()
            if start + length > end:
                raise OnnxFormatError("truncated field")
            yield number, wire, length
            stream.seek(start + length)
        elif wire in (1, 5):
            skipped = stream.tell() + (8 if wire == 1 else 4)
            if skipped > end:
                raise OnnxFormatError("truncated fixed-size field")
            stream.seek(skipped)
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")


def _read_field(stream: BinaryIO, length: int) -> memoryview:
    """A small field (an input, an output, a metadata entry) read whole."""
    data = stream.read(length)
    if len(data) < length:
        raise OnnxFormatError("truncated field")
    return memoryview(data)


def _initializer_name(stream: BinaryIO, end: int) -> str:
    """``TensorProto.name``, read without the tensor's data (which comes after it, or is skipped)."""
    return next((_text(_read_field(stream, length)) for n, w, length in _stream_fields(stream, end) if n == 8), "")


def _read_header(stream: BinaryIO, size: int) -> OnnxHeader:
    metadata: dict[str, str] = {}
    graph_found = False
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    initializers: set[str] = set()
    for number, wire, length in _stream_fields(stream, size):
        if number == 7 and wire == 2:
            graph_found = True
            inputs, outputs, initializers = [], [], set()
            graph_end = stream.tell() + length
            for graph_number, graph_wire, field_length in _stream_fields(stream, graph_end):
                if graph_wire != 2:
                    continue
                if graph_number == 11:
                    inputs.append(_tensor_spec(_read_field(stream, field_length)))
                elif graph_number == 12:
                    outputs.append(_tensor_spec(_read_field(stream, field_length)))
                elif graph_number == 5:
                    initializers.add(_initializer_name(stream, stream.tell() + field_length))
        elif number == 14 and wire == 2:
            entry = {n: _text(v) for n, w, v in _fields(_read_field(stream, length)) if w == 2}
            metadata[entry.get(1, "")] = entry.get(2, "")
    if not graph_found:
        raise OnnxFormatError("no graph")
    if not outputs:
        raise OnnxFormatError("a graph without outputs")
    return OnnxHeader(tuple(i for i in inputs if i.name not in initializers), tuple(outputs), metadata)


def parse_onnx_header(data: bytes | memoryview) -> OnnxHeader:
    """Reads an ONNX ``ModelProto``'s inputs, outputs and metadata.

    Raises:
        OnnxFormatError: the bytes are not an ONNX model (not protobuf, truncated, or without a graph).
    """
    return _read_header(io.BytesIO(data), len(data))


def read_onnx_header(path: Path) -> OnnxHeader:
    """:func:`parse_onnx_header` of a file, reading only the header's fields (see the module docstring).

    Raises:
        OnnxFormatError: the file is not an ONNX model.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as stream:
        return _read_header(stream, os.fstat(stream.fileno()).st_size)
