"""Load M3DDM Model."""
from __future__ import annotations

from comfy_api.latest import io

from . import runtime
from .inputs import M3DDMModelType, node_schema, widget


class LoadM3DDMModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return node_schema(
            "M3DDM_LoadModel", "Load M3DDM Model",
            description="Loads an M3DDM or M3DDM+ video-outpainting UNet (with its global-frame encoder) from "
                        "models/m3ddm: a Hugging Face folder (config.json + diffusion_pytorch_model.bin/.safetensors), "
                        "a single .safetensors file, or an M3DDM+ training checkpoint (.ckpt, or the folder holding "
                        "it). The model's family (M3DDM or M3DDM+) sets the preprocessing the canvas nodes use on "
                        "auto. ComfyUI moves it to the GPU when sampling and can offload it.",
            inputs=[
                io.Combo.Input("model_name", options=runtime.list_models(),
                               tooltip="A folder or file under models/m3ddm (or an m3ddm path in "
                                       "extra_model_paths.yaml)."),
                widget("dtype"),
                widget("family", optional=True),
            ],
            outputs=[M3DDMModelType.Output(display_name="m3ddm_model", tooltip="The loaded M3DDM UNet.")],
        )

    @classmethod
    def validate_inputs(cls, model_name=None) -> bool | str:
        """A missing model is named when the prompt is queued, with the other missing models of the workflow (core
        loaders' combos), not after them at run time."""
        if not isinstance(model_name, str) or model_name in runtime.list_models():  # the list ComfyUI checks
            return True
        return runtime.missing_model(model_name)

    @classmethod
    def execute(cls, model_name: str, dtype: str, family: str = "auto") -> io.NodeOutput:
        return io.NodeOutput(runtime.load_model(model_name, dtype, family))
