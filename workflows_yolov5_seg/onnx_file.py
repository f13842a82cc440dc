"""What the pipeline needs from an ONNX file, read straight from its protobuf (no ``onnx`` or ``onnxruntime``).

The model package layer reads an ONNX once, whichever backend runs it: the graph's inputs and outputs (names,
element types, shapes with symbolic dimensions) and ``ModelProto.metadata_props`` (Ultralytics' ``names`` and
``stride``). Only the fields below are decoded; tensors and nodes are skipped without being copied.

Field numbers (``onnx/onnx.proto3``): ``ModelProto.graph = 7``, ``ModelProto.metadata_props = 14``;
``GraphProto.input = 11``, ``GraphProto.output = 12``, ``GraphProto.initializer = 5``; ``TensorProto.name = 8``;
``ValueInfoProto.name = 1``, ``ValueInfoProto.type = 2``; ``TypeProto.tensor_type = 1``;
``TypeProto.Tensor.elem_type = 1``, ``TypeProto.Tensor.shape = 2``; ``TensorShapeProto.dim = 1``;
``Dimension.dim_value = 1``, ``Dimension.dim_param = 2``; ``StringStringEntryProto.key = 1``, ``.value = 2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


def _initializer_name(data: memoryview) -> str:
    return next((_text(value) for number, _, value in _fields(data) if number == 8), "")


def parse_onnx_header(data: bytes | memoryview) -> OnnxHeader:
    """Reads an ONNX ``ModelProto``'s inputs, outputs and metadata.

    Raises:
        OnnxFormatError: the bytes are not an ONNX model (not protobuf, truncated, or without a graph).
    """
    view = memoryview(data)
    metadata: dict[str, str] = {}
    graph = None
    for number, wire, value in _fields(view):
        if number == 7 and wire == 2:
            graph = _message(value)
        elif number == 14 and wire == 2:
            entry = {n: _text(v) for n, w, v in _fields(_message(value)) if w == 2}
            metadata[entry.get(1, "")] = entry.get(2, "")
    if graph is None:
        raise OnnxFormatError("no graph")
    inputs, outputs, initializers = [], [], set()
    for number, wire, value in _fields(graph):
        if wire != 2:
            continue
        if number == 11:
            inputs.append(_tensor_spec(_message(value)))
        elif number == 12:
            outputs.append(_tensor_spec(_message(value)))
        elif number == 5:
            initializers.add(_initializer_name(_message(value)))
    if not outputs:
        raise OnnxFormatError("a graph without outputs")
    return OnnxHeader(tuple(i for i in inputs if i.name not in initializers), tuple(outputs), metadata)


def read_onnx_header(path: Path) -> OnnxHeader:
    """:func:`parse_onnx_header` of a file.

    Raises:
        OnnxFormatError: the file is not an ONNX model.
        OSError: the file cannot be read.
    """
    return parse_onnx_header(Path(path).read_bytes())
