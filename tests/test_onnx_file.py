"""The ONNX header reader (no onnx / onnxruntime at run time) against the ``onnx`` package's own reading: the bundled
model, hand-built graphs (symbolic and unknown dimensions, float16, initializers listed as inputs, metadata), and
bytes that are not an ONNX model."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workflows_yolov5_seg.onnx_file import (
    OnnxFormatError,
    OnnxHeader,
    TensorSpec,
    parse_onnx_header,
    read_onnx_header,
)

from support.models import CLASS_NAMES, make_two_box_model
from support.onnx_graphs import make_classification_onnx, make_detection_only_onnx
from support.paths import TRAINED_MODEL


def header_by_onnx(model: onnx.ModelProto) -> OnnxHeader:
    """What the reader must return, read with the ``onnx`` package."""

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
            for d in tensor.shape.dim
        )
        return TensorSpec(value.name, tensor.elem_type, dims)

    initializers = {initializer.name for initializer in model.graph.initializer}
    return OnnxHeader(
        tuple(spec(value) for value in model.graph.input if value.name not in initializers),
        tuple(spec(value) for value in model.graph.output),
        {prop.key: prop.value for prop in model.metadata_props},
    )


def test_the_bundled_model_reads_as_onnx_reads_it() -> None:
    header = read_onnx_header(TRAINED_MODEL)
    assert header == header_by_onnx(onnx.load(str(TRAINED_MODEL)))
    assert [spec.name for spec in header.inputs] == ["images"] and len(header.outputs) == 2
    assert header.inputs[0].dtype == np.float32 and header.inputs[0].type_name == "tensor(float)"
    assert "names" in header.metadata and "stride" in header.metadata


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"batch": 4},
        {"input_type": TensorProto.FLOAT16},
        {"swap_output_order": True, "output_names": ("dets", "protos")},
        {"names": None},
    ],
    ids=["dynamic-batch", "static-batch", "float16-input", "renamed-swapped-outputs", "no-metadata"],
)
def test_hand_built_graphs_read_as_onnx_reads_them(tmp_path: Path, options: dict) -> None:
    path = make_two_box_model(tmp_path / "m.onnx", **options)
    header = read_onnx_header(path)
    assert header == header_by_onnx(onnx.load(str(path)))
    assert header.inputs[0].shape == (options.get("batch", "batch"), 3, 320, 320)
    assert header.metadata == ({} if "names" in options else {"stride": "32", "names": str(CLASS_NAMES)})


def test_float16_input_spec(tmp_path: Path) -> None:
    [image] = read_onnx_header(make_two_box_model(tmp_path / "m.onnx", input_type=TensorProto.FLOAT16)).inputs
    assert image.element_type == TensorProto.FLOAT16 and image.dtype == np.float16
    assert image.type_name == "tensor(float16)"


def test_other_signatures_read_too(tmp_path: Path) -> None:
    detection = read_onnx_header(make_detection_only_onnx(tmp_path / "det.onnx"))
    assert [(spec.name, spec.shape) for spec in detection.outputs] == [("output0", ("batch", 10, 8))]
    classifier = read_onnx_header(make_classification_onnx(tmp_path / "cls.onnx"))
    assert [(spec.name, spec.shape) for spec in classifier.outputs] == [("output0", ("batch", 3))]


def test_initializers_listed_as_inputs_are_left_out_and_unknown_dimensions_are_none() -> None:
    """Old exporters (IR < 4) list every weight as a graph input too."""
    weight = numpy_helper.from_array(np.ones((3,), np.float32), "weight")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["images", "weight"], ["output0"])],
        "old_export",
        [
            helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, "rows", 3]),
            helper.make_tensor_value_info("weight", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    header = parse_onnx_header(model.SerializeToString())
    assert header == header_by_onnx(model)
    assert header.inputs == (TensorSpec("images", TensorProto.FLOAT, (None, "rows", 3)),)
    assert header.outputs == (TensorSpec("output0", TensorProto.FLOAT, ()),)


@pytest.mark.parametrize(
    ("element_type", "type_name", "dtype"),
    [(TensorProto.FLOAT, "tensor(float)", np.float32), (TensorProto.INT64, "tensor(int64)", None), (99, None, None)],
)
def test_tensor_spec_names_and_dtypes(element_type: int, type_name: str | None, dtype: type | None) -> None:
    spec = TensorSpec("x", element_type, (1,))
    assert spec.type_name == (type_name or f"tensor(type {element_type})")
    assert spec.dtype == (None if dtype is None else np.dtype(dtype))


def without_outputs() -> bytes:
    graph = helper.make_graph([], "empty", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [])
    return helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no graph"),
        (b"this is not a protobuf" * 10, "unsupported wire type"),
        (b"\x0b", "unsupported wire type"),  # field 1, wire type 3 (a group): not in ONNX
        (b"\x08\xff\xff", "truncated varint"),
        (b"\x3a\x10abc", "truncated field"),  # field 7 (the graph) announcing 16 bytes, holding 3
        (b"\x08\x08", "no graph"),  # ir_version 8 and nothing else
        (without_outputs(), "a graph without outputs"),
    ],
    ids=["empty", "text", "group", "varint", "short-field", "no-graph", "no-outputs"],
)
def test_bytes_that_are_not_an_onnx_model(data: bytes, message: str) -> None:
    with pytest.raises(OnnxFormatError, match=message):
        parse_onnx_header(data)


@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.9, -1])
def test_a_truncated_model_is_refused(fraction: float) -> None:
    data = TRAINED_MODEL.read_bytes()
    cut = len(data) - 1 if fraction == -1 else int(len(data) * fraction)
    with pytest.raises(OnnxFormatError):
        parse_onnx_header(data[:cut])


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_onnx_header(tmp_path / "missing.onnx")


def test_reading_the_header_does_not_read_the_weights(tmp_path: Path) -> None:
    """The header of a model with 64 MiB of weights is read in well under 1 MiB of memory (ONNX Runtime reads the
    file once more, whole; the header reader must not read it too)."""
    weights = numpy_helper.from_array(np.zeros(16 << 20, np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "big",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 8, 8])],
        [weights],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {"names": "{0: 'a'}"})
    path = tmp_path / "big.onnx"
    onnx.save(model, str(path))
    del model, weights, graph
    tracemalloc.start()
    try:
        header = read_onnx_header(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert header == header_by_onnx(onnx.load(str(path), load_external_data=False))
    assert path.stat().st_size > 64 << 20 and peak < 1 << 20, f"{peak} bytes for the header"
