"""A short synthetic video of moving shapes, for the video example, its test and the video benchmark.

The frames are a camera pan over one wide scene of :func:`tools.synthetic_shapes.generate_scene`: frame ``i`` is
the ``width`` x ``height`` window starting ``i * step`` pixels from the left, so the shapes move right to left by
``step`` pixels a frame, enter and leave the picture, and each frame's ground truth is the scene's masks cropped to
that window. Everything is deterministic for the same arguments.

:func:`write_video` writes frames losslessly by default (FFV1 in an AVI container, which the OpenCV wheels decode
bit-exactly), so a consumer that decodes the file sees exactly the generated pixels.

Command line::

    python -m tools.synthetic_video --out shapes.avi --frames 48 --size 320x320
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from tools.synthetic_shapes import Instance, generate_scene

__all__ = ["LOSSLESS_FOURCC", "pan_video", "read_video", "write_video", "main"]

LOSSLESS_FOURCC = "FFV1"
"""FFmpeg's lossless codec; OpenCV's FFmpeg backend writes and reads it back bit-exactly (in ``.avi``)."""

MIN_VISIBLE_PIXELS = 40


def pan_video(
    seed: int = 0,
    size: tuple[int, int] = (320, 320),
    frames: int = 24,
    step: int = 8,
    num_shapes: int | tuple[int, int] | None = None,
) -> tuple[list[npt.NDArray[np.uint8]], list[list[Instance]]]:
    """``frames`` BGR frames of ``size`` (width, height) panning ``step`` pixels a frame over one generated scene,
    and for each frame its instances ``(class_id, mask)`` (the scene's visible masks cropped to the frame; those
    with fewer than 40 pixels in the frame are left out)."""
    width, height = int(size[0]), int(size[1])
    if frames < 1 or step < 0:
        raise ValueError(f"frames must be >= 1 and step >= 0, got {frames} and {step}")
    scene, instances = generate_scene(seed, (width + (frames - 1) * step, height), num_shapes)
    images: list[npt.NDArray[np.uint8]] = []
    truths: list[list[Instance]] = []
    for index in range(frames):
        left = index * step
        images.append(np.ascontiguousarray(scene[:, left : left + width]))
        cropped = [(class_id, np.ascontiguousarray(mask[:, left : left + width])) for class_id, mask in instances]
        truths.append([(c, m) for c, m in cropped if int(m.sum()) >= MIN_VISIBLE_PIXELS])
    return images, truths


def write_video(
    path: str | Path, frames: Iterable[npt.NDArray[np.uint8]], fps: float = 10.0, fourcc: str = LOSSLESS_FOURCC
) -> Path:
    """Writes BGR frames (all of one size) to ``path``; raises when OpenCV cannot open a writer for ``fourcc``."""
    path = Path(path)
    writer: cv2.VideoWriter | None = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
                if not writer.isOpened():
                    raise RuntimeError(f"OpenCV cannot write {fourcc!r} video to {path}")
            writer.write(frame)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError("no frames to write")
    return path


def read_video(path: str | Path) -> list[npt.NDArray[np.uint8]]:
    """Every frame of a video file, decoded by OpenCV (BGR)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise RuntimeError(f"OpenCV cannot open {path}")
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    return frames


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="video file to write (.avi for the lossless codec)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=_size, default=(320, 320), help="WIDTHxHEIGHT (default 320x320)")
    parser.add_argument("--step", type=int, default=8, help="pan in pixels per frame (default 8)")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fourcc", default=LOSSLESS_FOURCC, help="codec (default FFV1, lossless)")
    args = parser.parse_args(argv)
    frames, truths = pan_video(args.seed, args.size, args.frames, args.step)
    write_video(args.out, frames, args.fps, args.fourcc)
    print(f"{args.out}: {len(frames)} frames of {args.size[0]}x{args.size[1]}, {sum(map(len, truths))} instances")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
