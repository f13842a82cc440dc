"""YOLOv5-seg's network interface: which input and output shapes are accepted, what is read from them, and what
the refusals say."""

from __future__ import annotations

import ast
import json
import logging

import pytest

from workflows_yolov5_seg.errors import NotYOLOv5SegModelError
from workflows_yolov5_seg.model_package import input_hw_from_metadata, stride_from_metadata
from workflows_yolov5_seg.network import IOSignature, check_io_signature

from support.paths import TEST_DATA

IMAGES = ("images", (1, 3, 320, 320))
OUTPUT0 = ("output0", (1, 6300, 40))  # 5 + 3 classes + 32 coefficients
OUTPUT1 = ("output1", (1, 32, 80, 80))


@pytest.mark.parametrize(
    ("inputs", "outputs", "default_input_hw", "expected"),
    [
        ([IMAGES], [OUTPUT0, OUTPUT1], None, IOSignature("images", (320, 320), 1, "output0", "output1", 3)),
        (
            [("images", ("batch", 3, 320, 320))],
            [("output0", ("batch", "anchors", 40)), ("output1", ("batch", 32, 80, 80))],
            None,
            IOSignature("images", (320, 320), None, "output0", "output1", 3),
        ),
        (  # declared in the other order: found by name
            [IMAGES],
            [OUTPUT1, OUTPUT0],
            None,
            IOSignature("images", (320, 320), 1, "output0", "output1", 3),
        ),
        (  # other names: found by rank
            [("x", (2, 3, 640, 480))],
            [("protos", (2, 32, 160, 120)), ("dets", (2, 18900, 117))],
            None,
            IOSignature("x", (640, 480), 2, "dets", "protos", 80),
        ),
        (  # a dynamic output width: the classes come from elsewhere
            [IMAGES],
            [("output0", (1, 6300, "width")), OUTPUT1],
            None,
            IOSignature("images", (320, 320), 1, "output0", "output1", None),
        ),
        (  # unknown channel and prototype counts are accepted
            [("images", (None, None, 320, 320))],
            [("output0", (None, None, None)), ("output1", (None, None, None, None))],
            None,
            IOSignature("images", (320, 320), None, "output0", "output1", None),
        ),
        (  # a dynamic height and width take the package's training size
            [("images", ("batch", 3, "height", "width"))],
            [OUTPUT0, OUTPUT1],
            (384, 512),
            IOSignature("images", (384, 512), None, "output0", "output1", 3),
        ),
    ],
    ids=["static", "symbolic", "outputs-by-name", "outputs-by-rank", "dynamic-width", "unknown-dims", "dynamic-hw"],
)
def test_accepted_signatures(
    inputs: list, outputs: list, default_input_hw: tuple[int, int] | None, expected: IOSignature
) -> None:
    assert check_io_signature("m.onnx", inputs, outputs, default_input_hw) == expected


def test_a_dynamic_size_without_a_training_size_is_640_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        signature = check_io_signature("m.onnx", [("images", (1, 3, "h", "w"))], [OUTPUT0, OUTPUT1])
    assert signature.input_hw == (640, 640)
    assert "'m.onnx' has a dynamic input size" in caplog.text and "training_input_size" in caplog.text


@pytest.mark.parametrize(
    ("inputs", "outputs", "message"),
    [
        ([IMAGES, ("mask", (1, 1, 320, 320))], [OUTPUT0, OUTPUT1], "A YOLO segmentation model has one input"),
        ([("images", (1, 320, 320))], [OUTPUT0, OUTPUT1], r"inputs \[\(1, 320, 320\)\]"),
        ([("images", (1, 4, 320, 320))], [OUTPUT0, OUTPUT1], "not a YOLO segmentation model"),
        ([IMAGES], [("output0", (1, 6300, 8))], "is a detection model .*yolo export model=yolo11n-seg.pt"),
        ([IMAGES], [("output0", (1, 3))], "is a classification model. Export an instance segmentation model"),
        ([IMAGES], [OUTPUT0, OUTPUT1, ("extra", (1, 1))], r"it has 3 output\(s\)"),
        ([IMAGES], [OUTPUT0, ("output1", (1, 16, 80, 80))], r"output1 \[B, 32, H/4, W/4\]"),
        (
            [IMAGES],
            [("output0", (1, 6300, 37)), OUTPUT1],
            r"YOLOv5-seg model, whose output0 \[B, N, 5 \+ classes \+ 32\]",
        ),
        ([IMAGES], [("output0", (1, 6300, 40, 1)), OUTPUT1], "not a YOLO segmentation model"),
        (
            [("images", (1, 3, 330, 320))],
            [OUTPUT0, OUTPUT1],
            "320x330 input; it must be a multiple of the model's stride 32",
        ),
    ],
    ids=[
        "two-inputs",
        "input-rank-3",
        "four-channels",
        "detection",
        "classification",
        "three-outputs",
        "16-prototypes",
        "no-class-columns",
        "instances-rank-4",
        "size-not-stride-multiple",
    ],
)
def test_refused_signatures_say_what_was_found_and_what_is_needed(inputs: list, outputs: list, message: str) -> None:
    with pytest.raises(NotYOLOv5SegModelError, match=message) as caught:
        check_io_signature("weights/m.onnx", inputs, outputs)
    assert "'weights/m.onnx'" in str(caught.value)


def test_the_stride_comes_from_the_model() -> None:
    inputs = [("images", (1, 3, 352, 352))]
    assert check_io_signature("m.onnx", inputs, [OUTPUT0, ("output1", (1, 32, 88, 88))]).input_hw == (352, 352)
    with pytest.raises(NotYOLOv5SegModelError, match="multiple of the model's stride 64"):
        check_io_signature("m.onnx", inputs, [OUTPUT0, ("output1", (1, 32, 88, 88))], stride=64)


# The interfaces (inputs, outputs, metadata) of real ultralytics 8.4 exports: the trained ones in models/ and untrained
# exports of other tasks (training/train_ultralytics.py --stages interfaces).
INTERFACES = json.loads((TEST_DATA / "ultralytics_interfaces.json").read_text())["files"]
EXPECTED = {
    "seg-p6": "anchor-free",
    "-seg-320-e2e": "end2end",
    "-seg-": "anchor-free",
    "-det-": "task 'detect'",
    "-cls-": "task 'classify'",
    "-pose-": "task 'pose'",
    "-obb-": "task 'obb'",
}


def expected_for(name: str) -> str:
    return next(outcome for part, outcome in EXPECTED.items() if part in name)


@pytest.mark.parametrize("name", sorted(INTERFACES))
def test_real_ultralytics_exports_are_recognised_or_named(name: str) -> None:
    interface = INTERFACES[name]
    metadata = interface["metadata"]
    inputs = [(tensor["name"], tuple(tensor["shape"])) for tensor in interface["inputs"]]
    outputs = [(tensor["name"], tuple(tensor["shape"])) for tensor in interface["outputs"]]
    stride = stride_from_metadata(metadata)
    default_hw = input_hw_from_metadata(metadata)
    expected = expected_for(name)
    if expected.startswith("task"):
        with pytest.raises(NotYOLOv5SegModelError, match=f"{expected}.*yolo export model=yolo11n-seg.pt"):
            check_io_signature(name, inputs, outputs, default_hw, stride, metadata)
        return
    signature = check_io_signature(name, inputs, outputs, default_hw, stride, metadata)
    assert signature.layout.name == expected
    assert signature.num_classes == (None if expected == "end2end" else len(ast.literal_eval(metadata["names"])))
