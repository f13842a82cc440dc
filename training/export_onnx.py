"""Export a trained YOLOv5-seg checkpoint to ONNX (static batch 1 + batch-only dynamic).

Usage (training venv)::

    python training/export_onnx.py --weights runs/train/weights/best.pt \\
        --imgsz 320 --out-dir workflows_yolov5_seg/assets --name shapes-yolov5n-seg-320

Writes ``NAME.onnx`` (input ``images [1, 3, S, S]``) and ``NAME-dynamic.onnx``
(input ``images [batch, 3, S, S]``: only the batch axis is dynamic; YOLOv5's own
``export.py --dynamic`` would make height and width dynamic too), plus
``class_names.txt``. The model is prepared exactly like YOLOv5 ``export.py``
does (``attempt_load(..., inplace=True, fuse=True)``, ``model.eval()``, every
``Detect``/``Segment`` head with ``inplace=False``, ``dynamic=False``,
``export=True``, two dry runs), so the outputs are

* ``output0 [B, N, 5 + nc + 32]``: decoded boxes ``xywh`` in input pixels,
  objectness, class scores (sigmoid applied), 32 mask coefficients;
* ``output1 [B, 32, S/4, S/4]``: mask prototypes.

Exported with the TorchScript-based ``torch.onnx.export`` (``dynamo=False``),
opset 17, ``do_constant_folding=True``, and the same metadata props as YOLOv5
``export.py``: ``stride`` and ``names`` (``str(int(max(model.stride)))`` and
``str(model.names)``). Both files are then checked with ``onnx.checker`` and
compared with each other and with PyTorch in ONNX Runtime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run_yolov5  # noqa: E402  (NMS shim, offline settings, torch.load setting)


def load_model(weights: Path, yolov5_dir: str | None = None):  # noqa: ANN201 - yolov5 type
    """Load a checkpoint and prepare it for export like YOLOv5 ``export.py``."""
    root = run_yolov5.find_yolov5_dir(yolov5_dir)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    run_yolov5.disable_hub_download()
    try:
        from yolov5.models.experimental import attempt_load
        from yolov5.models.yolo import Detect
    except ImportError:  # plain clone of ultralytics/yolov5
        from models.experimental import attempt_load
        from models.yolo import Detect

    model = attempt_load(str(weights), device="cpu", inplace=True, fuse=True)
    model.eval()
    for m in model.modules():
        if isinstance(m, Detect):
            m.inplace = False
            m.dynamic = False
            m.export = True
    return model


def export(model, imgsz: int, path: Path, dynamic_batch: bool, opset: int = 17) -> Path:  # noqa: ANN001
    """Export ``model`` to ``path`` with fixed H=W=imgsz; optionally dynamic batch."""
    import onnx
    import torch

    im = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad():
        for _ in range(2):
            model(im)  # dry runs (build grids)
    dynamic_axes = {"images": {0: "batch"}, "output0": {0: "batch"}, "output1": {0: "batch"}} if dynamic_batch else None
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        im,
        str(path),
        verbose=False,
        opset_version=opset,
        do_constant_folding=True,
        input_names=["images"],
        output_names=["output0", "output1"],
        dynamic_axes=dynamic_axes,
        dynamo=False,
    )
    model_onnx = onnx.load(str(path))
    # The tracer leaves the non-batch dims of output0 symbolic in the dynamic
    # export ("Concatoutput0_dim_1"); they are fixed for a fixed input size, so
    # declare them (and all other non-batch dims) from the PyTorch outputs.
    with torch.no_grad():
        ref = model(im)
    for out, tensor in zip(model_onnx.graph.output, ref, strict=True):
        dims = out.type.tensor_type.shape.dim
        for axis, size in enumerate(tensor.shape):
            if dynamic_batch and axis == 0:
                dims[axis].dim_param = "batch"
            else:
                dims[axis].dim_value = int(size)
    onnx.checker.check_model(model_onnx, full_check=True)
    metadata = {"stride": int(max(model.stride)), "names": model.names}
    for k, v in metadata.items():
        meta = model_onnx.metadata_props.add()
        meta.key, meta.value = k, str(v)
    onnx.save(model_onnx, str(path))
    return path


def verify(model, static_path: Path, dynamic_path: Path, imgsz: int) -> None:  # noqa: ANN001
    """Check shapes, metadata and numerical agreement (PyTorch vs. both ONNX files)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    x = rng.random((3, 3, imgsz, imgsz), dtype=np.float32)
    with torch.no_grad():
        ref0, ref1 = (t.numpy() for t in model(torch.from_numpy(x)))
    sess_s = ort.InferenceSession(str(static_path), providers=["CPUExecutionProvider"])
    sess_d = ort.InferenceSession(str(dynamic_path), providers=["CPUExecutionProvider"])
    for sess, path in ((sess_s, static_path), (sess_d, dynamic_path)):
        inp = sess.get_inputs()[0]
        outs = sess.get_outputs()
        print(f"{path.name}: input {inp.name} {inp.shape}; outputs", [(o.name, o.shape) for o in outs])
        print("  metadata:", sess.get_modelmeta().custom_metadata_map)
    out_d = sess_d.run(None, {"images": x})
    assert out_d[0].shape == ref0.shape and out_d[1].shape == ref1.shape, (out_d[0].shape, ref0.shape)
    for i in range(x.shape[0]):
        out_s = sess_s.run(None, {"images": x[i : i + 1]})
        for k in range(2):
            d_sd = float(np.abs(out_s[k] - out_d[k][i : i + 1]).max())
            d_pt = float(np.abs(out_s[k] - (ref0, ref1)[k][i : i + 1]).max())
            print(f"  sample {i} output{k}: max|static-dynamic|={d_sd:.2e} max|static-torch|={d_pt:.2e}")
            assert d_sd < 1e-3 and d_pt < 1e-2, (d_sd, d_pt)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--out-dir", type=Path, required=True, help="folder of NAME.onnx and class_names.txt")
    p.add_argument("--dynamic-out-dir", type=Path, default=None, help="folder of NAME-dynamic.onnx (default --out-dir)")
    p.add_argument("--name", default="shapes-yolov5n-seg-320")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--yolov5-dir", default=None)
    args = p.parse_args(argv)

    import warnings

    import torch

    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    model = load_model(args.weights, args.yolov5_dir)
    static_path = export(model, args.imgsz, args.out_dir / f"{args.name}.onnx", False, args.opset)
    dynamic_path = export(
        model, args.imgsz, (args.dynamic_out_dir or args.out_dir) / f"{args.name}-dynamic.onnx", True, args.opset
    )
    names = model.names
    ordered = [names[i] for i in range(len(names))] if isinstance(names, dict) else list(names)
    (args.out_dir / "class_names.txt").write_text("".join(n + "\n" for n in ordered))
    verify(model, static_path, dynamic_path, args.imgsz)
    for f in (static_path, dynamic_path):
        print(f"{f}: {f.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
