"""The ComfyUI node layer, called directly (real comfy_api / comfy modules of the installed current ComfyUI, 0.33.0)."""
import asyncio
import sys

import pytest
import torch

from comfy_env import REPO, load_plugin, taesd_vae
from conftest import NANO_CONFIG
from helpers import load_clip, write_audio_only

sys.path.insert(0, str(REPO / "scripts"))
from random_weights import write_random_m3ddm  # noqa: E402



@pytest.fixture(scope="module")
def plugin():
    return load_plugin()


@pytest.fixture(scope="module")
def node_classes(plugin):
    ext = asyncio.run(plugin.comfy_entrypoint())
    return {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(ext.get_node_list())}


def test_node_contract(node_classes):
    assert set(node_classes) == {"M3DDM_LoadModel", "M3DDM_OutpaintCanvas", "M3DDM_EncodeGlobalFrames",
                                 "M3DDM_SampleClip", "M3DDM_CoarseToFine", "M3DDM_Composite", "M3DDM_OutpaintVideo",
                                 "M3DDM_Compare", "M3DDM_Evaluate", "M3DDM_QualityCheck", "M3DDM_KeyframePreview",
                                 "M3DDM_Continue"}
    for node_id, cls in node_classes.items():
        schema = cls.GET_SCHEMA()
        assert schema.category == "M3DDM" and len(schema.description) > 40, node_id
        for inp in schema.inputs:
            assert inp.tooltip, f"{node_id}.{inp.id} has no tooltip"
        for out in schema.outputs:
            assert out.display_name and out.tooltip, node_id
        assert (REPO / "web" / "docs" / f"{node_id}.md").is_file(), node_id
        ids = [i.id for i in schema.inputs]
        assert len(ids) == len(set(ids))


def test_no_newest_only_api_and_no_comfy_import_in_core():
    forbidden = ("search_aliases", "advanced=", "DynamicCombo", "Autogrow", "MatchType", "on_load", "NODE_CLASS_MAPPINGS")
    for path in (REPO / "nodes").glob("*.py"):
        text = path.read_text()
        assert not any(f in text for f in forbidden), path
        # the ComfyUI layer uses m3ddm_core only through what its __init__ exports
        assert "from ..m3ddm_core." not in text and "import m3ddm_core." not in text, path
    for path in (REPO / "m3ddm_core").rglob("*.py"):
        text = path.read_text()
        for mod in ("import comfy", "from comfy", "folder_paths", "comfy_api", "latent_preview"):
            assert mod not in text, (path, mod)


@pytest.fixture()
def models_dir(tmp_path, plugin):
    import folder_paths
    saved = folder_paths.folder_names_and_paths.get("m3ddm")
    root = tmp_path / "m3ddm"
    write_random_m3ddm(root / "nano", NANO_CONFIG)
    folder_paths.folder_names_and_paths["m3ddm"] = ([str(root)], {".safetensors", ".bin"})
    yield root
    if saved is None:
        folder_paths.folder_names_and_paths.pop("m3ddm", None)
    else:
        folder_paths.folder_names_and_paths["m3ddm"] = saved


def test_model_folder_registration_merges_with_extra_model_paths(node_classes, plugin):
    import folder_paths
    runtime = plugin.nodes.runtime
    saved = folder_paths.folder_names_and_paths.pop("m3ddm", None)
    try:
        folder_paths.add_model_folder_path("m3ddm", "/data/user/m3ddm")  # what extra_model_paths.yaml does
        runtime.register_model_folder()
        paths, exts = folder_paths.folder_names_and_paths["m3ddm"]
        assert paths[0] == "/data/user/m3ddm" and paths[1].endswith("m3ddm") and len(paths) == 2
        assert {".safetensors", ".bin", ".ckpt"} <= exts
        runtime.register_model_folder()  # idempotent
        assert len(folder_paths.folder_names_and_paths["m3ddm"][0]) == 2
    finally:
        folder_paths.folder_names_and_paths.pop("m3ddm", None)
        if saved is not None:
            folder_paths.folder_names_and_paths["m3ddm"] = saved


def _run(cls, **kwargs):
    return cls.execute(**kwargs).result


def test_whole_chain_on_a_real_clip(node_classes, models_dir):
    assert "nano" in node_classes["M3DDM_LoadModel"].GET_SCHEMA().inputs[0].options
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    frames = load_clip(5)
    original = frames.clone()
    vae = taesd_vae()
    canvas, preview, mask, cuts, _ = _run(node_classes["M3DDM_OutpaintCanvas"], images=frames, target="aspect ratio",
                                 aspect_ratio="9:16", width=0, height=0, pad_left=0.0, pad_right=0.0, pad_top=0.0,
                                 pad_bottom=0.0, canvas_mode="official")
    assert preview.shape == (5, 256, 256, 3) and mask.shape == (1, 256, 256)
    (global_frames,) = _run(node_classes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas)
    assert global_frames.latents.shape == (16, 4, 32, 32)
    sampling = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=3, fps=16.0,
                    low_vram=False)
    latent, clip_images = _run(node_classes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas,
                               global_frames=global_frames, frame_indexes="0-3", **sampling)
    assert latent["samples"].shape == (4, 4, 32, 32) and latent["m3ddm_frames"] == [0, 1, 2, 3]
    assert clip_images.shape == (4, 256, 256, 3)
    latent2, _ = _run(node_classes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas,
                      global_frames=global_frames, frame_indexes="3-4", guide=latent, **sampling)
    assert latent2["m3ddm_frames"] == [3, 4]
    assert torch.allclose(latent2["samples"][0], latent["samples"][3], atol=1e-6)  # a guide frame is kept as generated
    assert torch.isfinite(latent2["samples"]).all() and not torch.equal(latent2["samples"][1], latent["samples"][3])
    generated, all_latent = _run(node_classes["M3DDM_CoarseToFine"], m3ddm_model=model, vae=vae, canvas=canvas,
                                 strides="auto", schedule="fixed", **sampling)
    assert generated.shape == (5, 256, 256, 3) and all_latent["samples"].shape == (5, 4, 32, 32)
    (out,) = _run(node_classes["M3DDM_Composite"], images=frames, generated=generated, canvas=canvas, feather=4)
    y, x = canvas.plan.content_out_yx
    assert out.shape == (5, *canvas.plan.output_hw, 3)
    assert torch.equal(out[:, y:y + 120, x:x + 208], frames)
    (review,) = _run(node_classes["M3DDM_Compare"], images=frames, outpainted=out, canvas=canvas, layout="auto",
                     gap=16)
    assert review.shape == (5, 370, 2 * 208 + 16, 3) and torch.equal(review[:, :, 224:], out)
    with pytest.raises(ValueError, match=r"\[M3DDM_Compare\] 5 result frames of 208x370 for 4 source "
                                         r"frames .*Connect the source IMAGE, its M3DDM Composite result"):
        _run(node_classes["M3DDM_Compare"], images=frames[:4], outpainted=out, canvas=canvas, layout="auto", gap=16)
    assert torch.equal(frames, original)  # inputs never mutated


def test_where_the_device_allows_coarse_to_fine_samples_ready_passes_together(node_classes, plugin, models_dir,
                                                                              monkeypatch):
    """On CUDA the sampling nodes take up to 4 ready passes per UNet call as the free memory allows (here the CPU
    stands in: the device rule patched to allow 2); the video equals one pass at a time up to float rounding, and
    low_vram keeps one pass per call. One guidance branch: how passes and branches interleave in a call is
    tests/test_executors.py's."""
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    vae, (canvas, *_) = taesd_vae(), _canvas(node_classes, load_clip(31))
    sampling = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=3, fps=16.0,
                    low_vram=False, strides="5,1", schedule="fixed")  # key frames 0, 5, .. 30, then 0-15 and 15-30
    c2f = node_classes["M3DDM_CoarseToFine"]
    _, one = _run(c2f, m3ddm_model=model, vae=vae, canvas=canvas, **sampling)
    monkeypatch.setattr(plugin.m3ddm_core.pipeline.executors, "default_max_passes", lambda device: 2)
    unet = model.patcher.model
    sizes = []
    hook = unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        _, batched = _run(c2f, m3ddm_model=model, vae=vae, canvas=canvas, **sampling)
        assert sizes == [1, 2]  # the two dense passes in one call
        sizes.clear()
        _, low = _run(c2f, m3ddm_model=model, vae=vae, canvas=canvas, **dict(sampling, low_vram=True))
        assert max(sizes) == 1
    finally:
        hook.remove()
    a, b = batched["samples"], one["samples"]
    assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    assert (low["samples"] - b).abs().max() <= 1e-5 * b.abs().max()


def test_widgets_show_the_core_settings_unchanged(node_classes):
    """Every widget that is a core setting shows the core's default, limits, options and help: no node restates
    them (as the frontend receives them, INPUT_TYPES)."""
    from m3ddm_core import PARAMETERS

    shown = 0
    for node_id, cls in node_classes.items():
        for group in cls.INPUT_TYPES().values():
            for name, (kind, *opts) in group.items():
                p = PARAMETERS.get(name)
                if p is None:
                    continue
                opts = opts[0]
                shown += 1
                where = f"{node_id}.{name}"
                assert opts["tooltip"].startswith(p.help), where
                if p.options:
                    extra = ["canvas"] if (node_id, name) == ("M3DDM_CoarseToFine", "shots") else []
                    assert (kind, opts["options"]) == ("COMBO", [*extra, *p.options]), where
                    assert opts["default"] == (extra or [p.default])[0], where
                    continue
                assert opts["default"] == p.default, where
                assert kind == {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}[type(p.default)], where
                assert (opts.get("min"), opts.get("max")) == (p.low, p.high), where
                assert opts.get("step") == p.step, where
    assert shown > 60  # the sampling settings alone are on five nodes


def test_text_inputs_are_checked_when_the_prompt_is_queued(node_classes):
    """validate_inputs: a typo in a text input fails before any upstream node runs, and each node's method takes
    only that input (ComfyUI files the message under every input the method takes); what needs the frames (a cut
    past the end) and linked inputs (None at validation) wait for the run."""
    import inspect

    canvas, video = node_classes["M3DDM_OutpaintCanvas"], node_classes["M3DDM_OutpaintVideo"]
    clip, c2f = node_classes["M3DDM_SampleClip"], node_classes["M3DDM_CoarseToFine"]
    for cls, name in ((canvas, "aspect_ratio"), (video, "aspect_ratio"), (clip, "frame_indexes"), (c2f, "cuts")):
        assert list(inspect.signature(cls.validate_inputs).parameters) == [name], cls
        assert cls.validate_inputs(**{name: None}) is True  # linked: checked when the node runs
    assert canvas.validate_inputs(aspect_ratio="9:16") is True
    assert canvas.validate_inputs(aspect_ratio="16/9").startswith("aspect ratio '16/9' is not of the form W:H")
    assert "not of the form W:H" in video.validate_inputs(aspect_ratio="9/16")
    assert clip.validate_inputs(frame_indexes="0,15,30") is True
    assert "must look like 0-15" in clip.validate_inputs(frame_indexes="0-x")
    assert "at most 16" in clip.validate_inputs(frame_indexes="0-99999999")  # refused without listing them
    assert c2f.validate_inputs(cuts="12, 40") is True and c2f.validate_inputs(cuts="100000") is True
    assert "first frames of new shots" in c2f.validate_inputs(cuts="1;;x")


@pytest.mark.parametrize("comfy_attr, value", [("comfy_cast_weights", True), ("weight_function", [lambda w: w]),
                                               ("bias_function", [lambda b: b])])
def test_layers_whose_weights_comfyui_casts_keep_their_own_forward(node_classes, plugin, comfy_attr, value):
    """The ComfyUI layer chooses the per-frame conv route when ComfyUI casts, streams or patches a layer's weights
    inside its forward (the conv3d route would read the raw weights past it)."""
    runtime = plugin.nodes.runtime
    layer = torch.nn.Conv1d(4, 4, 3)
    assert not runtime._comfy_casts(layer)
    setattr(layer, comfy_attr, value)  # what ComfyUI sets when it streams or patches weights
    assert runtime._comfy_casts(layer)


def test_quality_check_node_reports_windows_of_the_plan_and_a_plot(node_classes):
    """IMAGE + canvas in; the report's windows are the passes of the plan the sampler ran; a clean border (the
    frame's own edge rows stretched: no seam, no flicker, no drift) is not flagged, a flickering one is."""
    import json

    import numpy as np

    from m3ddm_core import plan_video, plan_windows
    frames = load_clip(20)
    canvas, *_ = _run(node_classes["M3DDM_OutpaintCanvas"], images=frames, target="aspect ratio", aspect_ratio="9:16",
                      width=0, height=0, pad_left=0.0, pad_right=0.0, pad_top=0.0, pad_bottom=0.0,
                      canvas_mode="official", shots="list", cuts="12")
    (oh, _), (y0, _), fh = canvas.plan.output_hw, canvas.plan.content_out_yx, canvas.plan.frame_hw[0]
    rows = np.clip(np.arange(oh) - y0, 0, fh - 1)
    clean = frames[:, rows]  # each border row repeats the frame's edge row
    check = node_classes["M3DDM_QualityCheck"]
    text, report_json, plot = _run(check, images=clean, canvas=canvas, strides="auto", schedule="fixed")
    report = json.loads(report_json)
    assert [(w["start"], w["end"]) for w in report["windows"]] == plan_windows(plan_video(20, [12]))
    assert report["cuts"] == [12] and "0 window(s) flagged" in text
    assert plot.shape == (1, 3 * 160 + 30, 960, 3) and 0 <= plot.min() and plot.max() <= 1
    noisy = clean.clone()
    noisy[:, :y0] += torch.linspace(-0.1, 0.1, 20)[torch.randperm(20, generator=torch.Generator().manual_seed(0))][
        :, None, None, None]
    text, report_json, _ = _run(check, images=noisy.clamp(0, 1), canvas=canvas, strides="auto", schedule="fixed")
    assert "flicker" in text and json.loads(report_json)["windows"][0]["flags"]
    with pytest.raises(ValueError, match=r"\[M3DDM_QualityCheck\] connect the outpainted images with their canvas"):
        _run(check, images=clean, strides="auto", schedule="fixed")
    with pytest.raises(ValueError, match=r"\[M3DDM_QualityCheck\] 19 images for a canvas of 20 frames"):
        _run(check, images=clean[:19], canvas=canvas, strides="auto", schedule="fixed")


def test_keyframe_preview_then_continue_equals_coarse_to_fine_and_an_edit_guides_the_rest(node_classes, models_dir):
    """Preview the key frames, continue: the same latents as one Coarse-to-Fine run of the same inputs, only the
    passes after the key frames sampled; an edited key frame is used as that frame and changes its neighbours."""
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    frames, vae = load_clip(31), taesd_vae()  # key frames 0, 15, 30
    canvas, *_ = _canvas(node_classes, frames)
    sampling = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=8, fps=24.0,
                    low_vram=False, strides="15,5,1", schedule="fixed")
    preview, numbers, state, shots = _run(node_classes["M3DDM_KeyframePreview"], m3ddm_model=model, vae=vae, canvas=canvas,
                                   feather=8, **sampling)
    keys = [int(x) for x in numbers.split(", ")]
    assert keys[0] == 0 and keys[1] == 15 and preview.shape == (len(keys), *canvas.plan.output_hw, 3)
    y, x = canvas.plan.content_out_yx
    assert torch.equal(preview[:, y:y + 120, x:x + 208], frames[keys])  # the originals in the preview untouched
    # the review gate: with render off the run stops here, nothing after Continue runs and nothing is sampled
    from comfy_execution.graph_utils import ExecutionBlocker
    gate = _run(node_classes["M3DDM_Continue"], keyframes=state, m3ddm_model=model, vae=vae, render=False)
    assert len(gate) == 2 and all(isinstance(o, ExecutionBlocker) and o.message is None for o in gate)
    generated, latent = _run(node_classes["M3DDM_Continue"], keyframes=state, m3ddm_model=model, vae=vae,
                             render=True)
    whole, whole_latent = _run(node_classes["M3DDM_CoarseToFine"], m3ddm_model=model, vae=vae, canvas=canvas,
                               **sampling)
    assert torch.equal(latent["samples"], whole_latent["samples"])
    edited = preview.clone()
    edited[1, :y] = torch.tensor([1.0, 0.0, 0.0])  # key frame 15's top border painted red
    _, edited_latent = _run(node_classes["M3DDM_Continue"], keyframes=state, m3ddm_model=model, vae=vae,
                            render=True, edited=edited)
    changed = [i for i in range(31) if not torch.equal(edited_latent["samples"][i], latent["samples"][i])]
    assert 15 in changed and all(f not in changed for f in keys if f != 15)  # the other key frames as previewed
    assert any(f in changed for f in (14, 16))  # the frames around it are guided by the edit
    with pytest.raises(ValueError, match=r"\[M3DDM_Continue\] edited has shape"):
        _run(node_classes["M3DDM_Continue"], keyframes=state, m3ddm_model=model, vae=vae, render=True,
             edited=edited[:1])
    with pytest.raises(ValueError, match=r"\[M3DDM_KeyframePreview\] shot_seeds: shot 3 does not exist"):
        _run(node_classes["M3DDM_KeyframePreview"], m3ddm_model=model, vae=vae, canvas=canvas, feather=8,
             shot_seeds="3:5", **sampling)


def test_bad_ratio_error_names_the_node(node_classes):
    with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintCanvas\] aspect ratio '16/9' is not of the form W:H"):
        _run(node_classes["M3DDM_OutpaintCanvas"], images=load_clip(1), target="aspect ratio", aspect_ratio="16/9",
             width=0, height=0, pad_left=0.0, pad_right=0.0, pad_top=0.0, pad_bottom=0.0, canvas_mode="official")


def test_global_frames_from_another_video_are_refused(node_classes, models_dir):
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    a, _, _, _, _ = _canvas(node_classes, load_clip(3))
    b, _, _, _, _ = _canvas(node_classes, load_clip(3).flip(0))
    vae = taesd_vae()
    (g,) = _run(node_classes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=a)
    with pytest.raises(ValueError, match=r"\[M3DDM_SampleClip\] the global frames were encoded for another video.*"
                                         r"M3DDM Encode Global Frames takes this node's canvas and model") as bad:
        _run(node_classes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=b, global_frames=g,
             frame_indexes="0-2", scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=0,
             fps=8.0, low_vram=False)
    assert "disconnect" not in str(bad.value)  # Sample Clip's global_frames input is required


def test_non_sd_vae_is_refused_before_sampling(node_classes):
    class VideoVAE:
        latent_channels, downscale_ratio, latent_dim = 16, 8, 3
    with pytest.raises(ValueError, match=r"\[M3DDM_EncodeGlobalFrames\] the VAE has 16 latent channels"):
        _run(node_classes["M3DDM_EncodeGlobalFrames"], vae=VideoVAE(), canvas=None)


def _record_fps(unet):
    """Record the fps every UNet call is conditioned on; returns (list, undo)."""
    seen, cls = [], type(unet)

    class Recording(cls):
        def forward(self, sample, timestep, fps, global_tokens):
            seen.append(int(fps))
            return super().forward(sample, timestep, fps, global_tokens)

    unet.__class__ = Recording
    return seen, lambda: setattr(unet, "__class__", cls)


def test_sample_clip_key_frames_equal_the_first_coarse_to_fine_pass(node_classes, models_dir):
    """Key frames 0,5,...,75 of a 24 fps video: stride 5, so the model sees fps int(24 / 5) = 4 (as the official
    code and Coarse-to-Fine do: floored, not rounded), and the clip is bit for bit pass 0 of the 5,1 schedule
    (same seed)."""
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    frames = load_clip(76)
    vae = taesd_vae()
    canvas, _, _, _, _ = _canvas(node_classes, frames)
    (global_frames,) = _run(node_classes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas)
    sampling = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=5, fps=24.0,
                    low_vram=False)
    keys = list(range(0, 76, 5))
    fps_seen, undo = _record_fps(model.patcher.model)
    try:
        clip, _ = _run(node_classes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas,
                       global_frames=global_frames, frame_indexes=",".join(map(str, keys)), **sampling)
        assert fps_seen == [4]
        fps_seen.clear()
        _run(node_classes["M3DDM_SampleClip"], m3ddm_model=model, vae=vae, canvas=canvas,
             global_frames=global_frames, frame_indexes="16-31", **dict(sampling, fps=29.97))
        assert fps_seen == [29]  # consecutive frames: stride 1, int(fps)
        fps_seen.clear()
        _, whole = _run(node_classes["M3DDM_CoarseToFine"], m3ddm_model=model, vae=vae, canvas=canvas,
                        strides="5,1", schedule="fixed", global_frames=global_frames, **sampling)
    finally:
        undo()
    assert fps_seen[:1] == [4] and set(fps_seen[1:]) == {24}  # passes at stride 5, then 1
    assert clip["m3ddm_frames"] == keys
    assert torch.equal(clip["samples"], whole["samples"][keys])


def _video_inputs(**overrides):
    inputs = dict(target="aspect ratio", aspect_ratio="9:16", width=0, height=0, pad_left=0.0, pad_right=0.0,
                  pad_top=0.0, pad_bottom=0.0, canvas_mode="official", scheduler="ddim", steps=1,
                  context_guidance=1.0, global_guidance=1.0, seed=3, low_vram=False, strides="auto", schedule="fixed",
                  feather=4, start_frame=0, frame_count=0, working_size=128)
    return dict(inputs, **overrides)


def _source_video(path, n=24, fps=None, frames=None):
    from fractions import Fraction

    import numpy as np

    from m3ddm_core import VideoWriter
    fps = fps or Fraction(25)
    t = np.arange(int(n / fps * 16000), dtype=np.float32) / 16000
    audio = (np.stack([np.sin(2 * np.pi * 440 * t)] * 2) * 0.2).astype(np.float32), 16000
    with VideoWriter(path, fps, 208, 120, audio=(audio[0], audio[1])) as w:
        for f in ((load_clip(n) if frames is None else frames) * 255).round().to(torch.uint8).numpy():
            w.write(f)
    return path


def test_outpaint_video_node_streams_a_file_range_to_a_saved_video(node_classes, models_dir, tmp_path):
    from comfy_api.latest import InputImpl

    from m3ddm_core import probe, read_audio, read_frames
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    src = _source_video(tmp_path / "src.mp4")
    video = InputImpl.VideoFromFile(str(src))
    (out,) = _run(node_classes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=model, vae=taesd_vae(),
                  **_video_inputs(start_frame=4, frame_count=17))
    assert out.get_frame_count() == 17 and out.get_frame_rate() == 25 and out.get_dimensions() == (208, 370)
    saved = tmp_path / "out.mp4"
    out.save_to(str(saved), metadata={"prompt": {"1": {"class_type": "M3DDM_OutpaintVideo"}}})
    info = probe(saved)
    assert (info.frames, info.fps, info.width, info.height) == (17, 25, 208, 370)
    audio, rate = read_audio(saved, 0, 10)
    assert rate == 16000 and abs(audio.shape[1] / rate - 17 / 25) < 0.05
    import av
    with av.open(str(saved)) as c:
        assert "M3DDM_OutpaintVideo" in c.metadata.get("prompt", "")
    y, x = 125, 0
    for s, o in zip(read_frames(src, 4, 17), read_frames(saved)):
        assert abs(o[y:y + 120, x:x + 208].astype(float) - s.astype(float)).mean() < 6  # one more H.264 generation
    components = out.get_components()
    assert components.images.shape == (17, 370, 208, 3) and components.audio["sample_rate"] == 16000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("overrides, message", [
    ({"start_frame": 30}, r"\[M3DDM_OutpaintVideo\] start frame 30 is past the end: the video has 24 frames"),
    ({"start_frame": 20, "frame_count": 5}, r"\[M3DDM_OutpaintVideo\] 5 frames from frame 20 run past the end"),
])
def test_outpaint_video_node_names_bad_ranges(node_classes, models_dir, tmp_path, overrides, message):
    from comfy_api.latest import InputImpl
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    video = InputImpl.VideoFromFile(str(_source_video(tmp_path / "src.mp4")))
    with pytest.raises(ValueError, match=message):
        _run(node_classes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=model, vae=taesd_vae(),
             **_video_inputs(**overrides))


def test_outpaint_video_node_refuses_a_file_without_video(node_classes, models_dir, tmp_path):
    from comfy_api.latest import InputImpl
    path = write_audio_only(tmp_path / "sound.m4a")
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintVideo\] the file has no video stream") as error:
        _run(node_classes["M3DDM_OutpaintVideo"], video=InputImpl.VideoFromFile(str(path)), m3ddm_model=model,
             vae=taesd_vae(), **_video_inputs())
    assert "start_frame" not in str(error.value)  # the range is not what is wrong
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintVideo\] the file is empty \(0 bytes\)"):
        _run(node_classes["M3DDM_OutpaintVideo"], video=InputImpl.VideoFromFile(str(tmp_path / "empty.mp4")),
             m3ddm_model=model, vae=taesd_vae(), **_video_inputs())


def test_outpaint_video_node_turns_a_phone_clip_upright_for_tv(node_classes, models_dir, tmp_path, caplog):
    """A portrait phone clip (stored landscape with a -90 degree display matrix) to 16:9: accepted, outpainted
    upright with its border left and right, and the IMAGE path (get_components) upright too."""
    import media_sources as media
    from comfy_api.latest import InputImpl

    from m3ddm_core import probe
    media.rotated_phone_clip(tmp_path / "phone.mp4", n=6)
    shown = media.player_frames(tmp_path / "phone.mp4")
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    with caplog.at_level("INFO", logger="M3DDM"):
        (out,) = _run(node_classes["M3DDM_OutpaintVideo"], video=InputImpl.VideoFromFile(str(tmp_path / "phone.mp4")),
                      m3ddm_model=model, vae=taesd_vae(), **_video_inputs(aspect_ratio="16:9"))
    assert "turned 90 degrees clockwise" in caplog.text
    assert out.get_dimensions() == (568, 320)
    out.save_to(str(tmp_path / "tv.mp4"))
    assert (probe(tmp_path / "tv.mp4").width, probe(tmp_path / "tv.mp4").height) == (568, 320)
    for src, got in zip(shown, media.player_frames(tmp_path / "tv.mp4")):
        assert media.psnr(got[:, 194:374], src) > 33
    assert out.get_components().images.shape == (6, 320, 568, 3)


def test_outpaint_video_node_resumes_an_interrupted_run(node_classes, models_dir, tmp_path, plugin, monkeypatch, caplog):
    """Cancelled in its third pass, queued again: only the remaining pass runs and the latents equal a fresh run's."""
    import folder_paths
    from comfy_api.latest import InputImpl
    monkeypatch.setattr(folder_paths, "get_user_directory", lambda: str(tmp_path / "user"))
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    video = InputImpl.VideoFromFile(str(_source_video(tmp_path / "src.mp4", n=40)))
    inputs = _video_inputs(steps=1)  # 40 frames, strides auto: three dense passes
    runtime, calls = plugin.nodes.runtime, {"n": 0}
    real_check = runtime.check_interrupt

    def cancel_in_third_pass():
        calls["n"] += 1
        if calls["n"] == 2 + 1:  # two passes of one step done, the third pass's step
            raise InterruptedError("cancelled")
        real_check()
    monkeypatch.setattr(runtime, "check_interrupt", cancel_in_third_pass)
    with pytest.raises(InterruptedError):
        _run(node_classes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=model, vae=taesd_vae(), **inputs)
    monkeypatch.setattr(runtime, "check_interrupt", real_check)
    with caplog.at_level("INFO", logger="M3DDM"):
        (resumed,) = _run(node_classes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=model, vae=taesd_vae(),
                          **inputs)
    assert "resuming an interrupted run: 2 of 3 passes are done" in caplog.text
    assert "sampled 1 of 3 passes (2 resumed)" in caplog.text
    (fresh,) = _run(node_classes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=model, vae=taesd_vae(), **inputs)
    assert torch.equal(resumed.outpainted.latents, fresh.outpainted.latents)


def _two_shots():
    """20 frames of the real clip, then a hard cut to 20 frames of another look (colours inverted, mirrored)."""
    first = load_clip(20)
    return torch.cat([first, (1 - first).flip(2)])


def _canvas(node_classes, frames, **shots):
    """Outpaint Canvas to 9:16 on a 128 working canvas (plumbing; the 256 numerics are the parity tests')."""
    return _run(node_classes["M3DDM_OutpaintCanvas"], images=frames, target="aspect ratio", aspect_ratio="9:16",
                width=0, height=0, pad_left=0.0, pad_right=0.0, pad_top=0.0, pad_bottom=0.0, canvas_mode="official",
                **{"working_size": 128, **shots})


def test_shots_are_previewed_on_the_canvas_and_followed_by_coarse_to_fine(node_classes, models_dir):
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    frames, vae = _two_shots(), taesd_vae()
    canvas, preview, _, cuts, _ = _canvas(node_classes, frames, shots="detect", cuts="")
    assert cuts == "20" and canvas.edit.cuts == (20,)
    assert preview.shape == (2, 128, 128, 3)  # the frames on both sides of the cut
    sampling = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=3, fps=16.0,
                    low_vram=False, strides="auto", schedule="fixed")
    c2f = node_classes["M3DDM_CoarseToFine"]
    _, followed = _run(c2f, m3ddm_model=model, vae=vae, canvas=canvas, shots="canvas", cuts="", **sampling)
    _, listed = _run(c2f, m3ddm_model=model, vae=vae, canvas=canvas, shots="list", cuts="20", **sampling)
    _, single = _run(c2f, m3ddm_model=model, vae=vae, canvas=canvas, shots="none", cuts="", **sampling)
    assert torch.equal(followed["samples"], listed["samples"])
    # the cut splits the run: the second shot is sampled on its own (another seed, its own global frames)
    assert not torch.equal(followed["samples"][20:], single["samples"][20:])
    plain, _, _, none, _ = _canvas(node_classes, frames, shots="none", cuts="")
    assert none == "" and plain.edit.cuts == ()
    with pytest.raises(ValueError, match=r"\[M3DDM_CoarseToFine\] cut \[40\] outside the video's frames 1..39") as bad:
        _run(c2f, m3ddm_model=model, vae=vae, canvas=plain, shots="list", cuts="40", **sampling)
    assert "Global Frames" not in str(bad.value)  # the global frames' fix only where they are wrong
    (global_frames,) = _run(node_classes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas)
    with pytest.raises(ValueError, match=r"\[M3DDM_CoarseToFine\] global frames cover the whole video.*set shots to "
                                         r"none\. M3DDM Encode Global Frames"):
        _run(c2f, m3ddm_model=model, vae=vae, canvas=canvas, shots="canvas", cuts="", global_frames=global_frames,
             **sampling)


def test_returning_set_ups_are_grouped_on_the_canvas_shown_by_the_preview_and_changed_by_hand(node_classes,
                                                                                              models_dir):
    """An interview cut A, B, A': the canvas groups the returning set-up (setups auto, the default) and says so;
    the Keyframe Preview lists each shot with its set-up and samples A' with A's seed and global frames; setups
    given by hand split or join shots, and a list of the wrong length is refused naming the node."""
    import numpy as np
    from constructed_edits import interview_edits

    edit = interview_edits(0)[0]
    a, b, a2 = (np.stack(edit.frames[s:s + 8]) for s in (0, edit.cuts[0], edit.cuts[1]))
    frames = torch.from_numpy(np.concatenate([a, b, a2])).float() / 255.0
    canvas, _, _, cuts, setups = _canvas(node_classes, frames, shots="list", cuts="8, 16")
    assert (cuts, setups, canvas.edit.groups) == ("8, 16", "A B A", (0, 1, 0))
    split, _, _, _, labels = _canvas(node_classes, frames, shots="list", cuts="8, 16", setups="a b c")
    assert split.edit.groups == (0, 1, 2) and labels == "A B C"
    apart, _, _, _, labels = _canvas(node_classes, frames, shots="list", cuts="8, 16", setups="none")
    assert apart.edit.groups is None and labels == "A B C"
    with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintCanvas\] setups 'A B' labels 2 shot\(s\), the video has 3"):
        _canvas(node_classes, frames, shots="list", cuts="8, 16", setups="A B")
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    sampling = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=1.0, seed=3, fps=16.0,
                    low_vram=False, strides="auto", schedule="fixed", feather=8)
    preview = node_classes["M3DDM_KeyframePreview"]
    _, numbers, state, shots = _run(preview, m3ddm_model=model, vae=taesd_vae(), canvas=canvas, **sampling)
    assert shots.splitlines() == [f"shot {k + 1} {label}: frames {8 * k}-{8 * k + 7}, key frames "
                                  + ", ".join(map(str, range(8 * k, 8 * k + 8))) for k, label in enumerate("ABA")]
    plan = state.video.plan
    assert plan.groups == (0, 1, 0) and plan.shot_passes(2)[0].seed == plan.shot_passes(0)[0].seed
    g = state.video.encoded.global_latents
    assert torch.equal(g[0], g[2]) and not torch.equal(g[0], g[1])


def test_a_dissolve_found_on_the_canvas_splits_its_shots_and_travels_with_the_canvas(node_classes):
    """shots = detect finds dissolves and fades with the cuts (one pass): the dissolve's shots are split at its
    middle, and the canvas carries it to the samplers, which blend its borders (tests/test_transitions.py)."""
    import json

    import numpy as np
    from constructed_edits import transition_edits
    from m3ddm_core import preview_canvases

    edit = transition_edits(0)[0]  # 40 + 40 frames, dissolved over 8
    frames = torch.from_numpy(np.stack(edit.frames)).float() / 255.0
    canvas, preview, _, cuts, setups = _canvas(node_classes, frames, shots="detect", cuts="")
    assert cuts == "36" and setups == "A B" and preview.shape[0] == 2
    assert [(t.kind, t.start, t.end, t.middle) for t in canvas.edit.transitions] == [("dissolve", 32, 40, 36)]
    # the preview's two frames say which shot and transition they are in, in their top left corner only
    assert [canvas.edit.caption(f) for f in (35, 36)] == ["shot 1 A, dissolve 32-39", "shot 2 B, dissolve 32-39"]
    plain = preview_canvases(frames, canvas.plan, canvas.edit.cuts)
    changed = (preview != plain).any(-1).any(0)
    rows, cols = np.nonzero(changed.numpy())
    assert rows.max() < 20 and (preview[:, :20] > 0.9).any()  # white letters on a black band
    listed, _, _, _, _ = _canvas(node_classes, frames, shots="list", cuts="36")
    assert listed.edit.transitions == ()  # cuts given by hand: no transition is looked for
    # the Quality Check of this canvas shows the dissolve (its report and plot; tests/test_quality.py: the band)
    (oh, _), (y0, _), fh = canvas.plan.output_hw, canvas.plan.content_out_yx, canvas.plan.frame_hw[0]
    output = frames[:, np.clip(np.arange(oh) - y0, 0, fh - 1)]  # a border that repeats the edge rows
    text, report_json, _ = _run(node_classes["M3DDM_QualityCheck"], images=output, canvas=canvas, strides="auto",
                                schedule="fixed")
    assert json.loads(report_json)["transitions"] == [{"kind": "dissolve", "start": 32, "end": 39}]
    assert "dissolve 32-39" in text


def test_outpaint_video_node_detects_cuts_while_it_reads_the_file(node_classes, models_dir, tmp_path, caplog):
    from comfy_api.latest import InputImpl
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    video = InputImpl.VideoFromFile(str(_source_video(tmp_path / "src.mp4", frames=_two_shots())))
    node = node_classes["M3DDM_OutpaintVideo"]
    with caplog.at_level("INFO", logger="M3DDM"):
        (detected,) = _run(node, video=video, m3ddm_model=model, vae=taesd_vae(), **_video_inputs(shots="detect"))
    assert "2 shot(s); cuts at frames [20]" in caplog.text
    (listed,) = _run(node, video=video, m3ddm_model=model, vae=taesd_vae(), **_video_inputs(shots="list", cuts="20"))
    assert torch.equal(detected.outpainted.latents, listed.outpainted.latents)
    assert detected.outpainted.latents.shape[0] == 40
    with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintVideo\] cuts must be frame numbers"):
        _run(node, video=video, m3ddm_model=model, vae=taesd_vae(), **_video_inputs(shots="list", cuts="20s"))


def test_evaluate_masks_the_borders_outpaints_them_back_and_reports_the_papers_metrics(node_classes, models_dir):
    from m3ddm_core import evaluate_frames, generated_region, resize_frames
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    frames = load_clip(17)
    report, outpainted, truth = _run(
        node_classes["M3DDM_Evaluate"], images=frames, m3ddm_model=model, vae=taesd_vae(), mask_ratio=0.25,
        direction="horizontal", paper_size=True, scheduler="ddim", steps=1, context_guidance=1.0,
        global_guidance=1.0, seed=3, fps=16.0, low_vram=False, strides="auto", schedule="fixed", working_size=128)
    assert outpainted.shape == truth.shape == (17, 256, 256, 3)
    assert torch.allclose(truth, resize_frames(frames))
    assert torch.equal(outpainted[:, :, 32:224], truth[:, :, 32:224])  # the visible 75% is kept bit-exact
    assert not torch.equal(outpainted[:, :, :32], truth[:, :, :32])  # the masked borders were generated
    metrics = evaluate_frames(outpainted, truth, generated_region((256, 256), (32, 32, 0, 0)), lpips=False)
    assert f"generated region: PSNR {metrics.region['psnr']:.2f} dB" in report
    assert metrics.frame["psnr"] > metrics.region["psnr"] and 0 < metrics.region["ssim"] < 1
    assert "horizontal, mask ratio 0.25, 256x256" in report and "FVD: not computed" in report
    with pytest.raises(ValueError, match=r"\[M3DDM_Evaluate\] mask ratio 1.5 must lie between 0 and 1"):
        _run(node_classes["M3DDM_Evaluate"], images=frames, m3ddm_model=model, vae=taesd_vae(), mask_ratio=1.5,
             direction="horizontal", paper_size=True, scheduler="ddim", steps=1, context_guidance=1.0,
             global_guidance=1.0, seed=3, fps=16.0, low_vram=False, strides="auto", schedule="fixed")


def test_the_model_family_sets_the_preprocessing_and_the_working_size_the_canvas(node_classes, models_dir, tmp_path,
                                                                                   caplog):
    """An M3DDM+ model (named so, or chosen on the loader) makes auto canvases preprocess as M3DDM+: global frames
    from the whole source frames; the working size sets the canvas and the latents."""
    import shutil

    from comfy_api.latest import InputImpl
    shutil.copytree(models_dir / "nano", models_dir / "nano-M3DDM-Plus")
    with caplog.at_level("INFO", logger="M3DDM"):
        (plus,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano-M3DDM-Plus", dtype="auto")
    assert plus.family == "m3ddm_plus" and "family m3ddm_plus (from the name" in caplog.text
    (forced,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto", family="m3ddm_plus")
    (plain,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    assert forced.family == "m3ddm_plus" and plain.family == "m3ddm"
    frames, vae = load_clip(6), taesd_vae()
    canvas, preview, mask, _, _ = _canvas(node_classes, frames, preprocessing="auto", working_size=128)
    assert preview.shape == (6, 128, 128, 3) and mask.shape == (1, 128, 128) and canvas.follows_model
    assert canvas.plan_for(plus.family).family == "m3ddm_plus" and canvas.plan_for(plain.family).family == "m3ddm"
    sampling = dict(scheduler="ddim", steps=1, context_guidance=1.0, global_guidance=2.0, seed=3, fps=16.0,
                    low_vram=False, strides="auto", schedule="fixed")
    c2f = node_classes["M3DDM_CoarseToFine"]
    _, as_plus = _run(c2f, m3ddm_model=plus, vae=vae, canvas=canvas, **sampling)
    _, as_m3ddm = _run(c2f, m3ddm_model=plain, vae=vae, canvas=canvas, **sampling)
    assert as_plus["samples"].shape[-2:] == (16, 16)
    assert not torch.equal(as_plus["samples"], as_m3ddm["samples"])  # other global frames, same weights
    pinned, _, _, _, _ = _canvas(node_classes, frames, preprocessing="m3ddm_plus", working_size=128)
    _, pinned_plus = _run(c2f, m3ddm_model=plain, vae=vae, canvas=pinned, **sampling)
    assert torch.equal(pinned_plus["samples"], as_plus["samples"])  # the canvas's choice overrides the model's
    (global_frames,) = _run(node_classes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas)  # auto: M3DDM's
    with pytest.raises(ValueError, match=r"\[M3DDM_CoarseToFine\] the global frames were encoded with m3ddm "
                                         r"preprocessing, the model samples with m3ddm_plus"):
        _run(c2f, m3ddm_model=plus, vae=vae, canvas=canvas, global_frames=global_frames, **sampling)
    # given the model, Encode Global Frames makes them as the model's family wants (the short-clip workflow)
    (plus_global,) = _run(node_classes["M3DDM_EncodeGlobalFrames"], vae=vae, canvas=canvas, m3ddm_model=plus)
    _, given = _run(c2f, m3ddm_model=plus, vae=vae, canvas=canvas, global_frames=plus_global, **sampling)
    assert torch.equal(given["samples"], as_plus["samples"])
    video = InputImpl.VideoFromFile(str(_source_video(tmp_path / "src.mp4", n=6)))
    (out,) = _run(node_classes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=plus, vae=vae,
                  **_video_inputs(working_size=192))
    assert out.outpainted.plan.family == "m3ddm_plus" and out.outpainted.latents.shape[-2:] == (24, 24)
    # listed cuts: each shot takes its global frames from its own source frames, encoded while reading
    (shots,) = _run(node_classes["M3DDM_OutpaintVideo"], video=video, m3ddm_model=plus, vae=vae,
                    **_video_inputs(working_size=128), shots="list", cuts="3")
    assert shots.outpainted.latents.shape == (6, 4, 16, 16)


# -- the VIDEO contract of current ComfyUI on M3DDM Outpaint Video's output ------------------------------------
def _outpainted(node_classes, tmp_path, n=20, **overrides):
    from comfy_api.latest import InputImpl
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    src = _source_video(tmp_path / "src.mp4", n=n)
    (out,) = _run(node_classes["M3DDM_OutpaintVideo"], video=InputImpl.VideoFromFile(str(src)), m3ddm_model=model,
                  vae=taesd_vae(), **_video_inputs(**overrides))
    return out


def _x264_settings(path) -> str:
    """The options x264 writes into the stream it encodes (its SEI message): what the encoder was really given."""
    data = path.read_bytes()
    start = data.index(b"x264 - core")
    return data[start:data.index(b"\x00", start)].decode(errors="replace")


def test_the_output_has_every_method_core_video_requires_and_accepts_what_save_video_passes(node_classes, plugin):
    import inspect

    from comfy_api.latest import Input
    video = sys.modules[f"{plugin.__name__}.nodes.video_node"].OutpaintedVideo
    assert not video.__abstractmethods__  # instantiable: as_trimmed, save_to, get_components all there
    for name in Input.Video.__abstractmethods__:
        core = set(inspect.signature(getattr(Input.Video, name)).parameters)
        ours = set(inspect.signature(getattr(video, name)).parameters)
        assert core <= ours, (name, core - ours)
    # everything core Save Video passes, 0.33's call and 0.38's (colour space, preset), binds
    inspect.signature(video.save_to).bind(None, "out.mp4", format="auto", codec="h264", metadata=None,
                                          bit_depth=None, crf=23.0, color_space="sRGB", preset="ultrafast")


def test_save_to_honours_container_codec_crf_preset_bit_depth_and_colour_space(node_classes, models_dir, tmp_path,
                                                                                 caplog):
    import av
    from comfy_api.latest import Types
    out = _outpainted(node_classes, tmp_path, n=12)

    def save(name, **options):
        path = tmp_path / name
        out.save_to(str(path), **options)
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            codec = "av1" if "AV1" in stream.codec_context.codec.long_name else stream.codec_context.name
            return path, (c.format.name, codec, stream.codec_context.format.name,
                          stream.frames or sum(1 for _ in c.demux(stream) if _.size))

    # ComfyUI 0.33's Save Video: enum format, codec as a string, crf from its re-encode option
    path, facts = save("auto.mp4", format=Types.VideoContainer("auto"), codec="h264", metadata=None, crf=40.0)
    assert facts[:3] == ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "yuv420p") and facts[3] == 12
    assert "crf=40.0" in _x264_settings(path) and "subme=7" in _x264_settings(path)  # medium preset
    default, _ = save("default.mp4")
    assert "crf=18.0" in _x264_settings(default)  # no crf asked: the pack's near-lossless default
    fast, _ = save("fast.mp4", crf=23.0, preset="ultrafast", color_space="sRGB")  # what 0.38 may pass
    assert "subme=0" in _x264_settings(fast) and "crf=23.0" in _x264_settings(fast)
    _, facts = save("deep.mkv", format="mkv", codec="h264", bit_depth=10)
    assert facts[:3] == ("matroska,webm", "h264", "yuv420p10le") and facts[3] == 12
    _, facts = save("av1.mp4", codec="av1", crf=45.0)
    assert facts[:2] == ("mov,mp4,m4a,3gp,3g2,mj2", "av1")
    with caplog.at_level("WARNING", logger="M3DDM"):
        save("newer.mp4", crf=30.0, tone_map="hable")  # a later core's option: written without it, and said so
    assert "tone_map='hable'" in caplog.text
    for options, message in [({"format": "webm"}, "choose format auto, mp4 or mkv"),
                             ({"codec": "vp9"}, "choose codec auto, h264 or av1"),
                             ({"bit_depth": 12}, "choose bit depth 8 or 10"),
                             ({"crf": 60.0}, "outside h264's 0-51"),
                             ({"preset": "6"}, "no H.264 preset"),
                             ({"color_space": "HDR"}, "choose colour space auto or sRGB")]:
        with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintVideo\] .*" + message):
            save("refused.mp4", **options)
    assert not (tmp_path / "refused.mp4").exists()
    with pytest.raises(ValueError, match=r"\[M3DDM_OutpaintVideo\] writing the video failed: .*nothing was left "
                                         r"behind. Free disk space or choose another output folder"):
        save("gone/out.mp4")
    assert not (tmp_path / "gone").exists()


def test_trimming_the_output_keeps_it_lazy_and_picks_the_frames_core_would(node_classes, models_dir, tmp_path):
    import importlib

    out = _outpainted(node_classes, tmp_path, n=20)  # 20 frames at 25 fps: frame i is shown at i/25 s
    every = list(out.outpainted.frames())
    trimmed = out.as_trimmed(0.2, 0.4)
    assert trimmed.get_frame_count() == 10 and abs(trimmed.get_duration() - 0.4) < 1e-9
    # a view of the same latents: nothing decoded, nothing copied
    assert trimmed.outpainted.latents.untyped_storage().data_ptr() == out.outpainted.latents.untyped_storage().data_ptr()
    assert all((a == b).all() for a, b in zip(trimmed.outpainted.frames(), every[5:15], strict=True))
    assert out.as_trimmed(-0.2).get_frame_count() == 5  # counted back from the end
    assert out.as_trimmed(0.6, 1.0).get_frame_count() == 5  # what is left
    assert out.as_trimmed(0.6, 1.0, strict_duration=True) is None  # ... unless the duration is required
    assert out.as_trimmed(5.0) is None and out.as_trimmed(0.0, -1.0) is None
    import dataclasses  # shots and their set-ups follow the trim (the Quality Check reads them)
    edited = dataclasses.replace(out.outpainted, cuts=(8, 14), groups=(0, 1, 0))
    assert (edited.trimmed(0.2, 0.4).cuts, edited.trimmed(0.2, 0.4).groups) == ((3, 9), (0, 1, 0))
    assert (edited.trimmed(0.4, 0.2).cuts, edited.trimmed(0.4, 0.2).groups) == ((4,), (1, 0))
    # core's own Trim Video node on it, then saved
    slicer = importlib.import_module("comfy_extras.nodes_video").VideoSlice
    (sliced,) = _run(slicer, video=out, start_time=0.4, duration=0.2, strict_duration=True)
    assert sliced.get_frame_count() == 5
    sliced.save_to(str(tmp_path / "sliced.mp4"))
    from m3ddm_core import probe
    assert probe(tmp_path / "sliced.mp4").frames == 5


def test_a_trimmed_source_video_is_outpainted_only_where_it_is_trimmed(node_classes, models_dir, tmp_path):
    from comfy_api.latest import InputImpl
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    src = InputImpl.VideoFromFile(str(_source_video(tmp_path / "src.mp4", n=20)))
    trimmed = src.as_trimmed(0.16, 0.4)  # core Trim Video: frames 4..13 of the file (at 25 fps)
    (out,) = _run(node_classes["M3DDM_OutpaintVideo"], video=trimmed, m3ddm_model=model, vae=taesd_vae(),
                  **_video_inputs(start_frame=2))
    assert (out.outpainted.start, out.get_frame_count()) == (6, 8)  # start_frame counts inside the trim
    with pytest.raises(ValueError, match=r"start frame 10 is past the end: the trimmed video \(source frames "
                                         r"4-13\) has 10 frames"):
        _run(node_classes["M3DDM_OutpaintVideo"], video=trimmed, m3ddm_model=model, vae=taesd_vae(),
             **_video_inputs(start_frame=10))


@pytest.mark.parametrize("patcher", ["core", "dynamic vram"])
def test_the_model_is_managed_as_core_manages_its_own(node_classes, models_dir, tmp_path, monkeypatch, patcher):
    """Built into the patcher current core builds its models with (comfy.model_patcher.CoreModelPatcher, which
    ComfyUI's start-up turns into the dynamic-VRAM patcher where that is on), loaded by comfy.model_management for
    sampling, unloaded, and freed: nothing of the pack keeps the weights alive afterwards."""
    import gc
    import weakref

    import comfy.model_management as mm
    import comfy.model_patcher as mp

    class Core(mp.ModelPatcher):  # marks what the loader built the model with
        pass
    monkeypatch.setattr(mp, "CoreModelPatcher", Core if patcher == "core" else mp.ModelPatcherDynamic)
    (model,) = _run(node_classes["M3DDM_LoadModel"], model_name="nano", dtype="auto")
    # the dynamic patcher hands a CPU model to the plain one, as it does core's own models
    assert type(model.patcher) is (Core if patcher == "core" else mp.ModelPatcher)
    assert not model.patcher.is_dynamic()
    src = _source_video(tmp_path / "src.mp4", n=12)
    from comfy_api.latest import InputImpl
    (out,) = _run(node_classes["M3DDM_OutpaintVideo"], video=InputImpl.VideoFromFile(str(src)), m3ddm_model=model,
                  vae=taesd_vae(), **_video_inputs())
    assert out.get_frame_count() == 12
    assert any(loaded.model is model.patcher for loaded in mm.current_loaded_models)  # loaded by ComfyUI
    unet = weakref.ref(model.patcher.model)
    mm.unload_all_models()
    assert not any(loaded.model is model.patcher for loaded in mm.current_loaded_models)
    del model, out
    gc.collect()
    mm.cleanup_models_gc()
    assert unet() is None  # freed


_API_PROBE = r"""
import importlib, inspect, json, sys
sys.path.insert(0, sys.argv[1])
import comfy.cli_args
comfy.cli_args.args.cpu = True
missing = []
for module, chain, kwargs in json.loads(sys.stdin.read()):
    try:
        target = importlib.import_module(module)
        for part in [p for p in chain.split(".") if p]:
            if not hasattr(target, part) and inspect.ismodule(target):  # a submodule not imported yet
                importlib.import_module(f"{target.__name__}.{part}")
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        missing.append(f"{module}:{chain} ({exc})")
        continue
    if kwargs and callable(target):
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            missing += [f"{module}:{chain}({k}=)" for k in kwargs if k not in params]
print(json.dumps(missing))
"""


def _comfy_api_uses() -> list:
    """Every name of ComfyUI (comfy_api.latest, comfy, comfy_extras, folder_paths) the node layer reaches, with
    the keywords it calls it with: ``(module, attribute chain, keywords)``."""
    import ast
    uses = set()
    for path in sorted((REPO / "nodes").glob("*.py")):
        tree = ast.parse(path.read_text())
        roots = {}  # local name -> (module, attribute prefix)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in COMFY_PACKAGES:
                for a in node.names:
                    roots[a.asname or a.name] = (node.module, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in COMFY_PACKAGES:
                        roots[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], "")
        uses.update((module, name, ()) for module, name in roots.values())
        calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            parts, base = [], node
            while isinstance(base, ast.Attribute):
                parts.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in roots:
                module, prefix = roots[base.id]
                call = calls.get(id(node))
                kwargs = tuple(sorted(k.arg for k in call.keywords if k.arg)) if call else ()
                uses.add((module, ".".join(p for p in [prefix, *parts] if p), kwargs))
    return sorted(uses)


COMFY_PACKAGES = {"comfy", "comfy_api", "comfy_execution", "comfy_extras", "folder_paths", "latent_preview"}


@pytest.mark.parametrize("which", ["current", "floor"])
def test_every_comfyui_feature_the_nodes_use_exists_in_the_floor_and_the_current_release(which):
    """The V3 schema features, VIDEO types and comfy modules the node layer names (with the keywords it passes)
    exist in ComfyUI 0.3.75 (pyproject's requires-comfyui) and 0.33.0, each checked in its own interpreter."""
    import json
    import subprocess

    from comfy_env import COMFY_DIR, FLOOR_COMFY_DIR, require_comfyui
    require_comfyui()
    comfy_dir = COMFY_DIR if which == "current" else FLOOR_COMFY_DIR
    if not (comfy_dir / "main.py").is_file():
        pytest.fail(f"no ComfyUI at {comfy_dir}; run bash scripts/setup_env.sh")
    uses = _comfy_api_uses()
    # the scan sees calls and their keywords, and the model management the nodes call
    assert any(chain == "io.Combo.Input" and "tooltip" in kw for _, chain, kw in uses), uses
    assert ("comfy.model_management", "load_models_gpu", ("force_full_load", "memory_required")) in uses, uses
    run = subprocess.run([sys.executable, "-c", _API_PROBE, str(comfy_dir)], input=json.dumps(uses),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [], f"missing in {comfy_dir.name}"
