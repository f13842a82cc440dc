"""Workflows block ``workflows_yolov5_seg/yolov5_instance_segmentation@v1``: adapts Workflows types to the pipeline.

The type id keeps the name the block had when it ran YOLOv5 only, so that existing workflows keep working; the block
runs every generation of :mod:`workflows_yolov5_seg.layouts`.
"""

from __future__ import annotations

from typing import List, Literal, Optional, Type, Union
from uuid import uuid4

import numpy as np
import supervision as sv
from pydantic import ConfigDict, Field, PositiveInt
from supervision.detection.compact_mask import CompactMask

from workflows_yolov5_seg.backends import BACKENDS
from workflows_yolov5_seg.detections import encode_coco_rle
from workflows_yolov5_seg.errors import check_choice
from workflows_yolov5_seg.model import InferenceParameters
from workflows_yolov5_seg.model_cache import get_model
from workflows_yolov5_seg.served_errors import caller_errors_as_served_types
from workflows_yolov5_seg.workflows_engine import (
    BOOLEAN_KIND,
    DETECTION_ID_KEY,
    FLOAT_ZERO_TO_ONE_KIND,
    IMAGE_DIMENSIONS_KEY,
    IMAGE_KIND,
    INFERENCE_ID_KEY,
    INFERENCE_ID_KIND,
    INSTANCE_SEGMENTATION_PREDICTION_KIND,
    INTEGER_KIND,
    LIST_OF_VALUES_KIND,
    PARENT_ID_KEY,
    PREDICTION_TYPE_KEY,
    RLE_INSTANCE_SEGMENTATION_PREDICTION_KIND,
    RLE_MASK_KEY_IN_SV_DETECTIONS,
    ROBOFLOW_API_KEY_KIND,
    ROBOFLOW_MODEL_ID_KIND,
    SECRET_KIND,
    STRING_KIND,
    Batch,
    BlockResult,
    FloatZeroToOne,
    ImageInputField,
    OutputDefinition,
    Selector,
    WorkflowBlock,
    WorkflowBlockManifest,
    WorkflowImageData,
    attach_parents_coordinates_to_sv_detections,
)

BLOCK_TYPE = "workflows_yolov5_seg/yolov5_instance_segmentation@v1"
PREDICTION_TYPE = "instance-segmentation"
MASK_FORMATS = ("dense", "rle")
MASK_FORMAT_HINT = "Use 'rle' for exact masks in serialised results, 'dense' for the polygons core blocks emit."
MASK_STORAGES = ("dense", "compact")
MASK_STORAGE_HINT = "Use 'compact' to keep masks of many detections on large images in little memory."

LONG_DESCRIPTION = """
Run a **YOLO instance-segmentation** model that you trained yourself, and get `sv.Detections` with **pixel masks**
on the original image: boxes, class names, confidences and one boolean mask per object, ready for visualisation,
filtering, cropping and serialisation blocks.

It runs the segmentation exports of every generation: **YOLOv5** (the YOLOv5 repository's `-seg` models) and the
`ultralytics` package's **YOLOv8, YOLOv9, YOLO11, YOLO12 and YOLO26** (`-seg`), either **raw** (the default
export, NMS done here) or **end-to-end** (`nms=True` exports and YOLO26's NMS-free head: the graph selects the
detections). The generation and layout are recognised from the export's metadata, the package's config and the
output shapes; nothing to set.

The model runs inside the process that runs the workflow (no remote call), with ONNX Runtime (CPU or CUDA) or
TensorRT. It is loaded at the first run, once per process, and shared by every step and thread that uses it.

### Where the weights come from (`model`)

- **A local `.onnx` file**: `yolo export model=best.pt format=onnx` (Ultralytics YOLOv8 ... YOLO26; add
  `nms=True` for an end-to-end export) or `python export.py --weights best.pt --include onnx` (YOLOv5 repository).
  Class names are read from the export's metadata, or from a `class_names.txt` beside the file.
  Images are letterboxed with grey (114) padding, as Ultralytics does.
- **A model package folder** in the Roboflow *inference-models* layout (`weights.onnx`, `class_names.txt`,
  `inference_config.json`, `model_config.json` with `model_architecture` `yolov5`, `yolov8`, `yolov11` or
  `yolo26`) or the legacy Inference layout (`*.onnx`, `environment.json`, Inference's `model_type.json`).
  Pre-processing (resize mode, padding, static crop, grayscale, contrast, colour order) follows the package's
  config.
- **A Roboflow model id** `project/version` of a YOLOv5, YOLOv8, YOLO11 or YOLO26 instance-segmentation model
  (Roboflow's `yolov5`, `yolov8`, `yolov11`, `yolo26`), downloaded once with your API key (block `api_key`, e.g.
  `$inputs.api_key`, else the `ROBOFLOW_API_KEY` environment variable) and cached. Every run needs a key that
  Roboflow confirms can read the model, even once it is cached (the answer is remembered for an hour).

PyTorch pickles (`.pt`) are never loaded: export them to ONNX first.

### Parameters

| parameter | default | meaning |
|---|---|---|
| `images` | (required) | the images to segment (`$inputs.image`, or crops from another step) |
| `model` | (required) | where the weights come from (see above) |
| `api_key` | `ROBOFLOW_API_KEY` | Roboflow API key, for a Roboflow model id only: to download it and to authorise every run (see "Model sources") |
| `confidence` | 0.4 | keep detections whose score is above this (YOLOv5: objectness x class probability; later generations: the class probability). End-to-end `nms=True` exports already dropped what was below their export confidence (0.25 unless exported with another `conf`): a lower value cannot bring those back |
| `iou_threshold` | 0.3 | NMS drops a box whose IoU with a better box of the same class is above this; no effect on end-to-end exports (NMS is in the graph) |
| `class_filter` | all | class names to keep (applied before NMS); unknown names are reported in the log |
| `max_detections` | 300 | at most this many detections per image |
| `class_agnostic_nms` | false | suppress overlapping boxes across classes; no effect on end-to-end exports (NMS is in the graph) |
| `mask_decode_mode` | `accurate` | `accurate`: masks at the image's resolution; `fast`: decoded on the model's 1/4-resolution mask grid and enlarged; `tradeoff`: in between, set by `tradeoff_factor` (0 = fast, 1 = accurate) |
| `tradeoff_factor` | 0.0 | see `mask_decode_mode` |
| `backend` | `auto` | `onnx` (ONNX Runtime), `trt` (TensorRT) or `auto` (TensorRT, then ONNX Runtime CUDA, then CPU) |
| `mask_format` | `dense` | how masks are serialised (HTTP, `serialize_results`): `dense` as one polygon each, `rle` as exact COCO RLE |
| `mask_storage` | `dense` | how masks are held inside the workflow: `dense` arrays, or `compact` (supervision `CompactMask`, run-length crops: a few MB for hundreds of detections on 12 MP images). Visualisation, filtering and serialisation read compact masks; `roboflow_core/dynamic_crop@v1` needs `dense` |

Every parameter also accepts a selector (`$inputs.name`, or a step output of the right kind).

Defaults equal those of Roboflow's own instance-segmentation block. Scores are those of each generation's
Ultralytics `predict` (YOLOv5: objectness x class probability; YOLOv8 and later: the class probability; end-to-end
exports: the score the graph wrote), NMS uses true IoU, class ids are 0-based, and masks are decoded with exact
letterbox geometry. As Ultralytics' `predict` does for YOLOv8 and later, a detection whose mask has no pixel is
dropped.

### Outputs

- `predictions`: `sv.Detections` with `xyxy`, `mask` (boolean, one per detection, the input image's size),
  `confidence`, `class_id`, and `class_name`, `detection_id`, `inference_id`, `prediction_type`,
  `image_dimensions`, `parent_id` and the parent / root coordinates in `data`.
  When the workflow result is serialised (the HTTP server does), `mask_format` picks the mask encoding:
  - `dense` (default): each mask becomes its **largest polygon** in `points`, as for Roboflow's own
    instance-segmentation blocks (kind `instance_segmentation_prediction`). Holes and separate parts of a mask are
    lost, and a detection whose mask is empty is left out.
  - `rle`: each detection carries its exact mask as **COCO RLE** in `rle_mask` (`{"size": [height, width],
    "counts": "..."}`, kind `rle_instance_segmentation_prediction`), and no polygon. Decode it with
    `pycocotools.mask.decode(rle)` to get the same boolean mask the block computed, holes included.
- `inference_id`: one id per image.
- `model_id`: the model as named in `model`.
"""


class BlockManifest(WorkflowBlockManifest):
    model_config = ConfigDict(
        json_schema_extra={
            "name": "YOLO Instance Segmentation (YOLOv5 to YOLO26)",
            "version": "v1",
            "short_description": "Segment objects with your own YOLOv5, YOLOv8, YOLOv9, YOLO11, YOLO12 or YOLO26 "
            "segmentation model, raw or end-to-end export (ONNX Runtime / TensorRT).",
            "long_description": LONG_DESCRIPTION,
            "license": "Apache-2.0",
            "block_type": "model",
            "search_keywords": [
                "yolo",
                "yolov5",
                "yolov8",
                "yolov9",
                "yolo11",
                "yolo12",
                "yolo26",
                "ultralytics",
                "segmentation",
                "instance segmentation",
                "end-to-end",
                "onnx",
                "tensorrt",
            ],
            "ui_manifest": {
                "section": "model",
                "icon": "far fa-chart-network",
                "blockPriority": 2,
                "inference": True,
            },
        },
        protected_namespaces=(),
        # A misspelt parameter must fail compilation (HTTP 400 naming it), not run silently with the default.
        extra="forbid",
    )
    type: Literal["workflows_yolov5_seg/yolov5_instance_segmentation@v1"]
    images: Selector(kind=[IMAGE_KIND]) = ImageInputField
    model: Union[Selector(kind=[STRING_KIND, ROBOFLOW_MODEL_ID_KIND]), str] = Field(
        description="Where the weights come from: a YOLO segmentation .onnx file (YOLOv5, YOLOv8, YOLOv9, YOLO11, "
        "YOLO12 or YOLO26, raw or end-to-end export), a model package folder, or a Roboflow model id "
        "'project/version'.",
        examples=[
            "/models/yolo11n-seg.onnx",
            "/models/yolov5s-seg.onnx",
            "/models/my-package",
            "my-project/3",
            "$inputs.model",
        ],
    )
    api_key: Optional[Union[Selector(kind=[ROBOFLOW_API_KEY_KIND, SECRET_KIND]), str]] = Field(
        default=None,
        description="Roboflow API key, for a Roboflow model id only: it downloads the model, and every run is "
        "authorised with it (a model cached for another key is served only to keys Roboflow confirms can read it). "
        "Defaults to the ROBOFLOW_API_KEY environment variable.",
        examples=["$inputs.api_key", "$steps.vault.roboflow_api_key"],
        json_schema_extra={"hidden": True},
    )
    confidence: Union[FloatZeroToOne, Selector(kind=[FLOAT_ZERO_TO_ONE_KIND])] = Field(
        default=0.4,
        description="Minimum score of a detection (YOLOv5: objectness x class probability; YOLOv8 and later: the "
        "class probability). An end-to-end export with NMS in the graph (nms=True) already dropped detections below "
        "its own export confidence (0.25 unless exported with another conf): a lower value cannot bring them back.",
        examples=[0.4, "$inputs.confidence"],
    )
    iou_threshold: Union[FloatZeroToOne, Selector(kind=[FLOAT_ZERO_TO_ONE_KIND])] = Field(
        default=0.3,
        description="IoU above which non-maximum suppression drops the lower-scoring of two boxes. No effect on "
        "end-to-end exports (nms=True, YOLO26 end2end): their NMS is in the graph.",
        examples=[0.3, "$inputs.iou_threshold"],
    )
    class_filter: Union[Optional[List[str]], Selector(kind=[LIST_OF_VALUES_KIND])] = Field(
        default=None,
        description="Class names to keep; all classes when empty.",
        examples=[["circle", "ring"], "$inputs.class_filter"],
    )
    max_detections: Union[PositiveInt, Selector(kind=[INTEGER_KIND])] = Field(
        default=300,
        description="Maximum number of detections per image.",
        examples=[300, "$inputs.max_detections"],
    )
    class_agnostic_nms: Union[bool, Selector(kind=[BOOLEAN_KIND])] = Field(
        default=False,
        description="Suppress overlapping boxes across classes, not only within a class. No effect on end-to-end "
        "exports (nms=True, YOLO26 end2end): their NMS is in the graph.",
        examples=[False, "$inputs.class_agnostic_nms"],
    )
    mask_decode_mode: Union[Literal["accurate", "tradeoff", "fast"], Selector(kind=[STRING_KIND])] = Field(
        default="accurate",
        description="Resolution masks are decoded at: accurate (the image's), fast (the model's 1/4 mask grid, "
        "enlarged), tradeoff (in between, see tradeoff_factor).",
        examples=["accurate", "$inputs.mask_decode_mode"],
    )
    tradeoff_factor: Union[FloatZeroToOne, Selector(kind=[FLOAT_ZERO_TO_ONE_KIND])] = Field(
        default=0.0,
        description="For mask_decode_mode 'tradeoff': 0 decodes like 'fast', 1 like 'accurate'.",
        examples=[0.5, "$inputs.tradeoff_factor"],
    )
    backend: Union[Literal["auto", "onnx", "trt"], Selector(kind=[STRING_KIND])] = Field(
        default="auto",
        description="Inference engine: onnx (ONNX Runtime), trt (TensorRT) or auto (the fastest available).",
        examples=["auto", "$inputs.backend"],
    )
    mask_format: Union[Literal["dense", "rle"], Selector(kind=[STRING_KIND])] = Field(
        default="dense",
        description="How masks leave the workflow when it is serialised (e.g. over HTTP): dense (each mask as its "
        "largest polygon, the core instance-segmentation format) or rle (exact COCO run-length encoding per "
        "detection, holes and separate parts included). How masks are held inside the workflow is set by "
        "mask_storage.",
        examples=["dense", "rle", "$inputs.mask_format"],
    )
    mask_storage: Union[Literal["dense", "compact"], Selector(kind=[STRING_KIND])] = Field(
        default="dense",
        description="How masks are held in memory inside the workflow: dense (one image-sized boolean array per "
        "detection) or compact (supervision's CompactMask: run-length crops of the boxes, a few MB instead of GBs "
        "for hundreds of detections on large images; core blocks read it like dense masks).",
        examples=["dense", "compact", "$inputs.mask_storage"],
    )

    @classmethod
    def get_parameters_accepting_batches(cls) -> List[str]:
        return ["images"]

    @classmethod
    def describe_outputs(cls) -> List[OutputDefinition]:
        return [
            OutputDefinition(name=INFERENCE_ID_KEY, kind=[INFERENCE_ID_KIND]),
            # RLE first: the serialiser tries the kinds in order, and the RLE one applies only to detections that
            # carry `rle_mask` (mask_format "rle"); the others fall through to polygons (as core blocks do). A step
            # with a literal mask_format "dense" lists polygons first (get_actual_outputs).
            OutputDefinition(
                name="predictions",
                kind=[RLE_INSTANCE_SEGMENTATION_PREDICTION_KIND, INSTANCE_SEGMENTATION_PREDICTION_KIND],
            ),
            OutputDefinition(name="model_id", kind=[ROBOFLOW_MODEL_ID_KIND]),
        ]

    def get_actual_outputs(self) -> List[OutputDefinition]:
        """The outputs of this step: as :meth:`describe_outputs`, with the polygon kind first for ``mask_format``
        ``dense``.

        The serialiser tries the kinds in order. The RLE serialiser raises on detections without ``rle_mask``; the
        exception it leaves behind holds, through its traceback, every frame of the workflow run (images, dense masks)
        in a reference cycle that only Python's cyclic garbage collector frees: under load, hundreds of MiB waiting
        for a full collection (docs/reliability.md, "Memory"). With ``mask_format`` from a selector the value is
        known only at run time, so RLE stays first.
        """
        outputs = self.describe_outputs()
        if self.mask_format != "dense":
            return outputs
        return [
            OutputDefinition(name=output.name, kind=[*output.kind[::-1]]) if output.name == "predictions" else output
            for output in outputs
        ]

    @classmethod
    def get_execution_engine_compatibility(cls) -> Optional[str]:
        # Engine 1.7.0 is that of inference-core 1.0.0, the oldest release tested (README "Compatibility").
        return ">=1.7.0,<2.0.0"


def encode_rle_masks(masks: np.ndarray | CompactMask | None) -> np.ndarray:
    """COCO RLE (``{"size": [H, W], "counts": str}``, column-major as pycocotools) of each ``(H, W)`` mask.

    Returns:
        ``(N,)`` object array of dicts, as core blocks store ``rle_mask`` in ``sv.Detections.data``.
    """
    result = np.empty(0 if masks is None else len(masks), dtype=object)
    result[:] = [encode_coco_rle(mask) for mask in masks] if masks is not None else []
    return result


def attach_workflow_metadata(detections: sv.Detections, image: WorkflowImageData, inference_id: str) -> sv.Detections:
    """Adds the ids, prediction type and parent coordinates that Workflows core blocks expect."""
    count = len(detections)
    height, width = image.numpy_image.shape[:2]
    detections[DETECTION_ID_KEY] = np.array([str(uuid4()) for _ in range(count)], dtype=str)
    detections[PARENT_ID_KEY] = np.array([image.parent_metadata.parent_id] * count, dtype=str)
    detections[IMAGE_DIMENSIONS_KEY] = np.array([[height, width]] * count, dtype=int).reshape(count, 2)
    detections[INFERENCE_ID_KEY] = np.array([inference_id] * count, dtype=str)
    detections[PREDICTION_TYPE_KEY] = np.array([PREDICTION_TYPE] * count, dtype=str)
    if count == 0:
        detections.metadata[IMAGE_DIMENSIONS_KEY] = [height, width]
    return attach_parents_coordinates_to_sv_detections(detections=detections, image=image)


class YOLOv5InstanceSegmentationBlockV1(WorkflowBlock):
    @classmethod
    def get_manifest(cls) -> Type[WorkflowBlockManifest]:
        return BlockManifest

    def run(
        self,
        images: Batch[WorkflowImageData],
        model: str,
        api_key: Optional[str],
        confidence: float,
        iou_threshold: float,
        class_filter: Optional[List[str]],
        max_detections: int,
        class_agnostic_nms: bool,
        mask_decode_mode: Literal["accurate", "tradeoff", "fast"],
        tradeoff_factor: float,
        backend: Literal["auto", "onnx", "trt"],
        mask_format: Literal["dense", "rle"] = "dense",
        mask_storage: Literal["dense", "compact"] = "dense",
    ) -> BlockResult:
        with caller_errors_as_served_types():
            check_choice("mask_format", mask_format, MASK_FORMATS, MASK_FORMAT_HINT)
            check_choice("mask_storage", mask_storage, MASK_STORAGES, MASK_STORAGE_HINT)
            check_choice("backend", backend, BACKENDS)
            parameters = InferenceParameters(
                confidence=confidence,
                iou_threshold=iou_threshold,
                class_filter=tuple(class_filter) if class_filter else None,
                max_detections=max_detections,
                class_agnostic_nms=class_agnostic_nms,
                mask_decode_mode=mask_decode_mode,
                tradeoff_factor=tradeoff_factor,
                compact_masks=mask_storage == "compact",
            )
            loaded = get_model(model, backend, api_key)
            predictions = loaded.infer([image.numpy_image for image in images], parameters)
        results = []
        for image, detections in zip(images, predictions, strict=True):
            inference_id = str(uuid4())
            detections = attach_workflow_metadata(detections, image, inference_id)
            if mask_format == "rle":
                detections[RLE_MASK_KEY_IN_SV_DETECTIONS] = encode_rle_masks(detections.mask)
            results.append(
                {
                    INFERENCE_ID_KEY: inference_id,
                    "predictions": detections,
                    "model_id": loaded.model_id,
                }
            )
        return results
