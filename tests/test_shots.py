"""Shots: cuts found where they are (and nowhere else), and each shot outpainted as its own video."""
import cv2
import numpy as np
import pytest
import torch

from helpers import TinyVAE, load_clip
from m3ddm_core import (SampleSettings, ShotError, detect_cuts, encode_frames, outpaint_video, parse_cuts,
                        plan_passes, prepare_video, run_pass, shot_bounds, shot_seed)
from m3ddm_core.shots import CutDetector

H, W = 120, 208
FAST = SampleSettings(steps=1, s1=1.0, s2=1.0, seed=5)


def _scene(seed: int, colour, size=(2 * H, 2 * W)) -> np.ndarray:
    """A smooth random landscape around ``colour`` (natural footage has structure at every scale, not pixel noise)."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (*size, 3)).astype(np.float32), (0, 0), 6)
    return np.clip(tex / tex.std() * 35 + np.asarray(colour, np.float32), 0, 255).astype(np.uint8)


def _pan(scene: np.ndarray, i: int, speed: int) -> np.ndarray:
    y, x = (i * speed) % H, (2 * i * speed) % W
    return scene[y:y + H, x:x + W]


def _edited(lengths, colours, speed=1) -> list[np.ndarray]:
    frames = []
    for k, (n, colour) in enumerate(zip(lengths, colours)):
        scene = _scene(k + 1, colour)
        frames += [_pan(scene, i, speed) for i in range(n)]
    return frames


def test_hard_cuts_are_found_at_their_frames_even_between_shots_of_similar_colour():
    frames = _edited([40, 33, 47], [(120, 120, 120), (126, 122, 118), (40, 90, 200)])  # shots 1 and 2: both grey
    assert detect_cuts(frames) == [40, 73]
    # the same video as an IMAGE batch (float 0..1), and at 4K-like width (shrunk before detection)
    assert detect_cuts(torch.from_numpy(np.stack(frames)).float() / 255) == [40, 73]
    big = [cv2.resize(f, (4 * W, 4 * H), interpolation=cv2.INTER_LINEAR) for f in frames]
    assert detect_cuts(iter(big)) == [40, 73]


def test_fast_motion_without_a_cut_is_one_shot():
    scene = _scene(9, (90, 140, 60), size=(4 * H, 4 * W))
    frames = [scene[(7 * i) % (3 * H):(7 * i) % (3 * H) + H, (19 * i) % (3 * W):(19 * i) % (3 * W) + W]
              for i in range(90)]  # 20 px per frame across, wrapping back now and then
    ball = []
    for i, f in enumerate(frames):
        f = f.copy()
        cv2.circle(f, ((15 * i) % W, 60), 30, (255, 50, 50), -1)  # an object racing through the frame
        ball.append(f)
    assert detect_cuts(ball) == []


def test_the_threshold_decides_and_shots_shorter_than_the_minimum_are_not_split():
    frames = _edited([30, 30], [(120, 120, 120), (128, 124, 120)])  # motion scores ~11, the cut ~47
    assert detect_cuts(frames) == detect_cuts(frames, threshold=15.0) == [30]
    assert detect_cuts(frames, threshold=60.0) == []
    flash = _edited([30, 3, 30], [(120, 120, 120), (250, 250, 250), (120, 120, 120)])
    assert detect_cuts(flash) == [30]  # a 3-frame flash before the next shot is not a shot of its own
    assert detect_cuts(flash, min_shot=2) == [30, 33]
    detector = CutDetector()
    for f in frames:
        detector.feed(f)
    assert detector.cuts() == detect_cuts(frames)


def test_a_cut_too_close_to_the_end_does_not_leave_a_shot_shorter_than_the_minimum():
    # PySceneDetect applies the minimum only between cuts: a cut 4 frames before the end made a 4-frame last shot
    tail = _edited([40, 30, 4], [(120, 120, 120), (40, 90, 200), (250, 220, 30)])
    assert detect_cuts(tail, min_shot=2) == [40, 70]  # the detector does find the late cut ...
    assert detect_cuts(tail) == [40]  # ... which the minimum (15) folds into the shot before it
    assert detect_cuts(tail, min_shot=4) == [40, 70]  # a last shot of exactly the minimum stays
    assert detect_cuts(tail, min_shot=5) == [40]
    detector = CutDetector()
    for f in tail:
        detector.feed(f)
    assert detector.cuts() == [40] and detector.cuts() == [40]  # asking twice gives the same answer


def test_a_shot_its_schedule_cannot_cover_is_named(micro_model, plan):
    with pytest.raises(ValueError, match=r"shot 2 of 2 \(frames 59-59\): the official schedule never generates"):
        _run(micro_model, load_clip(60), plan, cuts=[59], schedule="official")


def test_user_given_cuts_are_checked_against_the_video():
    assert parse_cuts("48, 12;  30", 60) == [12, 30, 48]
    assert parse_cuts("0, 20", 60) == [20] and parse_cuts("", 60) == []
    with pytest.raises(ShotError, match="outside the video's frames 1..59"):
        parse_cuts("20, 60", 60)
    with pytest.raises(ShotError, match="separated by commas"):
        parse_cuts("20 frames", 60)
    assert shot_bounds(60, [20, 45]) == [(0, 20), (20, 45), (45, 60)] and shot_bounds(5, []) == [(0, 5)]
    assert shot_seed(7, 0) == 7 and len({shot_seed(7, k) for k in range(4)}) == 4


def _run(model, frames, plan, **kw):
    vae = TinyVAE()
    settings = kw.pop("settings", FAST)
    return outpaint_video(model, frames, plan, vae.encode, vae.decode, fps=16.0, settings=settings, **kw)


def test_each_shot_is_its_own_video_and_no_pass_spans_a_cut(micro_model, plan):
    frames = load_clip(45)
    frames[20:] = frames[20:].flip(2)  # a different shot from frame 20 on
    cuts = [20]
    result = _run(micro_model, frames, plan, cuts=cuts)
    assert result.encoded_images == 2 * 45 + 1  # both canvases of every frame, the black canvas once for all shots
    for p in result.passes:
        assert all(f < 20 for f in p.frames) or all(f >= 20 for f in p.frames), p.frames
    assert {f for p in result.passes for f in p.frames} == set(range(45))
    # shot by shot on its own (own global frames, own schedule, seed of that shot): the same latents
    for k, (a, b) in enumerate(shot_bounds(45, cuts)):
        alone = _run(micro_model, frames[a:b], plan, settings=SampleSettings(1, 1.0, 1.0, seed=shot_seed(5, k)))
        assert torch.equal(result.latents[a:b], alone.latents)
    whole = _run(micro_model, frames, plan)
    assert not torch.equal(whole.latents[20:], result.latents[20:])  # the cut changed what the 2nd shot saw


def test_global_frames_of_a_shot_come_only_from_that_shot(micro_model, plan):
    frames = load_clip(40)
    vae = TinyVAE()
    encoded = encode_frames(((f.numpy() * 255).round().astype(np.uint8) for f in frames), 40, plan, vae.encode)
    from m3ddm_core.video import global_frame_indexes, shot_of
    shot = shot_of(encoded, 25, 40)
    expected = torch.stack([encoded.cache.masked[25 + i] for i in global_frame_indexes(15)])
    assert torch.equal(shot.global_latents, expected)
    assert all(i < 15 for i in shot.cache.prefilled)
    # the streamed encoding cut into shots gives what encoding each shot on its own gives
    streamed = outpaint_video(micro_model, range(40), plan, None, None, 16.0, FAST, encoded=encoded, cuts=[25])
    direct = _run(micro_model, (frames * 255).round() / 255, plan, cuts=[25])
    assert torch.allclose(streamed.latents, direct.latents, atol=1e-5)


def test_a_one_shot_video_samples_exactly_as_the_pass_runner_did_before_shots(micro_model, plan):
    frames = load_clip(33)
    result = _run(micro_model, frames, plan, cuts=[])
    vae = TinyVAE()
    from m3ddm_core import encode_video
    video = prepare_video(micro_model, encode_video(frames, plan, vae.encode), plan)
    final = {}
    for k, p in enumerate(plan_passes(33)):
        final.update(run_pass(micro_model, video, p, final, 16.0, FAST, k))
    assert torch.equal(result.latents, torch.stack([final[i] for i in range(33)]))
