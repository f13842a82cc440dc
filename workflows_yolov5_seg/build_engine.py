"""Pre-build and cache a TensorRT engine ahead of serving::

    python -m workflows_yolov5_seg.build_engine --model model.onnx --precision fp16 --batch 1,4,8

See :func:`workflows_yolov5_seg.backends.tensorrt.build_engine_command` and docs/gpu.md.
"""

from __future__ import annotations

import sys

from workflows_yolov5_seg.backends.tensorrt import build_engine_command


def main() -> int:
    return build_engine_command(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
