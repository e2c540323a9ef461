"""The core's one entry (pipeline/outpaint.py): prepare (plan, then encode) and sample (place, run, decode), with
what a front-end lends it -- and the review gate's split into key frames, then the rest."""
import pytest
import torch

from helpers import TinyVAE, load_clip
from m3ddm_core import PassStore, Runtime, SampleSettings, outpaint_clip, outpaint_video, prepare, sample

FAST = SampleSettings(steps=1, s1=1.0, s2=1.0)


class Lent:
    """A front-end's Runtime that records what the pipeline asked of it."""

    def __init__(self, model, root):
        self.model, self.root = model, root
        self.keys, self.progress_calls, self.steps = [], [], 0

    def runtime(self) -> Runtime:
        def store(key):
            self.keys.append(key)
            return None if key is None else PassStore(self.root, key)

        def progress(total, done, model):
            self.progress_calls.append((total, done))

            def step(info):
                self.steps += 1
            return step
        return Runtime(lambda settings, hw: (self.model, settings), store, progress, name="test")


def test_the_plan_is_checked_before_anything_is_encoded(plan):
    vae = TinyVAE()
    with pytest.raises(ValueError, match="shot 2 of 2"):
        prepare(load_clip(20), 20, plan, vae.encode, FAST, 16.0, schedule="official", cuts=[19])
    assert vae.encoded_images == 0


def test_sample_equals_the_in_memory_chain_and_lends_the_runtime_what_it_needs(micro_model, plan, tmp_path):
    frames = load_clip(40)
    vae = TinyVAE()
    video = prepare(frames, 40, plan, vae.encode, FAST, 16.0, seed=3, strides="15,5,1", content="clip")
    lent = Lent(micro_model, tmp_path)
    result = sample(video, lent.runtime(), decode=vae.decode)
    reference = outpaint_video(micro_model, frames, plan, TinyVAE().encode, TinyVAE().decode, 16.0, FAST, "15,5,1",
                               seed=3)
    assert torch.equal(result.latents, reference.latents) and result.complete
    assert result.canvases.shape == (40, 128, 128, 3) and result.frames == list(range(40))
    assert lent.progress_calls == [(len(video.plan), 0)] and lent.steps == len(video.plan)
    assert lent.keys == [result.store_key] and result.store_key == video.store_key(micro_model)
    assert not (tmp_path / result.store_key).exists()  # the whole result exists: the store is cleared
    # without a content identity the run is not resumable: the front-end is asked with no key
    anonymous = prepare(frames, 40, plan, vae.encode, FAST, 16.0, seed=3, strides="15,5,1")
    lent.keys.clear()
    sample(anonymous, lent.runtime())
    assert lent.keys == [None]


def test_key_frames_first_then_the_rest_equals_one_run_and_samples_nothing_twice(micro_model, plan, tmp_path):
    frames = load_clip(64)
    vae = TinyVAE()
    video = prepare(frames, 64, plan, vae.encode, FAST, 16.0, seed=5, strides="15,5,1", cuts=[30], content="c")
    lent = Lent(micro_model, tmp_path)
    first = video.plan.preview_passes()
    keys = sample(video, lent.runtime(), only=first, decode=vae.decode)
    assert keys.frames == video.plan.key_frames() and not keys.complete
    assert keys.canvases.shape[0] == len(keys.frames) and keys.sampled == [p.index for p in first]
    assert sorted(PassStore(tmp_path, keys.store_key).done()) == keys.sampled  # kept for the second half
    in_folder = Runtime(lambda settings, hw: (micro_model, settings), store=tmp_path)  # a front-end's folder
    assert sorted(in_folder.store(keys.store_key).done()) == keys.sampled and in_folder.store(None) is None
    rest = sample(video, lent.runtime())
    assert rest.resumed == keys.sampled and sorted(rest.sampled + rest.resumed) == list(range(len(video.plan)))
    assert lent.progress_calls[-1] == (len(video.plan), len(first))  # the bar starts where the preview left it
    whole = outpaint_video(micro_model, frames, plan, TinyVAE().encode, None, 16.0, FAST, "15,5,1", seed=5,
                           cuts=[30])
    assert torch.equal(rest.latents, whole.latents)
    assert torch.equal(rest.latents[keys.frames], keys.latents)


def test_another_seed_or_a_re_rolled_shot_is_another_run(micro_model, plan):
    frames = load_clip(40)
    vae = TinyVAE()
    make = lambda **kw: prepare(frames, 40, plan, vae.encode, FAST, 16.0, strides="15,5,1", cuts=[20],  # noqa: E731
                                content="c", **kw).store_key(micro_model)
    keys = {make(seed=1), make(seed=2), make(seed=1, shot_seeds={1: 7})}
    assert len(keys) == 3 and make(seed=1) in keys
    # as a user writes it (shots counted from 1): the same re-roll; a shot the cuts do not make, or a typo, is
    # refused before a frame is encoded
    assert make(seed=1, shot_seeds="2:7") == make(seed=1, shot_seeds={1: 7}) and make(seed=1, shot_seeds="") in keys
    never = iter(())  # encoding would fail on it: what is refused is refused before
    for text, message in (("3:7", "shot 3 does not exist"), ("2=7", "write shot:seed pairs")):
        with pytest.raises(ValueError, match=message):
            prepare(never, 40, plan, vae.encode, FAST, 16.0, strides="15,5,1", cuts=[20], shot_seeds=text)
    with pytest.raises(ValueError, match="write shot:seed pairs"):
        prepare(never, 40, plan, vae.encode, FAST, 16.0, detect_cuts=True, shot_seeds="2=7")


def test_a_resumable_batch_is_keyed_by_its_frames(plan):
    frames = load_clip(20)
    vae = TinyVAE()
    from m3ddm_core import content_hash
    hashed = prepare(frames, 20, plan, vae.encode, FAST, 16.0, resumable=True)
    assert hashed.content == content_hash(frames)
    assert prepare(frames.flip(0), 20, plan, vae.encode, FAST, 16.0, resumable=True).content != hashed.content
    assert prepare(frames, 20, plan, vae.encode, FAST, 16.0).content is None  # not resumable: no store
    with pytest.raises(ValueError, match="give an iterator's identity as content"):
        prepare(iter(frames), 20, plan, vae.encode, FAST, 16.0, resumable=True)


def test_a_clip_refuses_guides_of_another_canvas_or_past_the_video_before_any_work(micro_model, plan):
    frames, vae = load_clip(6), TinyVAE()

    def place(settings, hw):
        raise AssertionError("the model was placed for a clip whose guides were wrong")
    h, w = plan.latent_hw
    for guides, message in (({0: torch.zeros(4, h // 2, w)}, rf"frame 0 has shape \(4, {h // 2}, {w}\).*another"),
                            ({9: torch.zeros(4, h, w)}, "refers to frame 9, but the video has 6 frames")):
        with pytest.raises(ValueError, match=message):
            outpaint_clip(frames, "0-3", plan, vae.encode, Runtime(place), FAST, 16.0, guides=guides)
    assert vae.encoded_images == 0
    out = outpaint_clip(frames, "0-3", plan, vae.encode, Runtime.fixed(micro_model), FAST, 16.0,
                        guides={0: torch.zeros(4, h, w)})
    assert out.frames == [0, 1, 2, 3] and torch.equal(out.latents[0], torch.zeros(4, h, w))  # the guide, kept
    assert out.latents[1:].abs().sum() > 0
