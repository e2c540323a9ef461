"""The review gate (pipeline/review.py): key frames previewed and composited, then the rest sampled from the same
store -- unedited equal to one run, an edited key frame used as that frame."""
import pytest
import torch

from helpers import TinyVAE, load_clip
from m3ddm_core import Runtime, finish_review, outpaint_video, prepare, preview_keyframes
from test_outpaint import FAST, Lent


@pytest.fixture(scope="module")
def reviewed(micro_model, plan, tmp_path_factory):
    frames, vae = load_clip(31), TinyVAE()
    video = prepare(frames, 31, plan, vae.encode, FAST, 16.0, seed=3, strides="15,5,1", content="clip")
    lent = Lent(micro_model, tmp_path_factory.mktemp("store"))
    return frames, vae, lent, preview_keyframes(video, frames, lent.runtime(), vae.decode, feather=8)


def test_the_preview_holds_the_key_frames_composited_around_the_untouched_source(reviewed, plan):
    frames, _, lent, review = reviewed
    assert review.frames == (0, 15, 30) and review.frames == tuple(review.video.plan.key_frames())
    assert review.preview.shape == (3, *plan.output_hw, 3) and review.canvases.shape == (3, *plan.canvas_hw, 3)
    y, x = plan.content_out_yx
    assert torch.equal(review.preview[:, y:y + 120, x:x + 208], frames[[0, 15, 30]])
    assert "0, 15, 30" in review.shots
    first = len(review.video.plan.preview_passes())
    assert review.remaining == len(review.video.plan) - first > 0 and lent.progress_calls[0] == (first, 0)


def test_finishing_unedited_equals_one_run_and_samples_only_what_remains(reviewed, micro_model, plan):
    frames, vae, lent, review = reviewed
    rest = finish_review(review, lent.runtime())
    assert len(rest.sampled) == review.remaining and len(rest.resumed) == len(review.video.plan) - review.remaining
    whole = outpaint_video(micro_model, frames, plan, TinyVAE().encode, None, 16.0, FAST, "15,5,1", seed=3)
    assert torch.equal(rest.latents, whole.latents)


def test_an_edited_key_frame_is_used_and_guides_its_neighbours(reviewed, micro_model, tmp_path):
    frames, vae, _, review = reviewed
    plain = finish_review(review, Runtime.fixed(micro_model))
    edited = review.preview.clone()
    y, _ = review.canvas.content_out_yx
    edited[1, :y] = torch.tensor([1.0, 0.0, 0.0])  # key frame 15's top border painted red
    assert review.edits(review.preview.clone(), vae.encode) == {}  # given back unchanged: nothing to override
    assert list(review.edits(edited, vae.encode)) == [15]
    result = finish_review(review, Runtime.fixed(micro_model), edited=edited, encode=vae.encode)
    changed = [f for f in range(31) if not torch.equal(result.latents[f], plain.latents[f])]
    assert 15 in changed and 0 not in changed and 30 not in changed and {14, 16} & set(changed)
    with pytest.raises(ValueError, match=r"edited has shape \(1, .*give the preview's key frames"):
        finish_review(review, Runtime.fixed(micro_model), edited=edited[:1], encode=vae.encode)
