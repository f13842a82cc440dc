"""fp16 variant of an exported ONNX: weights and arithmetic in float16, inputs and outputs kept float32.

Runs anywhere with ``onnx`` and ``onnxconverter-common`` (``pip install onnx onnxconverter-common``)::

    python training/export_fp16.py workflows_yolov5_seg/assets/shapes-yolov5n-seg-320.onnx \
        --out models/shapes-yolov5n-seg-320-fp16.onnx

writes the fp16 variant (default: ``NAME-fp16.onnx`` beside the input). Because the graph's inputs and outputs
stay float32, the package treats the file like any other YOLOv5-seg export; the YOLOv5 metadata props (``names``,
``stride``) are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
from onnxconverter_common import float16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", type=Path, help="float32 ONNX export")
    parser.add_argument("--out", type=Path, default=None, help="default: NAME-fp16.onnx beside the input")
    args = parser.parse_args(argv)
    out = args.out or args.onnx.with_name(f"{args.onnx.stem}-fp16.onnx")
    model = onnx.load(args.onnx)
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.checker.check_model(converted)
    onnx.save(converted, out)
    print(f"{out}: {out.stat().st_size / 1e6:.2f} MB (from {args.onnx.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
