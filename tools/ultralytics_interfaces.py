"""Record the interfaces (inputs, outputs, metadata_props) of Ultralytics ONNX exports for the tests (issue 20).

Runs in the package venv (it reads the files with the package's own ``read_onnx_header``)::

    PYTHONPATH=. .venv/bin/python tools/ultralytics_interfaces.py \
        models/shapes-yolov8n-seg-*.onnx models/shapes-yolo[0-9]*-seg-*.onnx \
        /work/ul-run/interfaces/*.onnx --out tests/data/ultralytics_interfaces.json

The untrained exports (P6 seg, detect, classify, pose, OBB) come from
``training/train_ultralytics.py --stages interfaces`` and are not committed: the tests rebuild synthetic graphs with
exactly these interfaces. Shapes keep symbolic dimensions as strings (``null`` where unknown).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workflows_yolov5_seg.onnx_file import read_onnx_header


def describe(path: Path) -> dict:
    header = read_onnx_header(path)

    def specs(tensors: tuple) -> list[dict]:
        return [
            {"name": t.name, "element_type": t.element_type, "type": t.type_name, "shape": list(t.shape)}
            for t in tensors
        ]

    return {"inputs": specs(header.inputs), "outputs": specs(header.outputs), "metadata": dict(header.metadata)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = {
        "what": "interfaces of Ultralytics 8.4 ONNX exports (issue 20); committed ones under models/, the rest "
        "untrained exports from training/train_ultralytics.py --stages interfaces (not committed)",
        "files": {p.name: {"committed": p.parent.name == "models", **describe(p)} for p in sorted(args.files)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{args.out}: {len(data['files'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
