"""Recipe for the bundled demo model: generate data -> train YOLOv5n-seg -> export.

Run inside the separate training venv (see ``training/README.md``)::

    python training/train.py --workdir /work/shapes-run

Stages (``--stages``, comma separated, default all, in this order):

``generate``
    Write the synthetic shapes dataset with
    :func:`tools.synthetic_shapes.write_dataset` to
    ``WORKDIR/data``.
``train``
    Stage 1: train YOLOv5n-seg *from scratch* (``--weights '' --cfg
    yolov5n-seg.yaml``, SGD, ``hyp.shapes.yaml``) with the Ultralytics YOLOv5
    ``segment/train.py`` (through ``training/run_yolov5.py``, which loads the
    CPU NMS shim and works offline). Output: ``WORKDIR/runs/train``.
``finetune``
    Stage 2: continue from stage 1's ``last.pt`` with AdamW
    (``hyp.shapes-adamw.yaml``, lr0 0.001) and a fresh linear LR schedule.
    Output: ``WORKDIR/runs/train2``. (YOLOv5's SGD recipe with nominal batch
    64 makes only ~12 optimizer steps per epoch on 800 images, which is far
    too slow for a short CPU run; AdamW is what Ultralytics picks
    automatically for short runs.)
``val``
    Run YOLOv5 ``segment/val.py`` on the val and test splits with
    ``conf=0.001, iou=0.6``.
``export``
    Export the final ``best.pt`` with ``training/export_onnx.py`` (static
    batch 1 into ``--assets-dir``, the batch-only dynamic ONNX into ``--variants-dir``).

See ``training/README.md`` for the exact history of the bundled model (stage
1 was interrupted and resumed with a longer schedule).

The YOLOv5 code location is ``--yolov5-dir`` or, by default, the installed
``yolov5`` PyPI package. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STAGES = ("generate", "train", "finetune", "val", "export")


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    print(f"  ({time.time() - t0:.0f} s)", flush=True)


def _yolov5(args: argparse.Namespace, script: str, *script_args: str, launcher: tuple[str, ...] = ()) -> list[str]:
    """``run_yolov5.py [launcher options] SCRIPT ARGS``."""
    cmd = [sys.executable, str(HERE / "run_yolov5.py")]
    if args.yolov5_dir:
        cmd += ["--yolov5-dir", args.yolov5_dir]
    return [*cmd, *launcher, script, *script_args]


def _train(
    args: argparse.Namespace,
    data_dir: Path,
    runs: Path,
    *,
    name: str,
    weights: str,
    hyp: str,
    epochs: int,
    optimizer: tuple[str, ...] = (),
    launcher: tuple[str, ...] = (),
) -> list[str]:
    """A ``segment/train.py`` command of this recipe (CPU, RAM cache, validation only after the last epoch)."""
    return _yolov5(
        args,
        "segment/train.py",
        "--weights", weights,
        "--cfg", _model_cfg(args),
        "--data", str(data_dir / "data.yaml"),
        "--hyp", hyp,
        *optimizer,
        "--imgsz", str(args.imgsz),
        "--epochs", str(epochs),
        "--batch-size", str(args.batch),
        "--workers", str(args.workers),
        "--device", "cpu",
        "--cache", "ram",
        "--noval",
        "--noplots",
        "--seed", "0",
        "--project", str(runs),
        "--name", name,
        "--exist-ok",
        launcher=launcher,
    )  # fmt: skip


def _model_cfg(args: argparse.Namespace) -> str:
    if args.yolov5_dir:
        return str(Path(args.yolov5_dir) / "models" / "segment" / "yolov5n-seg.yaml")
    import importlib.util

    spec = importlib.util.find_spec("yolov5")
    if spec is None or spec.origin is None:
        raise SystemExit("yolov5 is not installed; pass --yolov5-dir")
    return str(Path(spec.origin).parent / "models" / "segment" / "yolov5n-seg.yaml")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, type=Path, help="dataset + runs go here")
    p.add_argument("--yolov5-dir", default=None, help="YOLOv5 code dir (default: installed yolov5 package)")
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--seed", type=int, default=0, help="dataset seed (training seed is 0)")
    p.add_argument("--train", type=int, default=800)
    p.add_argument("--val", type=int, default=150)
    p.add_argument("--test", type=int, default=150)
    p.add_argument("--size", type=int, default=320, help="min image side (max is 2x)")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--epochs", type=int, default=14, help="stage 1 epochs")
    p.add_argument("--finetune-epochs", type=int, default=24, help="stage 2 epochs")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--hyp", default=str(HERE / "hyp.shapes.yaml"))
    p.add_argument("--finetune-hyp", default=str(HERE / "hyp.shapes-adamw.yaml"))
    p.add_argument("--assets-dir", type=Path, default=REPO / "workflows_yolov5_seg" / "assets")
    p.add_argument("--variants-dir", type=Path, default=REPO / "models", help="test and benchmark model variants")
    args = p.parse_args(argv)

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        p.error(f"unknown stages: {sorted(unknown)}")
    work = args.workdir.resolve()
    data_dir = work / "data"
    runs = work / "runs"
    stage1_last = runs / "train" / "weights" / "last.pt"
    weights = (
        runs / ("train2" if "finetune" in stages or (runs / "train2").is_dir() else "train") / "weights" / "best.pt"
    )

    if "generate" in stages:
        sys.path.insert(0, str(REPO))
        from tools.synthetic_shapes import write_dataset

        t0 = time.time()
        data_yaml = write_dataset(
            data_dir, seed=args.seed, train=args.train, val=args.val, test=args.test, size=args.size
        )
        print(f"dataset: {data_yaml} ({time.time() - t0:.0f} s)", flush=True)

    if "train" in stages:
        _run(_train(args, data_dir, runs, name="train", weights="", hyp=args.hyp, epochs=args.epochs))

    if "finetune" in stages:
        _run(
            _train(
                args,
                data_dir,
                runs,
                name="train2",
                weights=str(stage1_last),
                hyp=args.finetune_hyp,
                epochs=args.finetune_epochs,
                optimizer=("--optimizer", "AdamW"),
                launcher=("--nbs", "16"),  # optimizer step every batch
            )
        )

    if "val" in stages:
        for split in ("val", "test"):
            _run(
                _yolov5(
                    args,
                    "segment/val.py",
                    "--weights", str(weights),
                    "--data", str(data_dir / "data.yaml"),
                    "--task", split,
                    "--imgsz", str(args.imgsz),
                    "--batch-size", str(args.batch),
                    "--conf-thres", "0.001",
                    "--iou-thres", "0.6",
                    "--device", "cpu",
                    "--workers", str(args.workers),
                    "--project", str(runs),
                    "--name", f"val-{split}",
                    "--exist-ok",
                )
            )  # fmt: skip

    if "export" in stages:
        _run(
            [
                sys.executable,
                str(HERE / "export_onnx.py"),
                "--weights", str(weights),
                "--imgsz", str(args.imgsz),
                "--out-dir", str(args.assets_dir),
                "--dynamic-out-dir", str(args.variants_dir),
                "--name", f"shapes-yolov5n-seg-{args.imgsz}",
            ]
            + (["--yolov5-dir", args.yolov5_dir] if args.yolov5_dir else [])
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
