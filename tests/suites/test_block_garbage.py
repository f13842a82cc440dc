"""A served workflow run leaves no reference cycles holding its data (issue 13, the server's memory).

The Workflows serialiser tries an output's kinds in order; the RLE serialiser raises on dense detections, and the
exception it keeps holds every frame of the run (images, masks) in a cycle that waits for Python's cyclic garbage
collector. With ``mask_format`` ``dense`` (the default) the block lists the polygon kind first, so nothing raises.
"""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from workflows_yolov5_seg.workflows_engine import (
    INSTANCE_SEGMENTATION_PREDICTION_KIND,
    RLE_INSTANCE_SEGMENTATION_PREDICTION_KIND,
)
from workflows_yolov5_seg.yolov5_instance_segmentation import v1

from support.required import require_module
from support.workflows import init_engine, workflow

require_module("roboflow_workflows.execution_engine.core", "the Workflows engine")

ISEG, RLE = INSTANCE_SEGMENTATION_PREDICTION_KIND.name, RLE_INSTANCE_SEGMENTATION_PREDICTION_KIND.name


def manifest(mask_format: str) -> v1.BlockManifest:
    return v1.BlockManifest(type=v1.BLOCK_TYPE, name="seg", images="$inputs.image", model="m", mask_format=mask_format)


def kinds(step: v1.BlockManifest) -> list[str]:
    return [kind.name for output in step.get_actual_outputs() if output.name == "predictions" for kind in output.kind]


@pytest.mark.parametrize(
    ("mask_format", "expected"), [("dense", [ISEG, RLE]), ("rle", [RLE, ISEG]), ("$inputs.mask_format", [RLE, ISEG])]
)
def test_polygons_first_for_dense_masks_same_kinds_always(mask_format: str, expected: list[str]) -> None:
    assert kinds(manifest(mask_format)) == expected
    described = [kind.name for o in v1.BlockManifest.describe_outputs() if o.name == "predictions" for kind in o.kind]
    assert described == [RLE, ISEG], "the published description (blocks/, manifest.json) is unchanged"
    others = {o.name: o.kind for o in manifest(mask_format).get_actual_outputs() if o.name != "predictions"}
    assert others == {o.name: o.kind for o in v1.BlockManifest.describe_outputs() if o.name != "predictions"}


def workflow_with(mask_format: str) -> dict:
    """The block with ``mask_format`` literal (``dense``) or from ``$inputs.mask_format`` (default ``dense``)."""
    return workflow(parameters={"mask_format": "dense"}, step={"mask_format": mask_format})


def garbage_of_runs(definition: dict, model: Path, runs: int = 3) -> Counter:
    """Types of what ``runs`` serialised runs leave unreachable (found by a full collection)."""
    engine = init_engine(definition)
    image = np.full((240, 320, 3), 60, np.uint8)
    engine.run(runtime_parameters={"image": image, "model": str(model)}, serialize_results=True)  # loads, warms up
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(runs):
            result = engine.run(runtime_parameters={"image": image, "model": str(model)}, serialize_results=True)
            assert result[0]["predictions"]["predictions"], "the model finds its two boxes"
        del result
        gc.collect()
        found = Counter(type(item).__name__ for item in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
        gc.collect()
    return found


def test_dense_runs_leave_no_exception_cycles(two_box_model: Path) -> None:
    dense = garbage_of_runs(workflow_with("dense"), two_box_model)
    assert dense["traceback"] == 0 and dense["ValueError"] == 0, dense
    assert dense["frame"] == 0, f"frames of a run left in reference cycles: {dense}"


def test_the_selector_case_still_pays_the_failed_rle_attempt(two_box_model: Path) -> None:
    """What the ordering avoids: with ``mask_format`` from ``$inputs`` the RLE serialiser raises per run."""
    from_inputs = garbage_of_runs(workflow_with("$inputs.mask_format"), two_box_model)
    assert from_inputs["ValueError"] >= 3 and from_inputs["frame"] > 0, from_inputs
