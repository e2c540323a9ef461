"""Load M3DDM Model."""
from __future__ import annotations

from comfy_api.latest import io

from ..m3ddm_core import DTYPES

from . import runtime
from .types import M3DDMModelType


class LoadM3DDMModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="M3DDM_LoadModel",
            display_name="Load M3DDM Model",
            category="M3DDM",
            description="Loads an M3DDM or M3DDM+ video-outpainting UNet (with its global-frame encoder) from "
                        "models/m3ddm: a Hugging Face folder (config.json + diffusion_pytorch_model.bin/.safetensors) "
                        "or a single .safetensors file. ComfyUI moves it to the GPU when sampling and can offload it.",
            inputs=[
                io.Combo.Input("model_name", options=runtime.list_models(),
                               tooltip="A folder or file under models/m3ddm (or an m3ddm path in extra_model_paths.yaml)."),
                io.Combo.Input("dtype", options=["auto", *DTYPES], default="auto",
                               tooltip="Weight and compute precision. auto: fp16/bf16 on GPUs that support it, fp32 on the CPU."),
            ],
            outputs=[M3DDMModelType.Output(display_name="m3ddm_model", tooltip="The loaded M3DDM UNet.")],
        )

    @classmethod
    def execute(cls, model_name: str, dtype: str) -> io.NodeOutput:
        return io.NodeOutput(runtime.load_model(model_name, dtype))
