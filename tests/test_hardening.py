"""Bad input through the nodes: each case gets an error naming the node, what was wrong and the fix; odd but
valid input works; nothing the user gave is altered."""
import asyncio
import logging
import sys

import pytest
import torch
from safetensors.torch import save_file

from comfy_env import REPO, load_plugin, taesd_vae
from conftest import NANO_CONFIG
from helpers import load_clip

sys.path.insert(0, str(REPO / "scripts"))
from random_weights import write_random_m3ddm  # noqa: E402

CANVAS = dict(target="aspect ratio", aspect_ratio="9:16", width=0, height=0, pad_left=0.0, pad_right=0.0, pad_top=0.0,
              pad_bottom=0.0, canvas_mode="official")
SAMPLING = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=0, fps=8.0, low_vram=False)


@pytest.fixture(scope="module")
def nodes():
    plugin = load_plugin()
    ext = asyncio.run(plugin.comfy_entrypoint())
    classes = {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(ext.get_node_list())}
    classes["runtime"] = plugin.nodes.runtime
    classes["executors"] = plugin.m3ddm_core.pipeline.executors  # the core as the nodes import it
    classes["core"] = plugin.m3ddm_core
    return classes


def run(cls, **kw):
    return cls.execute(**kw).result


@pytest.fixture()
def m3ddm_dir(tmp_path, nodes):
    import folder_paths
    saved = folder_paths.folder_names_and_paths.get("m3ddm")
    folder_paths.folder_names_and_paths["m3ddm"] = ([str(tmp_path)], {".safetensors", ".bin"})
    yield tmp_path
    folder_paths.folder_names_and_paths.pop("m3ddm", None)
    if saved is not None:
        folder_paths.folder_names_and_paths["m3ddm"] = saved


def _nano(folder):
    write_random_m3ddm(folder, NANO_CONFIG)


# -- weights -------------------------------------------------------------------------------------------------
def test_missing_weights_say_where_and_what_to_download(nodes, m3ddm_dir):
    with pytest.raises(FileNotFoundError, match=r"\[M3DDM_LoadModel\] 'gone' is not in the M3DDM model folders.*Hugging Face"):
        run(nodes["M3DDM_LoadModel"], model_name="gone", dtype="auto")


@pytest.mark.parametrize("kind, keys", [
    ("a VAE", {"encoder.conv_in.weight": (8, 3, 3, 3), "decoder.conv_in.weight": (8, 4, 3, 3)}),
    ("a Stable Diffusion UNet", {"conv_in.weight": (320, 4, 3, 3), "down_blocks.0.resnets.0.conv1.weight": (320, 320, 3, 3)}),
    ("an AnimateDiff motion module", {"down_blocks.0.motion_modules.0.temporal_transformer.norm.weight": (320,)}),
])
def test_foreign_weights_are_named(nodes, m3ddm_dir, kind, keys):
    save_file({k: torch.zeros(s) for k, s in keys.items()}, str(m3ddm_dir / "wrong.safetensors"))
    with pytest.raises(ValueError, match=rf"\[M3DDM_LoadModel\] .*wrong.safetensors' is {kind}.*not an M3DDM UNet"):
        run(nodes["M3DDM_LoadModel"], model_name="wrong.safetensors", dtype="auto")


def test_truncated_weights(nodes, m3ddm_dir):
    _nano(m3ddm_dir / "cut")
    f = m3ddm_dir / "cut" / "diffusion_pytorch_model.safetensors"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"\[M3DDM_LoadModel\] .*truncated or corrupt.*Download it again"):
        run(nodes["M3DDM_LoadModel"], model_name="cut", dtype="auto")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_objects_is_refused_and_not_executed(nodes, m3ddm_dir):
    marker = m3ddm_dir / "executed"
    torch.save({"conv_in.weight": torch.zeros(2), "x": _Payload(str(marker))}, m3ddm_dir / "evil.bin")
    with pytest.raises(ValueError, match=r"\[M3DDM_LoadModel\] .*refused.*Nothing was executed"):
        run(nodes["M3DDM_LoadModel"], model_name="evil.bin", dtype="auto")
    assert not marker.exists()


def test_unsupported_dtype_on_the_device_is_refused_before_any_weight_is_read(nodes, tmp_path):
    # the path does not exist: the refusal comes before the weights are looked for
    with pytest.raises(ValueError, match=r"float8_e4m3fn is not supported on cpu.*choose dtype auto"):
        nodes["core"].load_model(tmp_path / "absent", torch.float8_e4m3fn)


# -- frames ----------------------------------------------------------------------------------------------------
def test_zero_frames(nodes):
    with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintCanvas\] the IMAGE batch has 0 frames"):
        run(nodes["M3DDM_OutpaintCanvas"], images=torch.zeros(0, 64, 64, 3), **CANVAS)


@pytest.mark.parametrize("channels", [1, 4])
def test_grayscale_and_rgba_frames_work_and_keep_their_channels(nodes, channels):
    frames = torch.rand(2, 40, 72, channels, generator=torch.Generator().manual_seed(channels))
    canvas, preview, _, _, _ = run(nodes["M3DDM_OutpaintCanvas"], images=frames, **CANVAS)
    assert preview.shape[-1] == 3
    out, = run(nodes["M3DDM_Composite"], images=frames, generated=torch.rand(2, 256, 256, 3), canvas=canvas, feather=4)
    y, x = canvas.plan.content_out_yx
    assert out.shape[-1] == channels and torch.equal(out[:, y:y + 40, x:x + 72], frames)


@pytest.mark.parametrize("hw", [(8, 12), (16, 16), (15, 33), (2160, 3840)])
def test_tiny_odd_and_4k_frames(nodes, hw):
    frames = torch.rand(1, *hw, 3, generator=torch.Generator().manual_seed(1))
    canvas, preview, mask, _, _ = run(nodes["M3DDM_OutpaintCanvas"], images=frames, **CANVAS)
    out, = run(nodes["M3DDM_Composite"], images=frames, generated=preview, canvas=canvas, feather=8)
    y, x = canvas.plan.content_out_yx
    assert torch.equal(out[:, y:y + hw[0], x:x + hw[1]], frames)


def test_long_video_preview_is_bounded(nodes):
    frames = torch.rand(300, 24, 40, 3)
    canvas, preview, _, _, _ = run(nodes["M3DDM_OutpaintCanvas"], images=frames, **CANVAS)
    assert canvas.num_frames == 300 and preview.shape[0] == 16


# -- targets ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"aspect_ratio": "16/9"}, "not of the form W:H"),
    ({"aspect_ratio": "0:1"}, "has a zero side"),
    ({"aspect_ratio": "abc"}, "not of the form W:H"),
    ({"target": "output size", "width": 100, "height": 400}, "smaller than the frame.*never crops"),
    ({"target": "padding"}, "all paddings are 0"),
    ({"target": "padding", "pad_left": 20000.0}, "less than 16 px"),
])
def test_bad_targets(nodes, change, message):
    with pytest.raises(ValueError, match=rf"\[M3DDM_OutpaintCanvas\] .*{message}"):
        run(nodes["M3DDM_OutpaintCanvas"], images=torch.rand(1, 120, 208, 3), **dict(CANVAS, **change))


# -- guides, canvases, runs ------------------------------------------------------------------------------------
def _video(nodes, working_size: int):
    frames = load_clip(6)
    canvas, _, _, _, _ = run(nodes["M3DDM_OutpaintCanvas"], images=frames, working_size=working_size, **CANVAS)
    vae = taesd_vae()
    g, = run(nodes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas)
    return frames, canvas, vae, g


@pytest.fixture(scope="module")
def video(nodes):
    """6 frames on the official 256 canvas (the guide and composite checks name its sizes)."""
    return _video(nodes, 256)


@pytest.fixture(scope="module")
def small_video(nodes):
    """The same on a 128 canvas, for the tests that sample (plumbing)."""
    return _video(nodes, 128)


@pytest.mark.parametrize("guide, message", [
    ({"samples": torch.zeros(4, 4, 32, 32)}, "does not come from an M3DDM sampler"),
    ({"samples": torch.zeros(4, 4, 16, 16), "m3ddm_frames": [0, 1, 2, 3]}, "made for another canvas"),
    ({"samples": torch.zeros(3, 4, 32, 32), "m3ddm_frames": [0, 1, 2, 3]}, "holds 3 latents for 4 frame indexes"),
    ({"samples": torch.zeros(1, 4, 32, 32), "m3ddm_frames": [9]}, "refers to frame 9, but the video has 6 frames"),
])
def test_bad_guides(nodes, video, m3ddm_dir, guide, message):
    frames, canvas, vae, g = video
    with pytest.raises(ValueError, match=rf"\[M3DDM_SampleClip\] .*{message}"):
        run(nodes["M3DDM_SampleClip"], m3ddm_model=_loaded(nodes, m3ddm_dir), vae=vae, canvas=canvas, global_frames=g, frame_indexes="0-3",
            guide=guide, **SAMPLING)


def test_bad_frame_indexes(nodes, video, m3ddm_dir):
    frames, canvas, vae, g = video
    model = _loaded(nodes, m3ddm_dir)
    for text, message in (("0-20", "outside the video"), ("a-b", "must look like 0-15"), ("0-5,0-5,0-5", "at most 16")):
        with pytest.raises(ValueError, match=message):
            run(nodes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas, global_frames=g,
                frame_indexes=text, **SAMPLING)


def test_composite_refuses_frames_of_another_video(nodes, video):
    frames, canvas, _, _ = video
    with pytest.raises(ValueError, match=r"\[M3DDM_Composite\] these original frames are not the ones the canvas"):
        run(nodes["M3DDM_Composite"], images=frames.flip(0), generated=torch.rand(6, 256, 256, 3), canvas=canvas, feather=0)
    with pytest.raises(ValueError, match=r"\[M3DDM_Composite\] 3 generated frames for 6 original frames"):
        run(nodes["M3DDM_Composite"], images=frames, generated=torch.rand(3, 256, 256, 3), canvas=canvas, feather=0)


def _loaded(nodes, m3ddm_dir):
    _nano(m3ddm_dir / "nano")
    model, = run(nodes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    return model


def test_out_of_memory_suggests_low_vram(nodes, video, m3ddm_dir):
    frames, canvas, vae, _ = video
    model = _loaded(nodes, m3ddm_dir)
    unet = model.patcher.model

    class OOM(type(unet)):
        def forward(self, *a, **k):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    unet.__class__ = OOM
    try:
        with pytest.raises(torch.OutOfMemoryError, match=r"\[M3DDM_CoarseToFine\] out of GPU memory.*low_vram"):
            run(nodes["M3DDM_CoarseToFine"], m3ddm_model=model, vae=vae, canvas=canvas, strides="auto", schedule="fixed",
                **SAMPLING)
    finally:
        unet.__class__ = OOM.__mro__[1]


def test_out_of_memory_in_the_vae_decode_says_what_helps_there(nodes, small_video, m3ddm_dir):
    """Sample Clip decodes its frames inside the node: an out-of-memory error there is the VAE's, so the hint is
    not the sampler's low_vram (which changes nothing in the decode)."""
    frames, canvas, vae, _ = small_video
    model = _loaded(nodes, m3ddm_dir)
    global_frames, = run(nodes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas)

    def decode(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
    vae.decode = decode  # the instance's: the class's decode is back once the attribute goes
    try:
        with pytest.raises(torch.OutOfMemoryError, match=r"\[M3DDM_SampleClip\] out of GPU memory while decoding the "
                                                         r"canvases with the VAE .*working_size") as caught:
            run(nodes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas, global_frames=global_frames,
                frame_indexes="0-5", **SAMPLING)
    finally:
        del vae.decode
    assert "low_vram" not in str(caught.value)


def _count_unet_batches(unet):
    """Record the batch size of every UNet call; returns (list, undo)."""
    batches, cls = [], type(unet)

    class Counting(cls):
        def forward(self, sample, *a, **k):
            batches.append(sample.shape[0])
            return super().forward(sample, *a, **k)

    unet.__class__ = Counting
    return batches, lambda: setattr(unet, "__class__", cls)


@pytest.mark.parametrize("total_gb, free_gb, low_vram, batches_per_step, message", [
    (64.0, 64.0, False, [3], None),
    (64.0, 0.001, False, [1, 1, 1], "GB free on"),                 # found short once loaded
    (0.01, 64.0, False, [1, 1, 1], "left next to the model"),  # can never fit: decided before loading
    (64.0, 64.0, True, [1, 1, 1], None),                           # the user's low_vram
])
def test_branches_run_one_after_another_when_memory_is_short(nodes, small_video, m3ddm_dir, monkeypatch, caplog,
                                                             total_gb, free_gb, low_vram, batches_per_step, message):
    import comfy.model_management as mm
    frames, canvas, vae, g = small_video
    model = _loaded(nodes, m3ddm_dir)
    requested = []
    real_load = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, **kw: requested.append((models, kw)) or real_load(models, **kw))

    def memory(gb):
        return lambda dev=None, torch_free_too=False, torch_total_too=False: (
            (int(gb * 2 ** 30),) * 2 if torch_free_too or torch_total_too else int(gb * 2 ** 30))
    monkeypatch.setattr(mm, "get_free_memory", memory(free_gb))
    monkeypatch.setattr(mm, "get_total_memory", memory(total_gb))
    batches, undo = _count_unet_batches(model.patcher.model)
    three_branches = dict(SAMPLING, context_guidance=2.0, global_guidance=4.0, low_vram=low_vram)
    try:
        with caplog.at_level(logging.WARNING, logger="M3DDM"):
            run(nodes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas, global_frames=g,
                frame_indexes="0-3", **three_branches)
    finally:
        undo()
    assert batches == batches_per_step
    assert ("one after another" in caplog.text) == (message is not None)
    if message:
        assert message in caplog.text and "[M3DDM_SampleClip]" in caplog.text
    # ComfyUI is told how much room the activations of the chosen mode need, so it can unload other models.
    unet, core = model.patcher.model, nodes["executors"]
    sequential_up_front = low_vram or message == "left next to the model"
    expected = core.sampling_memory(unet.raw_config, model.dtype, 3, sequential_up_front, 16, (16, 16))
    ours = [kw for models, kw in requested if model.patcher in models]
    assert ours and ours[-1]["memory_required"] == int(expected.activations * core.MEMORY_MARGIN) > 0


def test_sampling_goes_on_when_the_memory_trace_fails(nodes, small_video, m3ddm_dir, monkeypatch, caplog):
    frames, canvas, vae, g = small_video
    model = _loaded(nodes, m3ddm_dir)

    def broken(*a, **k):
        raise RuntimeError("no meta kernel for some op")
    monkeypatch.setattr(nodes["executors"], "sampling_memory", broken)
    with caplog.at_level(logging.WARNING, logger="M3DDM"):
        latent, _ = run(nodes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas, global_frames=g,
                        frame_indexes="0-3", **dict(SAMPLING, context_guidance=2.0, global_guidance=4.0))
    assert "could not estimate the sampling memory (no meta kernel for some op)" in caplog.text
    assert latent["samples"].shape == (4, 4, 16, 16) and torch.isfinite(latent["samples"]).all()


def test_cpu_run_says_it_will_be_slow_and_works(nodes, small_video, m3ddm_dir, caplog):
    frames, canvas, vae, _ = small_video
    model = _loaded(nodes, m3ddm_dir)
    before = frames.clone()
    with caplog.at_level(logging.WARNING, logger="M3DDM"):
        generated, latent = run(nodes["M3DDM_CoarseToFine"], m3ddm_model=model, vae=vae, canvas=canvas, strides="auto",
                                schedule="official", **SAMPLING)
    assert "sampling on the CPU" in caplog.text and "slow" in caplog.text
    assert generated.shape[0] == 6 and torch.equal(frames, before)


def test_bad_strides_name_the_node(nodes, video, m3ddm_dir):
    frames, canvas, vae, _ = video
    with pytest.raises(ValueError, match=r"\[M3DDM_CoarseToFine\] the official schedule never generates"):
        one, _, _, _, _ = run(nodes["M3DDM_OutpaintCanvas"], images=frames[:1], **CANVAS)
        run(nodes["M3DDM_CoarseToFine"], m3ddm_model=_loaded(nodes, m3ddm_dir), vae=vae, canvas=one, strides="auto",
            schedule="official", **SAMPLING)
