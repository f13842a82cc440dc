"""A second, minimal Workflows plugin, to check that ours loads beside other plugins."""

from typing import List, Literal, Type

from roboflow_workflows.execution_engine.entities.base import OutputDefinition
from roboflow_workflows.execution_engine.entities.types import INTEGER_KIND
from roboflow_workflows.prototypes.block import BlockResult, WorkflowBlock, WorkflowBlockManifest


class NeighbourManifest(WorkflowBlockManifest):
    type: Literal["neighbour_plugin/constant@v1"]

    @classmethod
    def describe_outputs(cls) -> List[OutputDefinition]:
        return [OutputDefinition(name="value", kind=[INTEGER_KIND])]


class NeighbourBlock(WorkflowBlock):
    @classmethod
    def get_manifest(cls) -> Type[WorkflowBlockManifest]:
        return NeighbourManifest

    def run(self) -> BlockResult:
        return {"value": 42}


def load_blocks() -> list:
    return [NeighbourBlock]
