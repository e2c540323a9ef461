"""ComfyUI services the nodes use: the models/m3ddm folder, model loading into a ModelPatcher, device
placement, progress with latent previews, and interruption."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import comfy.latent_formats
import comfy.model_management as mm
import comfy.model_patcher
import comfy.ops
import comfy.utils
import folder_paths
import latent_preview
import torch

from ..m3ddm_core import (CHOICES, Runtime, SampleSettings, find_weights, list_weights, load_model as load_weights,
                          place_for_sampling)

from .validation import node_errors, oom_hint

log = logging.getLogger("M3DDM")

MODEL_FOLDER = "m3ddm"


@dataclass(frozen=True)
class M3DDMModel:
    """What travels on M3DDM_MODEL: a loaded UNet inside a ComfyUI ModelPatcher (ComfyUI moves and offloads it)."""

    patcher: object
    name: str
    dtype: torch.dtype
    family: str = "m3ddm"  # the preprocessing its weights were trained with (m3ddm or m3ddm_plus)


def register_model_folder() -> None:
    """Register ``models/m3ddm`` after the paths extra_model_paths.yaml gave it; ComfyUI's own lists of the folder
    (the model library) show the weight files."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))
    folder_paths.folder_names_and_paths[MODEL_FOLDER][1].update(CHOICES.weight_suffixes)


def list_models() -> list[str]:
    """Every model under every m3ddm path (:func:`list_weights`: model folders, folders of training checkpoints,
    single weight files), for Load M3DDM Model's list."""
    if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
        register_model_folder()
    return list_weights(folder_paths.get_folder_paths(MODEL_FOLDER))


def missing_model(name: str) -> str:
    """What to do when ``name`` is not in the m3ddm model folders: where they are and where to get the weights."""
    roots = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
    return (f"'{name}' is not in the M3DDM model folders ({roots}). Download the UNet folder of "
            "alimama-creative/M3DDM-Video-Outpainting from Hugging Face (config.json + diffusion_pytorch_model.bin) "
            "and put it there, then refresh the node list (R); or pick a model the list offers.")


def comfy_attention(q, k, v, heads):
    from comfy.ldm.modules import attention  # looked up at call time: ComfyUI rebinds it from its CLI flags
    return attention.optimized_attention(q, k, v, heads)


def load_model(name: str, dtype_name: str, family: str = "auto") -> M3DDMModel:
    """Load ``name`` from models/m3ddm in ``dtype_name`` (auto: ComfyUI's choice for the device) by the core's
    :func:`load_model`; ``family`` auto takes the weights' family, m3ddm / m3ddm_plus override it."""
    path = find_weights(folder_paths.get_folder_paths(MODEL_FOLDER), name)
    if path is None:  # not there, or a name leading out of the folders
        raise FileNotFoundError(f"[M3DDM_LoadModel] {missing_model(name)}")
    device, offload = mm.get_torch_device(), mm.unet_offload_device()
    dtype = dtype_name if dtype_name != "auto" else mm.unet_dtype(
        device, model_params=1_300_000_000, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
    # ComfyUI's attention backends pay off on GPUs; on the CPU its sub-quadratic kernel is ~10x slower than the
    # core's default (SDPA)
    attention = {"attention": comfy_attention} if device.type != "cpu" else {}
    with node_errors("M3DDM_LoadModel"):
        loaded = load_weights(path, dtype, offload, family, compute_device=device, ops=comfy.ops.disable_weight_init,
                              **attention)
    # CoreModelPatcher: what core builds its own models with, which current ComfyUI turns into its dynamic-VRAM
    # patcher on GPUs where that is on; ComfyUI 0.3.75 has only ModelPatcher
    patcher = getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)(
        loaded.unet, load_device=device, offload_device=offload)
    log.info("M3DDM: loaded %s as %s (load device %s), family %s (%s)", name, loaded.unet.dtype, device,
             loaded.family, loaded.why)
    return M3DDMModel(patcher=patcher, name=name, dtype=loaded.unet.dtype, family=loaded.family)


def _comfy_casts(layer: torch.nn.Module) -> bool:
    """Whether ComfyUI casts, streams or patches this layer's weights inside its forward (comfy.ops layers)."""
    return bool(getattr(layer, "comfy_cast_weights", False) or getattr(layer, "weight_function", None)
                or getattr(layer, "bias_function", None))


def model_on_device(handle: M3DDMModel, settings: SampleSettings, latent_hw: tuple[int, int], node: str):
    """Let ComfyUI make room for the UNet and its activations and load it; returns ``(unet, settings)`` with the
    batching the core decides from the memory (guidance branches batched when they fit, as ComfyUI batches cond
    and uncond only when they fit; on CUDA, several ready passes per UNet call)."""
    def load(reserve: int):
        # whole on the device where it fits (the clip loop reads every weight 50 times a clip); a dynamic-VRAM
        # patcher (current ComfyUI) streams weights itself and refuses to be forced
        dynamic = getattr(handle.patcher, "is_dynamic", lambda: False)()
        mm.load_models_gpu([handle.patcher], memory_required=reserve, force_full_load=not dynamic)
        model = handle.patcher.model
        # comfy.ops layers that cast, stream or patch their weights do it in their own forward: keep that route
        model.set_conv_route("per_frame" if any(_comfy_casts(m) for m in model.modules()) else "auto")
        return model
    device = handle.patcher.load_device
    return place_for_sampling(handle.patcher.model.raw_config, handle.dtype, settings, latent_hw,
                              mm.get_total_memory(device) - mm.extra_reserved_memory(), load,
                              lambda model: mm.get_free_memory(model.device), device, node)


def comfy_runtime(handle: M3DDMModel, node: str) -> Runtime:
    """The pipeline's :class:`Runtime` inside ComfyUI: the model placed by its model management, finished passes
    kept in its user directory, its progress bar with latent previews, its Cancel, and ``node`` in the log."""
    return Runtime(place_model=lambda settings, latent_hw: model_on_device(handle, settings, latent_hw, node),
                   # the user directory: ComfyUI wipes its temp folder at every start, and a run resumes after a crash
                   store=os.path.join(folder_paths.get_user_directory(), "m3ddm_resume"),
                   progress=lambda total, done, model: progress_callback(total, model.device, done),
                   check_interrupt=check_interrupt, name=node)


SAMPLING_FIX = ("Enable low_vram on the node (one UNet call per guidance branch), set context_guidance to 1 (one "
                "branch less), or free VRAM by closing other workflows.")


@contextmanager
def sampling_errors(node: str) -> Iterator[None]:
    """Core errors named after ``node``; out of GPU memory with what to do about it."""
    try:
        with node_errors(node):
            yield
    except torch.cuda.OutOfMemoryError as exc:
        if str(exc).startswith(f"[{node}]"):  # the VAE's, with its own hint (layouts.vae_decoder)
            raise
        raise oom_hint(exc, node, "sampling", SAMPLING_FIX) from exc


def check_interrupt() -> None:
    mm.throw_exception_if_processing_interrupted()


def progress_callback(total_steps: int, device, already_done: int = 0) -> Callable[[dict], None]:
    """A ProgressBar over all steps (``already_done`` of them counted as done: resumed passes), with a latent
    preview of the clip's middle frame."""
    pbar = comfy.utils.ProgressBar(total_steps)
    previewer = latent_preview.get_previewer(device, comfy.latent_formats.SD15())
    done = [already_done]
    if already_done:
        pbar.update_absolute(already_done, total_steps)

    def callback(info: dict) -> None:
        done[0] += 1
        preview = None
        if previewer is not None:
            x0 = info["denoised"]
            frame = x0[0, :, x0.shape[2] // 2].unsqueeze(0)  # [1, 4, h, w]
            preview = previewer.decode_latent_to_preview_image("JPEG", frame)
        pbar.update_absolute(done[0], total_steps, preview)

    return callback


def count_progress(total: int) -> Callable[[int], None]:
    """A plain ProgressBar: ``report(done)`` for work counted in items (frames written, frames encoded)."""
    pbar = comfy.utils.ProgressBar(total)
    return lambda done: pbar.update_absolute(done, total)


def output_device():
    return mm.intermediate_device()
