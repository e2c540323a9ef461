"""Resumable runs: finished passes on disk, an interrupted run re-run does only the rest and gives the same video."""
import pytest
import torch

from conftest import MICRO_CONFIG
from helpers import TinyVAE, load_clip
from m3ddm_core import (PassStore, SampleSettings, build_unet, content_hash, model_fingerprint, outpaint_video,
                        run_key)

FAST = SampleSettings(steps=1, s1=1.0, s2=1.0)


class Stop(Exception):
    pass


def _run(micro_model, frames, plan, store=None, stop_in_pass=None, cuts=(), seen=None):
    vae = TinyVAE()
    sampled = []

    def callback(info):
        sampled.append(info["pass"])
        if seen is not None:
            seen.append(info)

    def check():
        if stop_in_pass is not None and sampled and sampled[-1] == stop_in_pass - 1:
            raise Stop()  # before the first step of pass ``stop_in_pass``

    result = outpaint_video(micro_model, frames, plan, vae.encode, vae.decode, fps=24.0, settings=FAST, seed=4, callback=callback,
                            check_interrupt=check, store=store, cuts=cuts)
    return result, sampled


def test_an_interrupted_run_resumes_with_the_remaining_passes_and_equals_a_fresh_run(micro_model, plan, tmp_path):
    frames = load_clip(40)  # 3 dense passes
    fresh, all_passes = _run(micro_model, frames, plan)
    assert all_passes == [0, 1, 2]
    store = PassStore(tmp_path, "run")
    with pytest.raises(Stop):
        _run(micro_model, frames, plan, store, stop_in_pass=2)
    assert store.done() == [0, 1]  # the finished passes are on disk
    resumed, sampled = _run(micro_model, frames, plan, PassStore(tmp_path, "run"))
    assert sampled == [2] and resumed.resumed_passes == [0, 1] and resumed.denoising_steps == 1
    assert torch.equal(resumed.latents, fresh.latents) and torch.equal(resumed.canvases, fresh.canvases)
    assert not (tmp_path / "run").exists()  # removed after success


def test_a_run_split_into_shots_resumes_in_its_second_shot_and_numbers_passes_over_the_whole_video(
        micro_model, plan, tmp_path):
    frames = load_clip(50)
    frames[20:] = frames[20:].flip(2)
    seen = []
    fresh, all_passes = _run(micro_model, frames, plan, cuts=[20], seen=seen)
    # shot 1 (20 frames) and shot 2 (30 frames): 2 dense passes each, numbered 0..3 over the video
    assert all_passes == [0, 1, 2, 3] and {i["passes"] for i in seen} == {4}
    assert [i["frames"] for i in seen] == [list(p.frames) for p in fresh.passes]  # whole-video frame numbers
    assert all(f >= 20 for i in seen[2:] for f in i["frames"])
    store = PassStore(tmp_path, "run")
    with pytest.raises(Stop):
        _run(micro_model, frames, plan, store, stop_in_pass=3, cuts=[20])
    assert store.done() == [0, 1, 2]
    assert set(store.load(2)) == set(fresh.passes[2].distinct_frames)  # stored under whole-video frame numbers
    resumed, sampled = _run(micro_model, frames, plan, PassStore(tmp_path, "run"), cuts=[20])
    assert sampled == [3] and resumed.resumed_passes == [0, 1, 2]
    assert torch.equal(resumed.latents, fresh.latents)


def test_a_damaged_or_foreign_pass_file_is_recomputed(micro_model, plan, tmp_path):
    frames = load_clip(40)
    fresh, _ = _run(micro_model, frames, plan)
    store = PassStore(tmp_path, "run")
    store.save(0, {0: torch.zeros(4, 16, 16)})  # not the frames of pass 0
    store.save(1, {15: torch.zeros(4, 16, 16)})
    store._path(1).write_bytes(b"not a safetensors file")
    result, sampled = _run(micro_model, frames, plan, store)
    assert sampled == [0, 1, 2] and torch.equal(result.latents, fresh.latents)


def test_the_key_changes_with_anything_the_latents_depend_on(micro_model):
    frames = load_clip(5)
    base = dict(video=content_hash(frames), model=model_fingerprint(micro_model), settings=FAST, fps=24.0, strides="auto",
                latents=torch.ones(2, 3))
    key = run_key(**base)
    assert run_key(**dict(base)) == key
    other = frames.clone()
    other[3, 51, 101, 0] += 0.001  # one channel of one pixel of one frame
    for change in (dict(video=content_hash(other)), dict(settings=SampleSettings(steps=2, s1=1.0, s2=1.0)),
                   dict(fps=25.0), dict(strides="15,5,1"), dict(latents=torch.ones(2, 3) * 2)):
        assert run_key(**dict(base, **change)) != key, change
    torch.manual_seed(1)
    assert model_fingerprint(build_unet(MICRO_CONFIG)) != base["model"]
    tuned = build_unet(MICRO_CONFIG)
    tuned.load_state_dict(micro_model.state_dict())
    assert model_fingerprint(tuned) == base["model"]
    with torch.no_grad():  # a fine-tune that only changed an inner layer
        tuned.mid_block.resnets[0].conv1.spatial_conv.weight.view(-1)[0] += 0.01
    assert model_fingerprint(tuned) != base["model"]


def test_the_store_stays_bounded_dropping_the_oldest_runs(tmp_path):
    import os
    latents = {f: torch.zeros(4, 32, 32) for f in range(16)}  # 256 KiB per pass
    for i, name in enumerate(["a", "b", "c"]):
        PassStore(tmp_path, name, max_bytes=300_000).save(0, latents)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    PassStore(tmp_path, "d", max_bytes=300_000).save(0, latents)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "d"]


def test_a_store_that_cannot_be_written_costs_only_the_resume(micro_model, plan, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")  # the store's root cannot be created below a file
    fresh, _ = _run(micro_model, load_clip(20), plan)
    with caplog.at_level("WARNING", logger="M3DDM"):
        result, sampled = _run(micro_model, load_clip(20), plan, PassStore(blocker / "store", "run"))
    assert sampled == [0, 1] and torch.equal(result.latents, fresh.latents)
    assert "will not be resumable" in caplog.text
