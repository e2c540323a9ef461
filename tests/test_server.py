"""Integration: the example workflows on the session's real ComfyUI server (HTTP API), with test weights written
there (tests/comfy_env.start_test_server): a tiny random-weight M3DDM, the core 'taesd' VAE with random weights and a
tiny random 2x upscale model -- real files in a temporary models folder, loaded by real loader nodes. Marked server
and slow (tests/conftest.py); CI runs them too.
"""
import json
import sys
from pathlib import Path

import pytest
import torch

from comfy_env import DEMO_CLIP as CLIP, REPO, TEST_MODEL, TEST_UPSCALER, WORKFLOWS
from helpers import original_region_psnr

sys.path.insert(0, str(REPO / "scripts"))
from comfy_harness import workflow_to_api  # noqa: E402

# Plumbing runs: a 128 working canvas and one guidance branch (s1 = s2 = 1). The guided sampler itself is checked
# by the parity tests; one end-to-end run (the streaming workflow) keeps the official 256 canvas and both scales.
FAST = {"steps": 2, "seed": 7, "context_guidance": 1.0, "global_guidance": 1.0}
PLUMBING_SIZE = 128
SIZED = ("M3DDM_OutpaintCanvas", "M3DDM_OutpaintVideo")


@pytest.fixture(scope="module")
def server(comfy_server):
    return comfy_server


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def load_prompt(name: str, object_info: dict, sampler_title: str, extra: dict | None = None,
                working_size: int = PLUMBING_SIZE) -> dict:
    """The shipped workflow as an API prompt with the test models, ``FAST`` sampling and ``working_size``."""
    wf = json.loads((WORKFLOWS / name).read_text())
    overrides = {"Load M3DDM Model": {"model_name": TEST_MODEL}, "Load VAE": {"vae_name": "taesd"},
                 sampler_title: FAST}
    overrides.update(extra or {})
    prompt = workflow_to_api(wf, object_info, overrides)
    for node in prompt.values():
        if node["class_type"] in SIZED:
            node["inputs"]["working_size"] = working_size
    return prompt


def saved_video(server, history: dict, prefix: str = "") -> Path:
    """The one mp4 the run saved (whose name starts with ``prefix``)."""
    assert history["status"]["status_str"] == "success", json.dumps(history["status"])[:3000]
    files = [f for out in history["outputs"].values() for key in ("images", "videos", "animated")
             for f in out.get(key, [])]
    mp4 = [f for f in files if isinstance(f, dict) and f["filename"].endswith(".mp4")
           and f["filename"].startswith(prefix)]
    assert len(mp4) == 1, files
    return server.output / mp4[0]["subfolder"] / mp4[0]["filename"]


def video_facts(path: Path) -> dict:
    import av
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        return {"frames": frames, "size": (v.codec_context.width, v.codec_context.height),
                "audio": len(c.streams.audio)}


def test_streaming_workflow_keeps_count_fps_audio_and_the_original_pixels(server, object_info, tmp_path):
    """Workflow (d): Load Video -> M3DDM Outpaint Video -> Save Video, the output composited while it is written."""
    from m3ddm_core import probe, read_audio
    prompt = load_prompt("m3ddm_long_video_streaming.json", object_info, "M3DDM Outpaint Video",
                         {"M3DDM Outpaint Video": {"steps": 1, "seed": 7, "context_guidance": 2.0,
                                                   "global_guidance": 4.0}}, working_size=256)
    path = saved_video(server, server.run(prompt, timeout=1200))
    src, out = probe(CLIP), probe(path)
    assert (out.frames, out.fps) == (src.frames, src.fps) == (33, 16)
    assert (out.width, out.height) == (208, 370)  # 208x120 landscape -> 9:16 portrait
    src_audio, out_audio = read_audio(CLIP, 0, 3600), read_audio(path, 0, 3600)
    expected = min(src_audio[0].shape[1] / src_audio[1], src.duration)
    assert out_audio[1] == src_audio[1] and abs(out_audio[0].shape[1] / out_audio[1] - expected) < 0.05
    for got, tolerance in original_region_psnr(CLIP, path, ((370, 208), (125, 0)), tmp=tmp_path):
        assert got > 30 and got >= tolerance - 1.0, (got, tolerance)
    assert not list(path.parent.glob(".*.partial*"))


def test_streaming_workflow_with_an_upscale_model_upscales_the_border_chunk_by_chunk(server, object_info, tmp_path):
    """Workflow (d) with core *Load Upscale Model* wired into Outpaint Video: the random x2 upscaler changes the
    border (compared with the same run without it), the original region and the frame count stay."""
    from m3ddm_core import probe, read_frames
    settings = {"M3DDM Outpaint Video": dict(FAST, seed=11)}
    plain = load_prompt("m3ddm_long_video_streaming.json", object_info, "M3DDM Outpaint Video", settings)
    upscaled = load_prompt("m3ddm_long_video_streaming.json", object_info, "M3DDM Outpaint Video", settings)
    node = next(k for k, v in upscaled.items() if v["class_type"] == "M3DDM_OutpaintVideo")
    upscaled["90"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": TEST_UPSCALER}}
    upscaled[node]["inputs"]["upscale_model"] = ["90", 0]
    paths = [saved_video(server, server.run(p, timeout=1200)) for p in (plain, upscaled)]
    assert probe(paths[1]).frames == 33 and (probe(paths[1]).width, probe(paths[1]).height) == (208, 370)
    for got, tolerance in original_region_psnr(CLIP, paths[1], ((370, 208), (125, 0)), tmp=tmp_path):
        assert got > 30 and got >= tolerance - 1.0, (got, tolerance)
    a, b = (next(read_frames(p, 0, 1)).astype(float) for p in paths)
    assert abs(a[:100] - b[:100]).mean() > 5  # the border went through the upscaler
    assert abs(a[135:235] - b[135:235]).mean() < 2  # the original region did not


def test_bad_input_is_an_execution_error_naming_our_node_and_the_server_lives_on(server, object_info):
    # a cut that only the frames can show to be wrong: an execution error naming the node
    prompt = load_prompt("m3ddm_long_video_coarse_to_fine.json", object_info, "M3DDM Coarse-to-Fine Outpaint",
                         {"M3DDM Outpaint Canvas": {"shots": "list", "cuts": "100000"}})
    history = server.run(prompt, timeout=600)
    assert history["status"]["status_str"] == "error"
    errors = [m[1] for m in history["status"]["messages"] if m[0] == "execution_error"]
    assert errors and errors[0]["node_type"] == "M3DDM_OutpaintCanvas"
    assert "outside the video's frames" in errors[0]["exception_message"]
    # a typo in a text input is refused when the prompt is queued, before any node runs, naming node and input
    typo = load_prompt("m3ddm_long_video_coarse_to_fine.json", object_info, "M3DDM Coarse-to-Fine Outpaint",
                       {"M3DDM Outpaint Canvas": {"aspect_ratio": "16/9"}})
    canvas_id = next(k for k, v in typo.items() if v["class_type"] == "M3DDM_OutpaintCanvas")
    status, body = server.queue(typo)
    assert status == 400, body
    reasons = body["node_errors"][canvas_id]["errors"]
    assert len(reasons) == 1 and reasons[0]["extra_info"]["input_name"] == "aspect_ratio", reasons  # once, under it
    assert reasons[0]["details"].startswith("aspect_ratio - aspect ratio '16/9' is not of the form W:H"), reasons
    # every missing model of a workflow is named at once, when the prompt is queued, ours with where to get it
    missing = load_prompt("m3ddm_long_video_coarse_to_fine.json", object_info, "M3DDM Coarse-to-Fine Outpaint",
                          {"Load M3DDM Model": {"model_name": "M3DDM-Video-Outpainting"},
                           "Load VAE": {"vae_name": "another-vae.safetensors"}})  # not among the placeholders
    status, body = server.queue(missing)
    assert status == 400, body
    errors = {missing[k]["class_type"]: v["errors"] for k, v in body["node_errors"].items()}
    assert set(errors) == {"M3DDM_LoadModel", "VAELoader"}, errors
    assert len(errors["M3DDM_LoadModel"]) == 1 and "Hugging Face" in errors["M3DDM_LoadModel"][0]["details"]
    assert errors["M3DDM_LoadModel"][0]["extra_info"]["input_name"] == "model_name"
    # a prompt missing a required input is refused at validation, naming the node
    broken = load_prompt("m3ddm_long_video_coarse_to_fine.json", object_info, "M3DDM Coarse-to-Fine Outpaint")
    canvas_id = next(k for k, v in broken.items() if v["class_type"] == "M3DDM_OutpaintCanvas")
    del broken[canvas_id]["inputs"]["images"]
    status, body = server.queue(broken)
    assert status == 400 and canvas_id in body.get("node_errors", {})
    assert server.proc.poll() is None and server.get("/system_stats")["system"]["comfyui_version"]  # still serving


def _saved_latent(server, history: dict):
    from safetensors.torch import load_file
    assert history["status"]["status_str"] == "success", json.dumps(history["status"])[:3000]
    files = [f for out in history["outputs"].values() for f in out.get("latents", []) if isinstance(f, dict)]
    assert len(files) == 1, history["outputs"]
    return load_file(str(server.output / files[0]["subfolder"] / files[0]["filename"]))["latent_tensor"]


def _interrupt_once_stored(server, prompt, passes: int) -> dict:
    """Queue ``prompt``, interrupt it once its first ``passes`` passes are in the resume store, wait for the end."""
    import time
    store = server.user_directory / "m3ddm_resume"
    status, body = server.queue(prompt)
    assert status == 200, body
    t0 = time.time()
    while not list(store.glob(f"*/pass_{passes - 1:05d}.safetensors")):
        assert time.time() - t0 < 600, f"pass {passes - 1} was never stored"
        time.sleep(0.05)
    server.post("/interrupt", {})
    return server.wait(body["prompt_id"], timeout=600)


def _drop_comfyui_caches(server) -> None:
    """Make the next prompt run every node again. ComfyUI applies /free in its worker only after the next prompt
    (or a 10 s idle wait), so a cheap prompt goes first and the caches are reset before the one that matters."""
    server.post("/free", {"unload_models": True, "free_memory": True})
    history = server.run({"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                          "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0],
                                                                        "filename_prefix": "m3ddm/cache_reset"}}},
                         timeout=120)
    assert history["status"]["status_str"] == "success"


def _latent_prompt(object_info, steps: int, seed: int, prefix: str) -> dict:
    """The long-video workflow ending in SaveLatent: compared on the sampler's latents, because the mp4 encoder
    itself is not bit-reproducible."""
    prompt = load_prompt("m3ddm_long_video_coarse_to_fine.json", object_info, "M3DDM Coarse-to-Fine Outpaint",
                         {"M3DDM Coarse-to-Fine Outpaint": dict(FAST, steps=steps, seed=seed)})
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "M3DDM_CoarseToFine")
    prompt = {k: v for k, v in prompt.items() if v["class_type"] not in ("SaveVideo", "CreateVideo")}
    prompt["99"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 1], "filename_prefix": prefix}}
    return prompt


def test_a_run_cancelled_in_its_third_pass_resumes_with_only_the_remaining_pass(server, object_info):
    """The 33-frame clip takes 3 dense passes. Cancel (ComfyUI's interrupt, as the Cancel button sends it) once two
    are on disk: the run stops as interrupted, naming the node; queued again, it loads those two, samples only the
    third, and equals an uninterrupted run; its stored passes are then removed."""
    prompt = _latent_prompt(object_info, 6, 11, "m3ddm/resumed")
    store = server.user_directory / "m3ddm_resume"
    history = _interrupt_once_stored(server, prompt, 2)
    assert history["status"]["status_str"] == "error"
    interrupted = [m[1] for m in history["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted and interrupted[0]["node_type"] == "M3DDM_CoarseToFine"
    runs = [d for d in store.iterdir() if d.is_dir()]
    assert len(runs) == 1 and sorted(p.name for p in runs[0].glob("pass_*")) == \
        ["pass_00000.safetensors", "pass_00001.safetensors"]

    log_before = len(server.log())
    resumed = _saved_latent(server, server.run(prompt, timeout=1200))
    log = server.log()[log_before:]
    assert "resuming an interrupted run: 2 of 3 passes are done" in log
    assert "sampled 1 of 3 passes (2 resumed)" in log
    assert not runs[0].exists()  # removed after success

    _drop_comfyui_caches(server)
    prompt["99"]["inputs"]["filename_prefix"] = "m3ddm/uninterrupted"
    log_before = len(server.log())
    fresh = _saved_latent(server, server.run(prompt, timeout=1200))
    assert "sampled 3 of 3 passes (0 resumed)" in server.log()[log_before:]
    assert resumed.shape == (33, 4, 16, 16) and torch.equal(resumed, fresh)


def test_workflow_templates_lists_every_workflow_of_the_pack(server):
    """Workflow -> Browse Templates: ComfyUI lists each pack's workflows/*.json by its custom_nodes folder name
    (names without ".json") and serves the files under /api/workflow_templates/<folder>/ for the frontend."""
    from comfy_harness import PLUGIN_DIR_NAME  # the folder name the harness links the repo in as
    on_disk = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    assert {"m3ddm_short_clip_16x9_to_9x16", "m3ddm_long_video_coarse_to_fine", "m3ddm_upscale_chain"} <= set(on_disk)
    templates = server.get("/workflow_templates")
    assert sorted(templates.get(PLUGIN_DIR_NAME, [])) == on_disk, templates
    for name in on_disk:
        served = server.get(f"/api/workflow_templates/{PLUGIN_DIR_NAME}/{name}.json")
        assert served == json.loads((WORKFLOWS / f"{name}.json").read_text()), name


def test_keyframe_workflow_previews_then_continues_to_the_coarse_to_fine_result(server, object_info):
    """Workflow (e): the key frames first (previewed), then M3DDM Continue: the same latents as workflow (b)'s
    Coarse-to-Fine with the same settings, the video saved with every frame. One prompt with Continue's review gate
    open (render on); the two Runs of the gate are tests/test_frontend.py's, edited key frames
    tests/test_nodes.py's."""
    prompt = load_prompt("m3ddm_keyframes_preview_continue.json", object_info, "M3DDM Keyframe Preview",
                         {"M3DDM Continue": {"render": True}})
    cont = next(k for k, v in prompt.items() if v["class_type"] == "M3DDM_Continue")
    prompt["99"] = {"class_type": "SaveLatent", "inputs": {"samples": [cont, 1], "filename_prefix": "m3ddm/from_keys"}}
    history = server.run(prompt, timeout=1200)
    facts = video_facts(saved_video(server, history, "outpaint_from_keyframes"))
    assert facts["frames"] == 33 and facts["audio"] == 1
    images = [f for out in history["outputs"].values() for f in out.get("images", [])]
    assert len(images) >= 3  # the key frames (0, 15, 30 ...) and the quality plot
    from_keys = _saved_latent(server, history)
    _drop_comfyui_caches(server)
    log_before = len(server.log())
    whole = _saved_latent(server, server.run(_latent_prompt(object_info, FAST["steps"], FAST["seed"],
                                                            "m3ddm/whole"), timeout=1200))
    assert "sampled 3 of 3 passes (0 resumed)" in server.log()[log_before:]  # nothing taken from the preview's run
    assert torch.equal(from_keys, whole)
