"""The ComfyUI layer: V3 nodes that translate ComfyUI types to m3ddm_core calls."""
from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .canvas_nodes import M3DDMCompare, M3DDMComposite, M3DDMOutpaintCanvas
from .keyframe_nodes import M3DDMContinue, M3DDMKeyframePreview
from .loader_node import LoadM3DDMModel
from .measure_nodes import M3DDMEvaluate, M3DDMQualityCheck
from .runtime import register_model_folder
from .sampler_nodes import M3DDMCoarseToFine, M3DDMEncodeGlobalFrames, M3DDMSampleClip
from .video_node import M3DDMOutpaintVideo

NODES = [LoadM3DDMModel, M3DDMOutpaintCanvas, M3DDMEncodeGlobalFrames, M3DDMSampleClip, M3DDMCoarseToFine,
         M3DDMComposite, M3DDMOutpaintVideo, M3DDMCompare, M3DDMEvaluate, M3DDMQualityCheck, M3DDMKeyframePreview,
         M3DDMContinue]


class M3DDMExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> M3DDMExtension:
    register_model_folder()
    return M3DDMExtension()
