"""A frame batch with its canvas (pipeline/frame_canvas.py): the preprocessing rule, the source and global-frame
checks, and a run prepared as the canvas is cut."""
import dataclasses

import pytest
import torch

from helpers import TinyVAE, load_clip
from m3ddm_core import (Edit, FrameCanvas, GlobalFramesError, SampleSettings, fingerprint, plan_canvas, prepare,
                        preprocessing_family)


@pytest.fixture(scope="module")
def frames():
    return load_clip(20)


def test_auto_preprocessing_follows_the_model_and_a_choice_pins_it():
    assert preprocessing_family("auto") == "m3ddm"  # no model yet: M3DDM's
    assert preprocessing_family("auto", "m3ddm_plus") == "m3ddm_plus"
    assert preprocessing_family("m3ddm", "m3ddm_plus") == "m3ddm"
    assert preprocessing_family("m3ddm_plus", "m3ddm") == "m3ddm_plus"


def test_a_canvas_on_auto_samples_with_the_models_family_and_a_pinned_one_with_its_own(frames, plan):
    auto, pinned = FrameCanvas.of(frames, plan, preprocessing="auto"), FrameCanvas.of(frames, plan)
    assert auto.plan_for("m3ddm_plus") == dataclasses.replace(plan, family="m3ddm_plus")
    assert auto.plan_for(None) == plan and auto.plan_for("m3ddm") == plan
    assert pinned.plan_for("m3ddm_plus") == plan
    assert auto.num_frames == 20 and auto.video_id == fingerprint(frames)


def test_frames_other_than_the_canvases_are_refused(frames, plan):
    canvas = FrameCanvas.of(frames, plan)
    canvas.check_source(frames.clone())  # equal frames pass
    for other in (frames.flip(0), frames[:19], frames * 0.5):
        with pytest.raises(ValueError, match="not the ones the canvas was made from"):
            canvas.check_source(other)


def test_global_frames_must_come_from_this_canvas_as_the_model_samples_it(frames, plan):
    vae = TinyVAE()
    auto = FrameCanvas.of(frames, plan, preprocessing="auto")
    as_m3ddm = auto.encode_global(None, vae.encode)
    assert as_m3ddm.latents.shape == (16, 4, *plan.latent_hw) and as_m3ddm.plan == plan
    assert auto.global_latents(None, "m3ddm") is None
    assert torch.equal(auto.global_latents(as_m3ddm, "m3ddm"), as_m3ddm.latents)
    with pytest.raises(GlobalFramesError, match="encoded with m3ddm preprocessing, the model samples with m3ddm_plus"):
        auto.global_latents(as_m3ddm, "m3ddm_plus")
    as_plus = auto.encode_global("m3ddm_plus", vae.encode)
    assert as_plus.plan.family == "m3ddm_plus" and torch.equal(auto.global_latents(as_plus, "m3ddm_plus"),
                                                               as_plus.latents)
    other_video = FrameCanvas.of(frames.flip(0), plan)
    other_plan = FrameCanvas.of(frames, plan_canvas((120, 208), ratio="1:1", canvas_size=128))
    for canvas in (other_video, other_plan):
        with pytest.raises(GlobalFramesError, match="encoded for another video or canvas"):
            canvas.global_latents(as_m3ddm, "m3ddm")


def test_prepare_follows_the_canvases_cuts_unless_told_and_refuses_global_frames_with_shots(frames, plan):
    vae, settings = TinyVAE(), SampleSettings(steps=1)
    canvas = FrameCanvas.of(frames, plan, Edit(cuts=(8,)))
    video = canvas.prepare("m3ddm", vae.encode, settings, 16.0, seed=4, strides="5,1")
    direct = prepare(frames, 20, plan, vae.encode, settings, 16.0, seed=4, strides="5,1", cuts=(8,), resumable=True)
    assert video.plan == direct.plan and video.content == direct.content
    assert torch.equal(video.encoded.prefilled, direct.encoded.prefilled)
    one_shot = canvas.prepare("m3ddm", vae.encode, settings, 16.0, seed=4, strides="5,1", edit=Edit())
    assert tuple(one_shot.plan.cuts) == () and tuple(video.plan.cuts) == (8,)
    g = FrameCanvas.of(frames, plan).encode_global(None, vae.encode)
    before = vae.encoded_images
    with pytest.raises(GlobalFramesError, match="global frames cover the whole video, but this run is split into"):
        canvas.prepare("m3ddm", vae.encode, settings, 16.0, global_frames=g)
    assert vae.encoded_images == before  # refused before any encoding
