"""Static int8 quantization of a YOLOv5-seg ONNX for ONNX Runtime on the CPU (``workflows-yolov5-seg quantize``).

From a float32 model (a bare ``.onnx`` or a model folder) and a folder of calibration images, writes a model that
every model source loads unchanged: ONNX Runtime's QDQ format (``QuantizeLinear`` / ``DequantizeLinear`` pairs
around int8 operators), weights per output channel, activations calibrated on the images **pre-processed exactly as
at inference** (the model package's own :func:`~workflows_yolov5_seg.preprocessing.preprocess_images`). The graph's
input and output stay float32, so the pipeline, the block and every backend treat the result like any other export.

Parts of the network can stay in float (see :func:`graph_parts` and ``docs/quantization.md`` for the measurements
behind the default :data:`DEFAULT_KEEP_FLOAT`):

- ``decode``: the Detect head's decoding of ``output0`` (reshape, sigmoid, grid / anchor arithmetic, concat). Its
  last tensor holds pixel coordinates (0..640) next to probabilities (0..1) and mask coefficients: one int8 scale
  for all of them rounds every score to a few levels;
- ``detect``: the Detect head's 1x1 convolutions (their outputs are the raw box, score and coefficient logits, one
  int8 scale for all of them);
- ``proto``: the prototype branch that makes ``output1``.

Usage::

    from workflows_yolov5_seg.quantize import quantize_model

    result = quantize_model("yolov5s-seg.onnx", "calibration-images/", "yolov5s-seg-int8.onnx")
    result.output  # Path of the int8 .onnx (or package folder, for a folder input)

Needs the ``onnx`` package at quantize time only (``pip install 'workflows-yolov5-seg[quantize]'``); the quantized
model runs with ``onnxruntime`` alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workflows_yolov5_seg.errors import (
    CalibrationDataError,
    InvalidModelFileError,
    InvalidParameterError,
    MissingDependencyError,
    ModelLoadError,
    check_choice,
)
from workflows_yolov5_seg.layouts import END_TO_END
from workflows_yolov5_seg.model_package import ModelPackage, load_model_package
from workflows_yolov5_seg.package_layout import TRT_CONFIG_FILE, TRT_ENGINE_FILE
from workflows_yolov5_seg.preprocessing import preprocess_images

logger = logging.getLogger(__name__)

FLOAT_PARTS = ("decode", "detect", "proto")
# Chosen from the measurements in docs/quantization.md (docs/results/quantization-study.json): with the Detect head's
# convolutions in int8 box mAP50-95 drops 5.5 points, in float 0.4 for about the same speed; the prototype branch
# in float costs a fifth of the 640 speed-up and buys nothing; percentile calibration is the most accurate.
DEFAULT_KEEP_FLOAT: tuple[str, ...] = ("decode", "detect")
# ONNX Runtime's entropy calibration is not offered: quantize_static cannot set its histogram size, and its
# default (128 bins, 128 quantized bins) leaves the KL search nothing to choose: it gave minmax's ranges exactly.
CALIBRATION_METHODS = ("minmax", "percentile")
DEFAULT_CALIBRATION_METHOD = "percentile"
DEFAULT_MAX_CALIBRATION_IMAGES = 200
CALIBRATION_CHUNK = 4  # images per calibration pass: bounds the calibrators' memory (~0.55 GB per 640 image)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
METADATA_KEY = "quantization"  # ONNX metadata_props entry describing how the model was quantized
EXTRA = "quantize"  # the pip extra that brings onnx


@dataclass(frozen=True)
class QuantizationOptions:
    """How to quantize.

    Attributes:
        keep_float: parts of the network left in float, from :data:`FLOAT_PARTS`.
        calibration_method: ``percentile`` (ranges symmetric around 0 up to the 99.999th percentile of the
            absolute values seen) or ``minmax`` (the range seen).
        max_images: at most this many calibration images (the first ones in file-name order).
        per_channel: one weight scale per output channel (else one per tensor).
        reduce_range: 7-bit weights, against int16 saturation of the u8 x s8 products on CPUs without VNNI.
        symmetric_activations: int8 activations with zero point 0 (else uint8 with a fitted zero point).
        unsigned_weights: uint8 weights (ONNX Runtime's u8 x u8 kernels, its other advice against saturation on CPUs
            without VNNI) instead of int8.
        exclude_nodes: further node names to keep in float (after ``quant_pre_process``'s renaming, if any).
    """

    keep_float: tuple[str, ...] = DEFAULT_KEEP_FLOAT
    calibration_method: str = DEFAULT_CALIBRATION_METHOD
    max_images: int = DEFAULT_MAX_CALIBRATION_IMAGES
    per_channel: bool = True
    reduce_range: bool = False
    symmetric_activations: bool = False
    unsigned_weights: bool = False
    exclude_nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_float", tuple(dict.fromkeys(self.keep_float)))
        for part in self.keep_float:
            check_choice(
                "keep_float part",
                part,
                FLOAT_PARTS,
                "decode: output0's decoding; detect: the head's convolutions; proto: the prototype branch.",
            )
        check_choice("calibration_method", self.calibration_method, CALIBRATION_METHODS)
        if isinstance(self.max_images, bool) or not isinstance(self.max_images, int) or self.max_images < 1:
            raise InvalidParameterError(f"max_images must be an integer >= 1, got {self.max_images!r}.")


@dataclass(frozen=True)
class QuantizationResult:
    """What :func:`quantize_model` wrote.

    Attributes:
        output: the int8 ``.onnx`` (bare input) or package folder (folder input).
        weights_path: the int8 ONNX file itself.
        calibration_images: how many images calibrated the activations.
        float_nodes: names of the nodes kept in float (by part, then ``exclude_nodes``).
        quantized_operators: count per operator type of the nodes that run in int8.
        seconds: wall time of the whole call.
        source_bytes: size of the float ONNX; ``output_bytes``: of the int8 one.
    """

    output: Path
    weights_path: Path
    calibration_images: int
    float_nodes: dict[str, list[str]]
    quantized_operators: dict[str, int]
    seconds: float
    source_bytes: int
    output_bytes: int
    options: QuantizationOptions = field(default_factory=QuantizationOptions)


def import_quantization():  # noqa: ANN201 - (onnx, onnxruntime.quantization)
    """Imports ``onnx`` and ONNX Runtime's quantization tools, or raises an error naming the extra to install."""
    try:
        import onnx
    except ImportError as error:
        raise MissingDependencyError("onnx", EXTRA, "Quantizing a model") from error
    try:
        from onnxruntime import quantization
    except ImportError as error:
        raise MissingDependencyError("onnxruntime", "onnx-cpu", "Quantizing a model") from error
    return onnx, quantization


# ------------------------------------------------------------------------------------------------- graph parts


def graph_parts(model: Any, instances_name: str, protos_name: str) -> dict[str, list[str]]:  # noqa: ANN401
    """The nodes of a YOLOv5-seg graph by part, found from the graph's structure (not from node names).

    - ``decode``: the nodes between the Detect head's convolutions and ``output0`` (walking back from ``output0``
      and stopping at convolutions): reshape, transpose, split, sigmoid, grid and anchor arithmetic, concat;
    - ``detect``: the convolutions where that walk stops (one per detection scale);
    - ``proto``: the nodes whose results flow into ``output1`` only (the prototype branch);
    - ``backbone``: every other node. ``Constant`` nodes are left out.

    Args:
        model: an ``onnx.ModelProto``.
        instances_name: the name of ``output0`` (``(B, N, 5 + nc + 32)``).
        protos_name: the name of ``output1`` (``(B, 32, H / 4, W / 4)``).

    Returns:
        ``{"backbone": [...], "detect": [...], "decode": [...], "proto": [...]}``, node names in graph order.
    """
    nodes = [node for node in model.graph.node if node.op_type != "Constant"]
    producer = {name: index for index, node in enumerate(nodes) for name in node.output}
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)

    decode: set[int] = set()
    detect: set[int] = set()
    pending = [producer[instances_name]] if instances_name in producer else []
    while pending:
        index = pending.pop()
        if index in decode or index in detect:
            continue
        if nodes[index].op_type == "Conv":
            detect.add(index)
            continue
        decode.add(index)
        pending.extend(producer[name] for name in nodes[index].input if name in producer)

    # forward reachability of output1 and output0, in reverse topological order (ONNX lists nodes topologically)
    reaches: list[set[str]] = [set() for _ in nodes]
    for index in reversed(range(len(nodes))):
        node = nodes[index]
        found = {name for name in node.output if name in (instances_name, protos_name)}
        for name in node.output:
            for successor in consumers.get(name, []):
                found |= reaches[successor]
        reaches[index] = found

    parts: dict[str, list[str]] = {"backbone": [], "detect": [], "decode": [], "proto": []}
    for index, node in enumerate(nodes):
        if index in decode:
            parts["decode"].append(node.name)
        elif index in detect:
            parts["detect"].append(node.name)
        elif reaches[index] == {protos_name}:
            parts["proto"].append(node.name)
        else:
            parts["backbone"].append(node.name)
    return parts


# ------------------------------------------------------------------------------------------------- calibration


def find_calibration_images(folder: Path, limit: int) -> list[Path]:
    """The first ``limit`` images of ``folder`` (recursively, in path order).

    Raises:
        CalibrationDataError: the folder does not exist or holds no image files.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CalibrationDataError(
            f"Calibration folder '{folder}' does not exist or is not a folder; give a folder of images like those "
            "the model will see (e.g. its training images; 100-300 are plenty)."
        )
    images = sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())
    if not images:
        raise CalibrationDataError(
            f"Calibration folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}); add images like those the "
            "model will see (e.g. its training images; 100-300 are plenty)."
        )
    return images[:limit]


def calibration_batches(package: ModelPackage, images: Sequence[Path]) -> Iterator[np.ndarray]:
    """Each image pre-processed as the pipeline does for this model: ``(1, 3, H, W)`` float32 batches.

    Unreadable files are skipped with a warning.
    """
    import cv2

    assert package.signature is not None
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            logger.warning("Skipping calibration file '%s': OpenCV cannot read it as an image.", path)
            continue
        batch, _ = preprocess_images([image], package.preprocessing, package.signature.input_hw, dtype=np.float32)
        yield batch


def _data_reader(quantization: Any, package: ModelPackage, images: Sequence[Path]) -> Any:  # noqa: ANN401
    """ONNX Runtime's ``CalibrationDataReader`` over ``images``, pre-processing lazily; ``set_range`` lets
    ``quantize_static`` calibrate chunk by chunk (its calibrators otherwise keep every intermediate tensor of every
    image in memory: 17 GB for 32 images of a 640 YOLOv5s-seg)."""
    assert package.signature is not None
    input_name = package.signature.input_name

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.count = 0
            self._batches: Iterator[np.ndarray] = iter(())
            self.set_range(0, len(images))

        def __len__(self) -> int:
            return len(images)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._batches = calibration_batches(package, images[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            self.count += 1
            return {input_name: batch}

    return Reader()


def chunk_size(count: int, largest: int = CALIBRATION_CHUNK) -> int:
    """The largest divisor of ``count`` up to ``largest`` (``quantize_static`` needs equal chunks)."""
    return next(size for size in range(min(largest, count), 0, -1) if count % size == 0)


# ---------------------------------------------------------------------------------------------------- quantize


def _check_has_onnx(package: ModelPackage) -> None:
    if package.weights_path is None or package.signature is None:
        raise InvalidModelFileError(
            f"'{package.model_id}' has no ONNX weights (only a TensorRT engine); quantization needs the float32 "
            "ONNX export."
        )


def default_output(model: str) -> Path:
    """``NAME-int8.onnx`` beside a bare ``.onnx``; ``NAME-int8/`` beside a folder."""
    path = Path(model).expanduser()
    if path.suffix.lower() == ".onnx":
        return path.with_name(f"{path.stem}-int8.onnx")
    return path.with_name(f"{path.name.rstrip('/')}-int8")


def quantize_model(
    model: str | os.PathLike[str],
    calibration: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    options: QuantizationOptions | None = None,
    overwrite: bool = False,
) -> QuantizationResult:
    """Writes a statically quantized (int8, QDQ) copy of a YOLOv5-seg model.

    Args:
        model: a float32 ``.onnx``, a model folder (inference-models package or legacy), or a Roboflow id (its
            cached package).
        calibration: folder of calibration images (any sizes; pre-processed as at inference). Use images of the
            kind the model will see and not the images you evaluate on.
        output: where to write: an ``.onnx`` path for a bare ``.onnx`` input (class names and stride kept in its
            metadata), a folder for a folder input (every file copied, ``weights`` replaced, a TensorRT
            ``engine.plan`` built from the float weights left out). Default: ``NAME-int8.onnx`` / ``NAME-int8/``
            beside the input (required for a Roboflow id).
        options: what to keep in float, calibration method, image count (see :class:`QuantizationOptions`).
        overwrite: replace an existing output.

    Returns:
        What was written, with the calibration count and the nodes kept in float.

    Raises:
        MissingDependencyError: ``onnx`` is not installed (the ``quantize`` extra).
        CalibrationDataError: no usable calibration images.
        InvalidModelFileError: the model has no float32 ONNX weights (fp16 exports and engine-only packages).
        InvalidParameterError: the output exists (and not ``overwrite``) or has the wrong form.
    """
    from workflows_yolov5_seg.model_source import model_source_kind, resolve_model

    started = time.perf_counter()
    options = options or QuantizationOptions()
    onnx, quantization = import_quantization()
    source = str(model)
    kind = model_source_kind(source)
    package = resolve_model(source)
    _check_has_onnx(package)
    assert package.weights_path is not None and package.signature is not None
    _check_float32(onnx, package.weights_path)
    if output is None:
        if kind == "roboflow":
            raise InvalidParameterError(f"Give an output folder to quantize the Roboflow model '{source}' into.")
        output = default_output(source)
    output = Path(output).expanduser()
    bare = kind == "onnx"
    if bare and output.suffix.lower() != ".onnx":
        raise InvalidParameterError(f"The output for a bare .onnx input must be an .onnx path, got '{output}'.")
    if not bare and output.suffix.lower() == ".onnx":
        raise InvalidParameterError(
            f"'{source}' is a model folder: the output must be a folder (its files are copied), got '{output}'."
        )
    if output.exists() and not overwrite:
        raise InvalidParameterError(f"'{output}' already exists; remove it, choose another output or overwrite it.")
    images = find_calibration_images(Path(calibration), options.max_images)

    with tempfile.TemporaryDirectory(prefix="yolov5seg-quantize-") as tmp:
        work = Path(tmp)
        prepared = work / "prepared.onnx"
        try:
            quantization.shape_inference.quant_pre_process(str(package.weights_path), str(prepared))
        except Exception as error:  # noqa: BLE001 - an optional optimisation; quantization works without it
            logger.warning("quant_pre_process failed (%s); quantizing the model as it is.", error)
            shutil.copy(package.weights_path, prepared)
        prepared_model = onnx.load(str(prepared))
        signature = package.signature
        parts = graph_parts(prepared_model, signature.instances_name, signature.protos_name)
        tail = None
        if signature.layout is END_TO_END:
            head, *tail = split_off_decode(onnx, prepared_model, parts["decode"])
            onnx.save(head, str(prepared))
        float_nodes = {part: parts[part] for part in options.keep_float}
        if options.exclude_nodes:
            float_nodes["exclude_nodes"] = list(options.exclude_nodes)
        excluded = [name for names in float_nodes.values() for name in names]
        quantized = work / "quantized.onnx"
        method = options.calibration_method
        try:
            count = _quantize_static(quantization, prepared, quantized, package, images, excluded, options, method)
        except ValueError as error:
            if method != "percentile" or "bins" not in str(error):
                raise
            # np.histogram cannot bin a tensor whose values span (almost) nothing, e.g. dead activations
            logger.warning(
                "Percentile calibration failed (%s): a tensor's values span almost no range; calibrating with minmax.",
                error,
            )
            method = "minmax"
            count = _quantize_static(quantization, prepared, quantized, package, images, excluded, options, method)
        result_model = onnx.load(str(quantized))
        if tail is not None:
            result_model = join_decode(result_model, prepared_model, *tail)
        _copy_metadata(onnx.load(str(package.weights_path), load_external_data=False), result_model, package)
        description = {
            "format": "QDQ",
            "weights": ("uint8" if options.unsigned_weights else "int8")
            + (" per channel" if options.per_channel else " per tensor")
            + (", 7-bit range" if options.reduce_range else ""),
            "activations": "int8 symmetric" if options.symmetric_activations else "uint8",
            "calibration_images": count,
            "calibration_method": method,
            "float_parts": list(options.keep_float),
            "onnxruntime": _version("onnxruntime"),
        }
        _set_metadata(result_model, METADATA_KEY, json.dumps(description, sort_keys=True))
        onnx.save(result_model, str(quantized))
        _check_runs(quantized, package)
        weights_path = _write_output(quantized, package, output, bare, overwrite)
    load_model_package(output)  # the result loads like the original (signature, class names)
    return QuantizationResult(
        output=output,
        weights_path=weights_path,
        calibration_images=count,
        float_nodes=float_nodes,
        quantized_operators=quantized_operator_counts(result_model),
        seconds=time.perf_counter() - started,
        source_bytes=package.weights_path.stat().st_size,
        output_bytes=weights_path.stat().st_size,
        options=options,
    )


def split_off_decode(onnx: Any, model: Any, decode: list[str]) -> tuple[Any, list[Any], list[Any]]:  # noqa: ANN401
    """Splits an end-to-end graph before its decode part, for calibration.

    The decode part of an end-to-end export (its NMS or top-k selection) stays in float, but ONNX Runtime's calibrator
    records every float tensor of the graph, and after the selection their sizes change from image to image, which its
    histograms cannot merge (``ValueError: ... inhomogeneous shape``). So the graph is quantized without that part,
    ending where the decode begins, and the part is put back after it (:func:`join_decode`).

    Args:
        onnx: the ``onnx`` module.
        model: the ``ModelProto`` (shapes inferred or not).
        decode: the decode part's node names (:func:`graph_parts`).

    Returns:
        ``(head, tail_nodes, tail_initializers)``: the model without the decode nodes, whose outputs are the tensors
        the decode part reads and the graph's other outputs; the decode nodes (with the ``Constant`` nodes only they
        read) and the initializers only they read.
    """
    decode_names = set(decode)
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.name)

    def in_tail(node: Any) -> bool:  # noqa: ANN401
        if node.name in decode_names:
            return True
        readers = set().union(*(consumers.get(name, set()) for name in node.output))
        return node.op_type == "Constant" and bool(readers) and readers <= decode_names

    tail_nodes = [node for node in model.graph.node if in_tail(node)]
    head_nodes = [node for node in model.graph.node if not in_tail(node)]
    tail_outputs = {name for node in tail_nodes for name in node.output}
    head_outputs = {name for node in head_nodes for name in node.output}
    read_by_tail = {name for node in tail_nodes for name in node.input if name in head_outputs}
    initializers = {init.name: init for init in model.graph.initializer}
    head_reads = {name for node in head_nodes for name in node.input}
    tail_initializers = [
        initializers[name]
        for name in sorted({name for node in tail_nodes for name in node.input} & initializers.keys() - head_reads)
    ]
    typed = onnx.shape_inference.infer_shapes(model)
    types = {info.name: info for info in [*typed.graph.value_info, *typed.graph.output]}
    head = onnx.ModelProto()
    head.CopyFrom(model)
    del head.graph.node[:]
    head.graph.node.extend(head_nodes)
    kept_initializers = [init for init in model.graph.initializer if init.name in head_reads]
    del head.graph.initializer[:]
    head.graph.initializer.extend(kept_initializers)
    outputs = [output for output in model.graph.output if output.name not in tail_outputs]
    outputs += [types[name] for name in sorted(read_by_tail) if name in types]
    del head.graph.output[:]
    head.graph.output.extend(outputs)
    return head, tail_nodes, tail_initializers


def join_decode(quantized_head: Any, original: Any, tail_nodes: list[Any], tail_initializers: list[Any]) -> Any:  # noqa: ANN401
    """The quantized head with the float decode part put back, and the original graph's outputs."""
    quantized_head.graph.node.extend(tail_nodes)
    present = {init.name for init in quantized_head.graph.initializer}
    quantized_head.graph.initializer.extend(init for init in tail_initializers if init.name not in present)
    del quantized_head.graph.output[:]
    quantized_head.graph.output.extend(original.graph.output)
    return quantized_head


def _quantize_static(
    quantization: Any,  # noqa: ANN401
    prepared: Path,
    quantized: Path,
    package: ModelPackage,
    images: Sequence[Path],
    excluded: list[str],
    options: QuantizationOptions,
    method: str,
) -> int:
    """One run of ONNX Runtime's ``quantize_static`` over freshly pre-processed calibration images; returns how many
    images were used."""
    import cv2

    readable = [path for path in images if cv2.haveImageReader(str(path))]
    if not readable:
        raise CalibrationDataError(
            f"None of the {len(images)} calibration files ({images[0].parent}, ...) could be read as an image; give "
            "a folder of images (JPEG, PNG, ...)."
        )
    reader = _data_reader(quantization, package, readable)
    printed = io.StringIO()  # ONNX Runtime's calibrators print their progress; kept for the debug log
    with contextlib.redirect_stdout(printed):
        quantization.quantize_static(
            str(prepared),
            str(quantized),
            reader,
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=options.per_channel,
            reduce_range=options.reduce_range,
            activation_type=quantization.QuantType.QInt8
            if options.symmetric_activations
            else quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QUInt8 if options.unsigned_weights else quantization.QuantType.QInt8,
            nodes_to_exclude=excluded,
            calibrate_method={
                "minmax": quantization.CalibrationMethod.MinMax,
                "percentile": quantization.CalibrationMethod.Percentile,
            }[method],
            extra_options={
                "ActivationSymmetric": options.symmetric_activations,
                # despite its name, it makes quantize_static calibrate chunk by chunk whatever the method
                "CalibStridedMinMax": chunk_size(len(readable)),
            },
        )
    logger.debug("ONNX Runtime's calibration output:\n%s", printed.getvalue())
    return reader.count


def quantized_operator_counts(model: Any) -> dict[str, int]:  # noqa: ANN401
    """Per operator type, the nodes of a QDQ graph that run in int8: fed by ``DequantizeLinear`` and feeding only
    ``QuantizeLinear`` (the pattern ONNX Runtime fuses into an int8 kernel)."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not any(n in dequantized for n in node.input):
            continue
        if all(consumers.get(out) and set(consumers[out]) == {"QuantizeLinear"} for out in node.output):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def _check_float32(onnx: Any, weights: Path) -> None:  # noqa: ANN401
    """Refuses an fp16 export (float16 input or weights) and an already quantized model."""
    model = onnx.load(str(weights), load_external_data=False)
    initializers = {init.name: init.data_type for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    float16 = onnx.TensorProto.FLOAT16
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT or float16 in initializers.values():
        raise InvalidModelFileError(
            f"'{weights}' is not a float32 model (it has float16 inputs or weights: an fp16 export); quantize the "
            "float32 export instead."
        )
    if any(
        node.op_type in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger")
        for node in model.graph.node
    ):
        raise InvalidModelFileError(f"'{weights}' is already quantized; quantize the float32 export instead.")


def _set_metadata(model: Any, key: str, value: str) -> None:  # noqa: ANN401
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    prop = model.metadata_props.add()
    prop.key, prop.value = key, value


def _copy_metadata(original: Any, quantized: Any, package: ModelPackage) -> None:  # noqa: ANN401
    """Keeps the original's ``metadata_props`` (Ultralytics' ``names``, ``stride``, ...), with ``names`` set to the
    class names the original loads with (a ``class_names.txt`` beside it wins over its metadata), written as
    Ultralytics writes them, so that a bare int8 ``.onnx`` names its classes wherever it is moved."""
    for prop in original.metadata_props:
        _set_metadata(quantized, prop.key, prop.value)
    _set_metadata(quantized, "names", str(dict(enumerate(package.class_names))))
    quantized.producer_name = original.producer_name or quantized.producer_name
    quantized.doc_string = original.doc_string


def _check_runs(weights: Path, package: ModelPackage) -> None:
    """One forward pass of the int8 model on a grey image: its outputs must be finite."""
    from workflows_yolov5_seg.backends.onnx import import_onnxruntime

    onnxruntime = import_onnxruntime()
    assert package.signature is not None
    try:
        session = onnxruntime.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
        height, width = package.signature.input_hw
        outputs = session.run(None, {package.signature.input_name: np.full((1, 3, height, width), 0.5, np.float32)})
    except Exception as error:
        raise ModelLoadError(
            f"The int8 model made from '{package.model_id}' does not run in ONNX Runtime ({type(error).__name__}: "
            f"{str(error)[:300]}); keep more of the network in float (keep_float) or report the model."
        ) from error
    if not all(np.isfinite(out).all() for out in outputs):
        raise ModelLoadError(
            f"The int8 model made from '{package.model_id}' returns NaN or inf; keep more of the network in float."
        )


def _write_output(quantized: Path, package: ModelPackage, output: Path, bare: bool, overwrite: bool) -> Path:
    """Puts the int8 ONNX (and for a folder, the other files of the folder) at ``output``, atomically."""
    assert package.weights_path is not None
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        if bare:
            target = staging / output.name
            shutil.copyfile(quantized, target)
            weights_name = output.name
        else:
            source_folder = package.weights_path.parent
            target = staging / "package"
            target.mkdir()
            for entry in sorted(source_folder.iterdir()):
                if not entry.is_file() or entry.name.startswith("."):
                    continue
                if entry.name in (TRT_ENGINE_FILE, TRT_CONFIG_FILE):
                    logger.info("Leaving out '%s': it was built from the float weights.", entry)
                    continue
                if entry == package.weights_path:
                    shutil.copyfile(quantized, target / entry.name)
                else:
                    shutil.copy2(entry, target / entry.name)
            weights_name = package.weights_path.name
        if output.exists() and overwrite:
            if output.is_dir():
                shutil.rmtree(output)
            else:
                output.unlink()
        os.replace(target, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output if bare else output / weights_name


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
