"""The YOLO segmentation pipeline: ``from_pretrained`` -> ``pre_process`` -> ``forward`` -> ``post_process``.

One pipeline for YOLOv5, YOLOv8, v9, 11, 12 and 26-seg exports; what differs between them is the layout of
``output0`` (:mod:`workflows_yolov5_seg.layouts`).

Usable from plain Python, without the Workflows engine::

    model = YOLOSegModel.from_pretrained("model.onnx")
    detections = model(cv2.imread("image.jpg"))[0]   # sv.Detections with masks
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import supervision as sv

from workflows_yolov5_seg import settings
from workflows_yolov5_seg.backends import Backend, create_backend
from workflows_yolov5_seg.detections import build_detections
from workflows_yolov5_seg.errors import (
    InvalidModelOutputError,
    InvalidParameterError,
    check_choice,
)
from workflows_yolov5_seg.layouts import YOLOV5, OutputLayout, Selection
from workflows_yolov5_seg.masks import (
    MASK_DECODE_MODES,
    MaskDecodeMode,
    decode_masks,
    dense_mask_bytes,
    masks_with_pixels,
)
from workflows_yolov5_seg.model_package import ModelPackage
from workflows_yolov5_seg.network import NUM_MASK_COEFFICIENTS
from workflows_yolov5_seg.preprocessing import ImageGeometry, preprocess_images

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceParameters:
    """Post-processing parameters; defaults equal those of Roboflow's instance-segmentation block.

    Attributes:
        confidence: minimum score, in [0, 1]: ``objectness x class probability`` for YOLOv5, the class probability
            for YOLOv8 and later, the graph's score for end-to-end exports (see :mod:`workflows_yolov5_seg.layouts`).
        iou_threshold: IoU above which NMS drops the lower-scoring box, in [0, 1] (no effect on end-to-end exports,
            which select their detections in the graph).
        class_filter: class names to keep (applied before NMS), or ``None`` for all.
        max_detections: at most this many detections per image, >= 1.
        class_agnostic_nms: suppress overlapping boxes across classes (no effect on end-to-end exports).
        mask_decode_mode: ``accurate``, ``fast`` or ``tradeoff``.
        tradeoff_factor: in [0, 1]; ``tradeoff`` decodes on a grid this far from the prototype grid to the image.
        multi_label: every class above the threshold makes its own detection (Ultralytics' ``val`` setting for
            mAP); by default only the best class of each anchor does (``predict``). End-to-end exports give one
            class per row.
        compact_masks: return masks as ``supervision`` ``CompactMask`` (run-length crops of the boxes, a few MB even
            for hundreds of detections on 12 MP images) instead of dense ``(N, H, W)`` arrays.
    """

    confidence: float = 0.4
    iou_threshold: float = 0.3
    class_filter: tuple[str, ...] | None = None
    max_detections: int = 300
    class_agnostic_nms: bool = False
    mask_decode_mode: MaskDecodeMode = "accurate"
    tradeoff_factor: float = 0.0
    multi_label: bool = False
    compact_masks: bool = False

    def __post_init__(self) -> None:
        for name in ("confidence", "iou_threshold", "tradeoff_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise InvalidParameterError(f"{name} must be a number in [0, 1], got {value!r}.")
        if isinstance(self.max_detections, bool) or not isinstance(self.max_detections, int) or self.max_detections < 1:
            raise InvalidParameterError(f"max_detections must be an integer >= 1, got {self.max_detections!r}.")
        check_choice("mask_decode_mode", self.mask_decode_mode, MASK_DECODE_MODES)
        if self.class_filter is not None:
            object.__setattr__(self, "class_filter", tuple(str(name) for name in self.class_filter))


@dataclass(frozen=True)
class PreprocessedBatch:
    """Output of :meth:`YOLOSegModel.pre_process`.

    Attributes:
        tensor: ``(B, 3, H, W)`` network input.
        geometries: one per image, to map predictions back.
    """

    tensor: np.ndarray
    geometries: list[ImageGeometry]


class YOLOSegModel:
    """A loaded YOLO instance segmentation model (any layout of :mod:`workflows_yolov5_seg.layouts`); thread-safe to
    call."""

    def __init__(
        self,
        package: ModelPackage,
        backend: Backend,
        max_image_pixels: int | None = None,
        max_mask_bytes: int | None = None,
    ) -> None:
        self.package = package
        self.backend = backend
        self.max_image_pixels = max_image_pixels or settings.MAX_IMAGE_PIXELS.get()
        self.max_mask_bytes = max_mask_bytes or settings.MAX_MASK_BYTES.get()
        self.class_names = package.class_names
        # an engine-only package has no ONNX to read: its engine's shapes tell the layout
        self.layout: OutputLayout = (
            package.signature.layout if package.signature is not None else backend.info.layout or YOLOV5
        )

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str],
        backend: str = "auto",
        device: str | None = None,
        api_key: str | None = None,
        **backend_options: object,
    ) -> YOLOSegModel:
        """Loads a model from a ``.onnx`` file, a package folder or a Roboflow ``project/version`` id.

        Args:
            model: where the weights come from (see :func:`workflows_yolov5_seg.model_source.resolve_model`).
            backend: ``auto``, ``onnx`` or ``trt``.
            device: ``cpu``, ``cuda[:N]``; ``None`` picks the best available.
            api_key: Roboflow API key, for model ids.
            **backend_options: passed to the backend (e.g. ``intra_op_threads``, ``fallback_policy``).
        """
        # Here, not at module level: the model sources bring the Roboflow client and key authorisation, which the
        # pipeline on an already loaded package does not need.
        from workflows_yolov5_seg.model_source import resolve_model

        package = resolve_model(str(model), api_key=api_key)
        return cls(package, create_backend(package, backend=backend, device=device, **backend_options))

    @property
    def model_id(self) -> str:
        return self.package.model_id

    def pre_process(self, images: np.ndarray | Sequence[np.ndarray]) -> PreprocessedBatch:
        """Letterboxes / resizes BGR images (see :mod:`workflows_yolov5_seg.preprocessing`) into one batch."""
        if isinstance(images, np.ndarray):
            images = [images]
        tensor, geometries = preprocess_images(
            images,
            self.package.preprocessing,
            self.backend.info.input_hw,
            dtype=self.backend.info.input_dtype,
            max_pixels=self.max_image_pixels,
            stride=self.package.stride if self.backend.info.dynamic_hw else None,
        )
        return PreprocessedBatch(tensor, geometries)

    def forward(self, tensor: np.ndarray) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Runs the network on a batch of any size, in chunks the network accepts.

        A static-batch network gets its last chunk zero-padded; the padding's outputs are dropped.

        Args:
            tensor: ``(B, 3, H, W)``.

        Returns:
            ``(instances, protos)``: ``output0`` in the model's layout (:attr:`layout`) and ``(B, 32, H / 4, W / 4)``.
        """
        info = self.backend.info
        instances, protos = [], []
        for start in range(0, len(tensor), info.max_batch_size):
            chunk = tensor[start : start + info.max_batch_size]
            size = len(chunk)
            if size < info.min_batch_size:
                padding = np.zeros((info.min_batch_size - size, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, padding])
            chunk_instances, chunk_protos = self.backend.infer(np.ascontiguousarray(chunk))
            self._check_outputs(chunk_instances, chunk_protos, len(chunk), chunk.shape[2:])
            instances.append(chunk_instances[:size])
            protos.append(chunk_protos[:size])
        if len(instances) == 1:
            return instances[0], protos[0]
        return np.concatenate(instances), np.concatenate(protos)

    def _check_outputs(self, instances: np.ndarray, protos: np.ndarray, batch: int, input_hw: tuple[int, ...]) -> None:
        net_h, net_w = input_hw
        problem = self.layout.check(instances, batch, len(self.class_names))
        if problem is not None:
            raise InvalidModelOutputError(
                f"'{self.model_id}' returned output0 of shape {instances.shape} for its {self.layout.title} layout; "
                f"{problem}. Check that the class names match the model."
            )
        if protos.shape != (batch, NUM_MASK_COEFFICIENTS, net_h // 4, net_w // 4):
            raise InvalidModelOutputError(
                f"'{self.model_id}' returned prototypes of shape {protos.shape}; expected "
                f"({batch}, 32, {net_h // 4}, {net_w // 4}). Is this a YOLO segmentation export?"
            )
        if not (np.isfinite(instances).all() and np.isfinite(protos).all()):
            raise InvalidModelOutputError(
                f"'{self.model_id}' returned NaN or infinite values; the weights are likely corrupted or were "
                "exported in a precision that overflows (re-export in fp32)."
            )

    def class_ids_for(self, class_filter: tuple[str, ...] | None) -> npt.NDArray[np.int64] | None:
        """Maps class names to ids; unknown names are reported with the known ones."""
        if class_filter is None:
            return None
        unknown = sorted(set(class_filter) - set(self.class_names))
        if unknown:
            logger.warning(
                "class_filter names %s that '%s' does not know; its classes are: %s",
                unknown,
                self.model_id,
                ", ".join(self.class_names),
            )
        return np.array([i for i, name in enumerate(self.class_names) if name in set(class_filter)], dtype=np.int64)

    def post_process(
        self,
        instances: npt.NDArray[np.float32],
        protos: npt.NDArray[np.float32],
        geometries: Sequence[ImageGeometry],
        parameters: InferenceParameters | None = None,
    ) -> list[sv.Detections]:
        """Scores, suppresses and decodes masks, per image.

        Args:
            instances: raw ``output0``, in the model's layout (:attr:`layout`).
            protos: ``(B, 32, mh, mw)`` raw ``output1``.
            geometries: one per image, from :meth:`pre_process`.
            parameters: thresholds and modes.

        Returns:
            One ``sv.Detections`` per image, boxes and ``(N, H0, W0)`` masks on the original image, by descending
            confidence. For Ultralytics' generations (not YOLOv5), detections whose mask has no pixel are dropped,
            as their ``predict`` does.
        """
        if not len(instances) == len(protos) == len(geometries):
            raise InvalidParameterError(
                f"post_process got {len(instances)} output0 rows, {len(protos)} output1 rows and {len(geometries)} "
                "geometries; pass the outputs of forward() and the geometries of pre_process() for the same images."
            )
        parameters = parameters or InferenceParameters()
        selection = Selection(
            confidence=parameters.confidence,
            iou_threshold=parameters.iou_threshold,
            allowed_class_ids=self.class_ids_for(parameters.class_filter),
            max_detections=parameters.max_detections,
            class_agnostic=parameters.class_agnostic_nms,
            multi_label=parameters.multi_label,
        )
        kept_per_image = [
            self.layout.detections(image_instances, len(self.class_names), selection) for image_instances in instances
        ]
        if not parameters.compact_masks:
            self._check_dense_mask_budget([len(kept) for kept in kept_per_image], geometries)
        results = []
        for kept, image_protos, geometry in zip(kept_per_image, protos, geometries, strict=True):
            boxes = geometry.network_to_image(kept.xyxy)
            masks = decode_masks(
                image_protos,
                kept.coefficients,
                boxes,
                geometry,
                mode=parameters.mask_decode_mode,
                tradeoff_factor=parameters.tradeoff_factor,
                compact=parameters.compact_masks,
            )
            scores, class_ids = kept.scores, kept.class_ids
            if self.layout.drops_empty_masks:
                keep = masks_with_pixels(masks, boxes)
                if not keep.all():
                    boxes, masks, scores, class_ids = boxes[keep], masks[keep], scores[keep], class_ids[keep]
            results.append(build_detections(boxes, masks, scores, class_ids, self.class_names))
        return results

    def _check_dense_mask_budget(self, counts: list[int], geometries: Sequence[ImageGeometry]) -> None:
        needed = sum(
            dense_mask_bytes(count, geometry.original_hw) for count, geometry in zip(counts, geometries, strict=True)
        )
        if needed > self.max_mask_bytes:
            raise InvalidParameterError(
                f"Dense masks for {sum(counts)} detections would take {needed / 2**20:.0f} MiB, over the limit of "
                f"{self.max_mask_bytes / 2**20:.0f} MiB ({settings.MAX_MASK_BYTES.name}). Use compact masks, lower "
                "max_detections or raise the limit."
            )

    def infer(
        self, images: np.ndarray | Sequence[np.ndarray], parameters: InferenceParameters | None = None
    ) -> list[sv.Detections]:
        """Runs the whole pipeline on one BGR image or a list of BGR images of any sizes."""
        batch = self.pre_process(images)
        instances, protos = self.forward(batch.tensor)
        return self.post_process(instances, protos, batch.geometries, parameters)

    def __call__(self, images: np.ndarray | Sequence[np.ndarray], **parameters: object) -> list[sv.Detections]:
        """Shorthand for :meth:`infer` with keyword parameters (see :class:`InferenceParameters`)."""
        return self.infer(images, InferenceParameters(**parameters))

    def close(self) -> None:
        self.backend.close()


# The name before the block ran the whole family; the same class.
YOLOv5SegModel = YOLOSegModel
