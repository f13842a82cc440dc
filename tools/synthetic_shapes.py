"""Deterministic synthetic "shapes" instance-segmentation dataset.

Scenes contain filled shapes of five classes (``circle``, ``rectangle``,
``triangle``, ``star``, ``ring``; a ring has a hole showing the background)
with random colours, sizes and rotations, partially overlapping each other, on
textured, noisy backgrounds (colour gradients, low-frequency noise, soft blobs,
random lines, pixel noise).

Later shapes occlude earlier ones. The mask of every instance is the set of its
*visible* pixels, so labels always match what can be seen; instances left with
a tiny visible area are dropped.

The module depends only on ``numpy``, ``cv2`` and this package and is used both to build the
training set of the bundled demo model and to generate small fixtures in tests.

Dataset layout written by :func:`write_dataset`::

    OUT/
      data.yaml                      # YOLOv5 dataset file (path/train/val/test/names)
      class_names.txt                # one class name per line, index = class id
      images/{train,val,test}/*.jpg  # (or .png)
      labels/{train,val,test}/*.txt  # YOLO-seg: "cls x1 y1 x2 y2 ..." normalised
      annotations/instances_{split}.json  # COCO, masks as uncompressed RLE

COCO ``category_id`` is ``class_id + 1`` (COCO convention: ids start at 1).

Command line::

    python -m tools.synthetic_shapes --out DIR --seed 0 \\
        --train 800 --val 150 --test 150 --size 320

Every image is generated from its own seed derived from ``(seed, split, index)``
(see :func:`scene_seed`), so the output is identical for the same arguments
and any single image can be regenerated on its own.
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from workflows_yolov5_seg.masks import column_major_rle

__all__ = [
    "CLASS_NAMES",
    "Instance",
    "coco_rle_to_mask",
    "generate_scene",
    "mask_to_coco_rle",
    "mask_to_polygon",
    "polygon_to_mask",
    "scene_seed",
    "write_dataset",
    "main",
]

CLASS_NAMES: tuple[str, ...] = ("circle", "rectangle", "triangle", "star", "ring")
"""Class names; the index in this tuple is the class id."""

Instance = tuple[int, npt.NDArray[np.bool_]]
"""``(class_id, mask)`` where ``mask`` is a boolean array of shape ``(H, W)``."""

# Geometry / sampling parameters (fractions of the shorter image side).
_MIN_RADIUS_FRAC = 0.055
_MAX_RADIUS_FRAC = 0.17
_MIN_KEEP_FRAC_AFTER_OCCLUSION = 0.5  # an earlier shape keeps >= 50 % of its area
_MIN_IN_IMAGE_FRAC = 0.6  # a new shape has >= 60 % of its area inside the image
_MIN_VISIBLE_PIXELS = 40  # instances with fewer visible pixels are dropped
_MIN_COMPONENT_FRAC = 0.02  # components smaller than this fraction are removed
_MIN_COLOR_DISTANCE = 70.0  # min. distance of a shape colour to what lies below it


def scene_seed(seed: int, split: str, index: int) -> int:
    """Derive the seed of one image from the dataset seed, split and index.

    Args:
        seed: Dataset seed.
        split: Split name (any string, e.g. ``"train"``); hashed with CRC32 so
            the result does not depend on Python's hash randomisation.
        index: Index of the image within the split.

    Returns:
        A 63-bit non-negative integer seed for :func:`generate_scene`.
    """
    seq = np.random.SeedSequence([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


# --------------------------------------------------------------------------- #
# Background
# --------------------------------------------------------------------------- #
def _random_color(rng: np.random.Generator, min_sat: float = 0.35, min_val: float = 0.3) -> np.ndarray:
    """Random BGR colour (float64, shape ``(3,)``, range 0-255) from HSV space."""
    hsv = np.array([[[rng.uniform(0.0, 180.0), rng.uniform(min_sat, 1.0) * 255.0, rng.uniform(min_val, 1.0) * 255.0]]])
    bgr = cv2.cvtColor(np.round(hsv).clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    return bgr.reshape(3).astype(np.float64)


def _background(rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.float64]:
    """Textured background, float64 BGR of shape ``(H, W, 3)`` in 0-255."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    # Linear gradient between two colours at a random angle.
    c1 = _random_color(rng, min_sat=0.0, min_val=0.15)
    c2 = _random_color(rng, min_sat=0.0, min_val=0.15)
    angle = rng.uniform(0, 2 * math.pi)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    img = c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]
    # Low-frequency colour noise.
    cells = int(rng.integers(3, 12))
    small = rng.normal(0.0, rng.uniform(8, 30), size=(cells, cells, 3)).astype(np.float32)
    img += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    # Soft blobs.
    overlay = np.zeros((height, width, 3), dtype=np.float32)
    alpha = np.zeros((height, width), dtype=np.float32)
    for _ in range(int(rng.integers(1, 7))):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.uniform(0.05, 0.35) * width), int(rng.uniform(0.05, 0.35) * height))
        a = np.zeros((height, width), dtype=np.float32)
        cv2.ellipse(a, center, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        k = int(max(axes) * 0.8) | 1
        a = cv2.GaussianBlur(a, (k, k), 0) * rng.uniform(0.2, 0.55)
        col = _random_color(rng, min_sat=0.0, min_val=0.1).astype(np.float32)
        overlay = overlay * (1 - a[..., None]) + col[None, None, :] * a[..., None]
        alpha = alpha + a * (1 - alpha)
    img = img * (1 - alpha[..., None]) + overlay.astype(np.float64)
    # Random thin lines (clutter).
    lines = img.copy()
    for _ in range(int(rng.integers(2, 14))):
        p1 = (int(rng.integers(-width // 4, width + width // 4)), int(rng.integers(-height // 4, height + height // 4)))
        p2 = (int(rng.integers(-width // 4, width + width // 4)), int(rng.integers(-height // 4, height + height // 4)))
        col = tuple(float(c) for c in _random_color(rng, min_sat=0.0, min_val=0.1))
        cv2.line(lines, p1, p2, col, int(rng.integers(1, 4)), cv2.LINE_AA)
    line_alpha = rng.uniform(0.3, 0.8)
    img = img * (1 - line_alpha) + lines * line_alpha
    return img


# --------------------------------------------------------------------------- #
# Shapes
# --------------------------------------------------------------------------- #
def _regular_polygon(cx: float, cy: float, radii: Sequence[float], rotation: float) -> np.ndarray:
    """Vertices (shape ``(N, 2)``, float64, x/y) of a polygon with given vertex radii."""
    n = len(radii)
    ang = rotation + np.arange(n) * 2 * math.pi / n
    r = np.asarray(radii, dtype=np.float64)
    return np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)


def _render_shape(
    rng: np.random.Generator, class_id: int, height: int, width: int, cx: float, cy: float, radius: float
) -> tuple[npt.NDArray[np.bool_], float]:
    """Rasterise one shape.

    Returns:
        ``(mask, full_area)``: boolean mask of shape ``(H, W)`` (clipped to the
        image) and the area in pixels the shape would have without clipping.
    """
    canvas = np.zeros((height, width), dtype=np.uint8)
    shift = 4  # sub-pixel precision for cv2 drawing
    scale = 1 << shift
    rotation = rng.uniform(0, 2 * math.pi)
    name = CLASS_NAMES[class_id]
    if name == "circle":
        cv2.circle(canvas, (round(cx * scale), round(cy * scale)), round(radius * scale), 1, -1, cv2.LINE_8, shift)
        full_area = math.pi * radius**2
    elif name == "ring":
        inner = radius * rng.uniform(0.42, 0.68)
        cv2.circle(canvas, (round(cx * scale), round(cy * scale)), round(radius * scale), 1, -1, cv2.LINE_8, shift)
        cv2.circle(canvas, (round(cx * scale), round(cy * scale)), round(inner * scale), 0, -1, cv2.LINE_8, shift)
        full_area = math.pi * (radius**2 - inner**2)
    else:
        if name == "rectangle":
            aspect = rng.uniform(0.35, 1.0)
            half_w = radius
            half_h = radius * aspect
            corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
            rot = np.array([[math.cos(rotation), -math.sin(rotation)], [math.sin(rotation), math.cos(rotation)]])
            pts = corners @ rot.T + np.array([cx, cy])
        elif name == "triangle":
            # Jittered equilateral triangle (no degenerate slivers).
            ang = rotation + np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
            r = radius * rng.uniform(0.85, 1.1, 3)
            pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
        elif name == "star":
            n_points = 5
            inner_ratio = rng.uniform(0.38, 0.52)
            radii = [radius if i % 2 == 0 else radius * inner_ratio for i in range(2 * n_points)]
            pts = _regular_polygon(cx, cy, radii, rotation)
        else:  # pragma: no cover - guarded by CLASS_NAMES
            raise ValueError(f"unknown class id {class_id}")
        cv2.fillPoly(canvas, [np.round(pts * scale).astype(np.int32)], 1, cv2.LINE_8, shift)
        full_area = float(abs(cv2.contourArea(pts.astype(np.float32))))
    return canvas.astype(bool), full_area


def _paint_shape(rng: np.random.Generator, img: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> None:
    """Paint a filled, lightly shaded and textured shape into ``img`` in place."""
    below = img[mask].mean(axis=0)
    color = _random_color(rng)
    for _ in range(12):
        if np.linalg.norm(color - below) >= _MIN_COLOR_DISTANCE:
            break
        color = _random_color(rng)
    ys, xs = np.nonzero(mask)
    # Gentle linear shading across the shape.
    angle = rng.uniform(0, 2 * math.pi)
    t = xs * math.cos(angle) + ys * math.sin(angle)
    t = (t - t.mean()) / max(float(np.ptp(t)), 1.0)
    shade = 1.0 + rng.uniform(0.0, 0.35) * t
    noise = rng.normal(0.0, rng.uniform(0, 8), size=(len(ys), 3))
    img[ys, xs] = color[None, :] * shade[:, None] + noise


def _clean_mask(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Remove tiny connected components (specks left by occlusion)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep_min = max(6.0, _MIN_COMPONENT_FRAC * float(areas.sum()))
    keep = np.concatenate([[False], areas >= keep_min])
    return keep[labels]


def generate_scene(
    seed: int,
    size: tuple[int, int] = (640, 480),
    num_shapes: int | tuple[int, int] | None = None,
) -> tuple[npt.NDArray[np.uint8], list[Instance]]:
    """Generate one scene with its instance masks.

    Args:
        seed: Seed of this scene (e.g. from :func:`scene_seed`).
        size: Image size as ``(width, height)`` in pixels (the OpenCV/PIL
            convention; the returned arrays have shape ``(height, width, ...)``).
        num_shapes: Number of shapes to try to place, or an inclusive
            ``(min, max)`` range to draw it from. Defaults to a range scaled
            with the image area (3-10 shapes for a 480x480 image). Shapes
            that cannot be placed without excessive occlusion, or that end up
            with a tiny visible area, are left out, so fewer instances may be
            returned.

    Returns:
        ``(image, instances)`` where ``image`` is a BGR ``uint8`` array of shape
        ``(H, W, 3)`` and ``instances`` is a list of ``(class_id, mask)``
        tuples in drawing order, ``mask`` being a boolean array of shape
        ``(H, W)`` with the visible pixels of that instance. Masks do not
        overlap each other.
    """
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise ValueError(f"image size too small: {size}")
    rng = np.random.default_rng(int(seed))
    img = _background(rng, height, width)

    if num_shapes is None:
        scale = max(1.0, (width * height) / (480 * 480))
        lo, hi = 3, max(3, round(10 * min(scale, 1.6)))
        n_target = int(rng.integers(lo, hi + 1))
    elif isinstance(num_shapes, tuple):
        n_target = int(rng.integers(num_shapes[0], num_shapes[1] + 1))
    else:
        n_target = int(num_shapes)

    short = min(width, height)
    masks: list[npt.NDArray[np.bool_]] = []
    classes: list[int] = []
    areas: list[float] = []
    for _ in range(n_target):
        class_id = int(rng.integers(0, len(CLASS_NAMES)))
        for _attempt in range(25):
            radius = short * rng.uniform(_MIN_RADIUS_FRAC, _MAX_RADIUS_FRAC)
            cx = rng.uniform(-0.2 * radius, width + 0.2 * radius)
            cy = rng.uniform(-0.2 * radius, height + 0.2 * radius)
            mask, full_area = _render_shape(rng, class_id, height, width, cx, cy, radius)
            area = int(mask.sum())
            if area < max(_MIN_VISIBLE_PIXELS, _MIN_IN_IMAGE_FRAC * full_area):
                continue
            # Would this shape hide too much of an earlier one?
            if any((m & ~mask).sum() < _MIN_KEEP_FRAC_AFTER_OCCLUSION * a for m, a in zip(masks, areas, strict=True)):
                continue
            break
        else:
            continue
        for i, m in enumerate(masks):
            masks[i] = m & ~mask
        _paint_shape(rng, img, mask)
        masks.append(mask)
        classes.append(class_id)
        areas.append(float(area))

    # Pixel noise and an occasional slight blur over the whole scene.
    img += rng.normal(0.0, rng.uniform(2.0, 9.0), size=img.shape)
    out = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (3, 3), 0)

    instances: list[Instance] = []
    for class_id, m in zip(classes, masks, strict=True):
        m = _clean_mask(m)
        if int(m.sum()) >= _MIN_VISIBLE_PIXELS:
            instances.append((class_id, m))
    return out, instances


# --------------------------------------------------------------------------- #
# Label encodings
# --------------------------------------------------------------------------- #
def _bridge_contours(contours: list[np.ndarray]) -> np.ndarray:
    """Join several closed contours into one polygon with zero-width bridges.

    Every contour after the first is attached to the first one at the pair of
    vertices that are closest to each other: the walk goes along the first
    contour, jumps to the attached contour, goes once around it, and comes back
    along the same bridge. Filling the result with the even-odd or non-zero rule
    (e.g. ``cv2.fillPoly``) reproduces holes (inner contours have the opposite
    orientation) and disjoint parts.

    Args:
        contours: List of arrays of shape ``(Ni, 2)``; the first one is the main
            (largest outer) contour.

    Returns:
        Array of shape ``(M, 2)`` with the vertices of the bridged polygon.
    """
    main = contours[0]
    attachments: dict[int, list[np.ndarray]] = {}
    for other in contours[1:]:
        d = ((main[:, None, :].astype(np.float64) - other[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        loop = np.concatenate([np.roll(other, -int(j), axis=0), other[int(j) : int(j) + 1]], axis=0)
        attachments.setdefault(int(i), []).append(loop)
    parts: list[np.ndarray] = []
    for i in range(len(main)):
        parts.append(main[i : i + 1])
        for loop in attachments.get(i, []):
            parts.append(loop)
            parts.append(main[i : i + 1])
    return np.concatenate(parts, axis=0)


def mask_to_polygon(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64] | None:
    """Convert a mask into a single polygon (holes and parts bridged).

    Args:
        mask: Boolean array of shape ``(H, W)``.

    Returns:
        Array of shape ``(N, 2)`` with ``x, y`` pixel coordinates (vertices on
        the centres of boundary pixels), or ``None`` if the mask is empty.
        The outer contour of the largest part comes first; holes and other
        parts are connected to it by zero-width bridges (see
        ``_bridge_contours``), so e.g. a ring is outer contour + bridge + inner
        contour.
    """
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    items = [(c.reshape(-1, 2), int(h[3]) >= 0) for c, h in zip(contours, hierarchy[0], strict=True)]
    outers = sorted((c for c, is_hole in items if not is_hole), key=lambda c: -abs(cv2.contourArea(c)))
    holes = [c for c, is_hole in items if is_hole and len(c) >= 3]
    if not outers:
        return None
    ordered = [outers[0], *holes, *outers[1:]]
    return _bridge_contours(ordered).astype(np.float64)


def polygon_to_mask(polygon: npt.NDArray[np.floating], height: int, width: int) -> npt.NDArray[np.bool_]:
    """Rasterise a polygon as produced by :func:`mask_to_polygon`.

    Args:
        polygon: Array of shape ``(N, 2)`` with ``x, y`` pixel coordinates.
        height: Output height.
        width: Output width.

    Returns:
        Boolean array of shape ``(H, W)``.
    """
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon).astype(np.int32)], 1)
    return canvas.astype(bool)


def mask_to_coco_rle(mask: npt.NDArray[np.bool_]) -> dict[str, list[int]]:
    """Encode a mask as COCO *uncompressed* RLE.

    Args:
        mask: Boolean array of shape ``(H, W)``.

    Returns:
        ``{"size": [H, W], "counts": [...]}``; counts are run lengths of the
        column-major (Fortran order) flattened mask, starting with a run of
        zeros (which may be 0).
    """
    h, w = mask.shape
    if mask.size == 0:
        return {"size": [int(h), int(w)], "counts": []}
    counts = column_major_rle(np.asarray(mask, dtype=bool))
    return {"size": [int(h), int(w)], "counts": [int(c) for c in counts]}


def coco_rle_to_mask(rle: dict) -> npt.NDArray[np.bool_]:
    """Decode COCO uncompressed RLE (inverse of :func:`mask_to_coco_rle`).

    Args:
        rle: ``{"size": [H, W], "counts": [...]}``.

    Returns:
        Boolean array of shape ``(H, W)``.
    """
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = (np.arange(len(counts)) % 2).astype(bool)
    flat = np.repeat(values, counts)
    if flat.size != h * w:
        raise ValueError(f"RLE counts sum to {flat.size}, expected {h * w}")
    return flat.reshape((w, h)).T.copy()


def _yolo_line(class_id: int, polygon: np.ndarray, height: int, width: int) -> str:
    xy = polygon / np.array([width, height], dtype=np.float64)
    xy = np.clip(xy, 0.0, 1.0)
    return f"{class_id} " + " ".join(f"{v:.6f}" for v in xy.reshape(-1))


# --------------------------------------------------------------------------- #
# Dataset writer
# --------------------------------------------------------------------------- #
def _image_size(rng: np.random.Generator, min_size: int, max_size: int) -> tuple[int, int]:
    return int(rng.integers(min_size, max_size + 1)), int(rng.integers(min_size, max_size + 1))


def write_dataset(
    out_dir: str | Path,
    seed: int = 0,
    train: int = 800,
    val: int = 150,
    test: int = 150,
    size: int = 320,
    max_size: int | None = None,
    image_format: str = "jpg",
    jpeg_quality: int = 92,
) -> Path:
    """Generate a dataset in YOLO-seg layout plus COCO annotations.

    Args:
        out_dir: Output directory (created if needed).
        seed: Dataset seed; image ``i`` of split ``s`` uses
            ``scene_seed(seed, s, i)``.
        train: Number of training images.
        val: Number of validation images.
        test: Number of test images.
        size: Minimum image side; width and height are drawn independently
            and uniformly from ``[size, max_size]``.
        max_size: Maximum image side (default ``2 * size``). Use
            ``max_size=size`` for square images.
        image_format: ``"jpg"`` or ``"png"``.
        jpeg_quality: JPEG quality when ``image_format="jpg"``.

    Returns:
        Path to the written ``data.yaml``.
    """
    out = Path(out_dir).resolve()
    max_size = 2 * size if max_size is None else max_size
    if max_size < size:
        raise ValueError("max_size must be >= size")
    if image_format not in ("jpg", "png"):
        raise ValueError("image_format must be 'jpg' or 'png'")
    counts = {"train": train, "val": val, "test": test}
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)]
    for split, n_images in counts.items():
        img_dir = out / "images" / split
        lbl_dir = out / "labels" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        images: list[dict] = []
        annotations: list[dict] = []
        for index in range(n_images):
            s = scene_seed(seed, split, index)
            size_rng = np.random.default_rng(np.random.SeedSequence([s, 1]))
            w, h = _image_size(size_rng, size, max_size)
            image, instances = generate_scene(s, (w, h))
            stem = f"{split}_{index:05d}"
            file_name = f"{stem}.{image_format}"
            params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpg" else []
            if not cv2.imwrite(str(img_dir / file_name), image, params):
                raise OSError(f"could not write {img_dir / file_name}")
            image_id = index + 1
            images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
            lines = []
            for class_id, mask in instances:
                polygon = mask_to_polygon(mask)
                if polygon is None or len(polygon) < 3:
                    continue
                lines.append(_yolo_line(class_id, polygon, h, w))
                ys, xs = np.nonzero(mask)
                x0, y0 = int(xs.min()), int(ys.min())
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": class_id + 1,
                        "segmentation": mask_to_coco_rle(mask),
                        "area": int(mask.sum()),
                        "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                        "iscrowd": 0,
                    }
                )
            (lbl_dir / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
        coco = {
            "info": {"description": f"synthetic shapes, seed {seed}, split {split}"},
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco, separators=(",", ":")))

    (out / "class_names.txt").write_text("".join(n + "\n" for n in CLASS_NAMES))
    yaml_lines = [
        f"path: {json.dumps(str(out))}",
        "train: images/train",
        "val: images/val",
        "test: images/test",
        f"nc: {len(CLASS_NAMES)}",
        "names:",
        *(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES)),
    ]
    data_yaml = out / "data.yaml"
    data_yaml.write_text("\n".join(yaml_lines) + "\n")
    return data_yaml


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Generate the synthetic shapes segmentation dataset.")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=800, help="number of training images")
    parser.add_argument("--val", type=int, default=150, help="number of validation images")
    parser.add_argument("--test", type=int, default=150, help="number of test images")
    parser.add_argument("--size", type=int, default=320, help="minimum image side")
    parser.add_argument("--max-size", type=int, default=None, help="maximum image side (default 2*size)")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg")
    args = parser.parse_args(argv)
    data_yaml = write_dataset(
        args.out,
        seed=args.seed,
        train=args.train,
        val=args.val,
        test=args.test,
        size=args.size,
        max_size=args.max_size,
        image_format=args.format,
    )
    print(data_yaml)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
