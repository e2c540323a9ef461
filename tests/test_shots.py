"""Shots: cuts found where they are (and nowhere else), and each shot outpainted as its own video."""
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch

from helpers import TinyVAE, load_clip
from m3ddm_core import (SampleSettings, ShotError, detect_cuts, encode_video, outpaint_video, parse_cuts,
                        plan_passes, prepare_shot, run_pass, shot_bounds)
from m3ddm_core.pipeline.seeds import SHOT, derive_seed
from m3ddm_core.pipeline.shots import CutDetector

H, W = 120, 208
FAST = SampleSettings(steps=1, s1=1.0, s2=1.0)
SEED = 5


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
    # PySceneDetect applies the minimum only between cuts: a cut 3 frames before the end made a 3-frame last shot
    tail = _edited([40, 30, 4], [(120, 120, 120), (40, 90, 200), (250, 220, 30)])
    assert detect_cuts(tail) == [40, 70]  # a last shot of exactly the minimum (4) stays ...
    assert detect_cuts(tail, min_shot=5) == [40]  # ... a shorter one joins the shot before it
    assert detect_cuts(tail[:-1]) == [40]
    detector = CutDetector()
    for f in tail[:-1]:
        detector.feed(f)
    assert detector.cuts() == [40] and detector.cuts() == [40]  # asking twice gives the same answer


# one warm palette (RGB): a wall, skin and hair, an interview set under warm light
WALL, SKIN, HAIR = (196, 138, 92), (222, 168, 128), (120, 72, 44)
SH, SW = 90, 160


def _warm_wall(rng, width: int) -> np.ndarray:
    """``[SH, width, 3]`` float32: the wall colour with a smooth low-contrast texture (plaster out of focus)."""
    tex = cv2.GaussianBlur(rng.normal(0, 1, (SH, width)).astype(np.float32), (0, 0), 5)
    return np.float32(WALL) + (tex / tex.std() * 12)[..., None]


def _paint(img: np.ndarray, colour, draw) -> np.ndarray:
    """``img`` with ``colour`` where ``draw`` filled a mask (edges softened as a lens does)."""
    mask = np.zeros(img.shape[:2], np.float32)
    draw(mask)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None]
    return img * (1 - mask) + np.float32(colour) * mask


def _person(img: np.ndarray, cx: int) -> np.ndarray:
    """A face over shoulders centred at column ``cx``: the subject of an interview shot."""
    img = _paint(img, HAIR, lambda m: cv2.ellipse(m, (cx, SH), (SW // 5, int(0.3 * SH)), 0, 0, 360, 1, -1))
    face = (cx, int(0.42 * SH)), (SW // 9, int(0.26 * SH))
    return _paint(img, SKIN, lambda m: cv2.ellipse(m, *face, 0, 0, 360, 1, -1))


def _warm_shot(seed: int, person_x: float, n: int = 25) -> list[np.ndarray]:
    """``n`` frames ``[SH, SW, 3]`` uint8 of a static camera on the warm set, the person at ``person_x`` of the width
    (0.3 / 0.7: an interview's A and B cameras): drifting 1 px a frame and back, with sensor noise."""
    rng = np.random.default_rng(seed)
    wide = _person(_warm_wall(rng, SW + 16), 8 + round(person_x * SW))
    offsets = [min(i % 32, 32 - i % 32) for i in range(n)]  # 0..16..0: no jump inside the shot
    return [np.clip(wide[:, x:x + SW] + rng.normal(0, 3, (SH, SW, 3)), 0, 255).astype(np.uint8) for x in offsets]


def _content_detector_cuts(frames, threshold: float = 27.0) -> list[int]:
    """What PySceneDetect's ``ContentDetector`` (hue, saturation and luma; flash filter) finds: with its default
    threshold 27 it is the detector shots.py used before, kept here so that these cases stay ones it gets wrong."""
    from scenedetect import ContentDetector
    from scenedetect.common import FrameTimecode
    detector, found = ContentDetector(threshold), []
    for i, f in enumerate(frames):
        found += detector.process_frame(FrameTimecode(i, Fraction(30)), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return [t.frame_num for t in found]


def test_cuts_between_shots_of_one_warm_palette_are_found():
    # camera A, camera B, camera A again (reframed, new noise): one set, one light, the person moves sides
    shots = [_warm_shot(1, 0.3), _warm_shot(2, 0.7), _warm_shot(3, 0.35)]
    frames = [f for shot in shots for f in shot]
    hsv = np.array([cv2.cvtColor(np.concatenate(shot), cv2.COLOR_RGB2HSV).reshape(-1, 3).mean(0) for shot in shots])
    assert np.all(np.ptp(hsv, axis=0) < 0.03 * hsv.mean(0))  # same mean hue, saturation and value within 3%
    assert detect_cuts(frames) == [25, 50]  # scores 14-16 (within the shots at most 3.5), 4.2-4.6x their neighbours'
    assert _content_detector_cuts(frames) == []  # both under its threshold 27
    big = [cv2.resize(f, (4 * SW, 4 * SH), interpolation=cv2.INTER_LINEAR) for f in frames]
    assert detect_cuts(big) == [25, 50]  # shrunk to 256 px wide before detection


def test_a_fast_pan_along_a_warm_set_is_one_shot():
    """A still camera that pans at 8-15% of the width a frame along a wall of people and shelves in the warm
    palette: every frame changes as much as at a cut of the test above, or more, but steadily."""
    rng = np.random.default_rng(7)
    wall = _warm_wall(rng, 9 * SW)
    x = 0
    while x < wall.shape[1]:
        width = int(rng.integers(SH // 2, SH))
        if rng.random() < 0.5:
            wall = _person(wall, x + width // 2)
        else:  # a shelf: bands of the palette
            for b in range(x, x + width, 7):
                wall[:, b:b + 5] = wall[:, b:b + 5] * 0.3 + np.float32((WALL, SKIN, HAIR)[rng.integers(3)]) * 0.7
        x += width
    for speed in (0.08, 0.12, 0.15):
        step = round(speed * SW)
        offsets = [0] * 20 + [step * i for i in range(1, 41)]  # still, then the pan starts at full speed
        frames = [np.clip(wall[:, x:x + SW] + rng.normal(0, 3, (SH, SW, 3)), 0, 255).astype(np.uint8)
                  for x in offsets]
        assert detect_cuts(frames) == [], speed  # scores 10-19, at most 1.8x their neighbours' (at the start)
        assert _content_detector_cuts(frames, threshold=10.0) == [20], speed  # a lower fixed threshold: a cut


def test_a_flash_is_not_a_cut_and_a_hard_cut_still_is():
    shot = _warm_shot(4, 0.3, 60)
    white = np.full_like(shot[0], 250)

    def lit(i: int, by: int) -> np.ndarray:
        return np.clip(shot[i].astype(np.int16) + by, 0, 255).astype(np.uint8)

    flashes = {"white": {30: white}, "two white": {30: white, 31: white}, "brighter": {30: lit(30, 80)},
               "fading": {30: lit(30, 100), 31: lit(31, 50)}}
    for name, flash in flashes.items():
        frames = [flash.get(i, f) for i, f in enumerate(shot)]
        # the jumps in and out stand out 3.2-3.7x, but a frame after them is back within 5-9% of one before them
        assert detect_cuts(frames) == [], name
        assert _content_detector_cuts(frames) == [30], name  # its flash filter keeps the first jump as a cut
    blue = _scene(3, (40, 90, 200), size=(SH, SW))
    assert detect_cuts(shot[:30] + [blue] * 30) == [30]  # to a very different shot, even a still one


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


def _run(model, frames, plan, **kw):
    vae = TinyVAE()
    settings, seed = kw.pop("settings", FAST), kw.pop("seed", SEED)
    return outpaint_video(model, frames, plan, vae.encode, vae.decode, fps=16.0, settings=settings, seed=seed, **kw)


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
        alone = _run(micro_model, frames[a:b], plan, seed=derive_seed(SEED, SHOT, k))
        assert torch.equal(result.latents[a:b], alone.latents)
    whole = _run(micro_model, frames, plan)
    assert not torch.equal(whole.latents[20:], result.latents[20:])  # the cut changed what the 2nd shot saw


def test_global_frames_of_a_shot_come_only_from_that_shot(micro_model, plan):
    frames = load_clip(40)
    vae = TinyVAE()
    encoded = encode_video(((f.numpy() * 255).round().astype(np.uint8) for f in frames), 40, plan, vae.encode,
                           cuts=[25])
    from m3ddm_core import global_frame_indexes
    assert len(encoded.global_latents) == 2 and encoded.cuts == (25,)
    expected = torch.stack([encoded.masked[25 + i] for i in global_frame_indexes(15)])
    assert torch.equal(encoded.global_latents[1], expected)
    assert torch.equal(encoded.global_latents[0], torch.stack([encoded.masked[i] for i in global_frame_indexes(25)]))
    shot = prepare_shot(micro_model, encoded, 1)
    assert shot.prefilled.shape[0] == 15 and torch.equal(shot.prefilled[0], encoded.prefilled[25])
    # the streamed encoding cut into shots gives what encoding each shot on its own gives
    streamed = outpaint_video(micro_model, range(40), plan, None, None, 16.0, FAST, seed=SEED, encoded=encoded)
    direct = _run(micro_model, (frames * 255).round() / 255, plan, cuts=[25])
    assert torch.allclose(streamed.latents, direct.latents, atol=1e-5)


def test_a_one_shot_video_samples_exactly_as_the_pass_runner_did_before_shots(micro_model, plan):
    frames = load_clip(33)
    result = _run(micro_model, frames, plan, cuts=[])
    vae = TinyVAE()
    video = prepare_shot(micro_model, encode_video(frames, 33, plan, vae.encode))
    final = {}
    for k, p in enumerate(plan_passes(33)):
        final.update(run_pass(micro_model, video, p, final, 16.0, FAST, SEED, k))
    assert torch.equal(result.latents, torch.stack([final[i] for i in range(33)]))


# constructed edits (tests/constructed_edits.py): the true cuts are where the edit joined its shots
def test_a_cut_into_and_out_of_a_fast_pan_is_found():
    from constructed_edits import GREEN, WARM, WARM2, Shot, assemble, pan, still
    into = assemble("calm, calm, then a fast pan", "", [Shot(1, WARM, still(), 25), Shot(2, WARM2, still(), 25),
                                                         Shot(3, WARM, pan(0.15), 30)])
    assert into.cuts == [25, 50] and detect_cuts(into.frames) == into.cuts
    out = assemble("fast pan, then calm", "", [Shot(4, GREEN, pan(-0.2, 0.03), 25), Shot(5, GREEN, still(), 25)])
    assert detect_cuts(out.frames) == out.cuts == [25]
    assert _content_detector_cuts(into.frames) != into.cuts  # what the detectors alone missed (issue 33)


def test_a_4_frame_shot_is_a_shot():
    from constructed_edits import BLUE, GREY, GREY2, Shot, assemble, pan, still
    edit = assemble("4-frame shots", "", [Shot(11, GREY, still(), 20), Shot(12, BLUE, still(), 4),
                                          Shot(13, GREY2, pan(0.1), 4), Shot(14, GREY, still(), 20)])
    assert edit.cuts == [20, 24, 28] and detect_cuts(edit.frames) == edit.cuts
    assert detect_cuts(edit.frames, min_shot=5) == [20, 28]  # a larger minimum still merges them


def test_fast_pans_whip_pans_and_shake_are_one_shot():
    from constructed_edits import GREY, WARM, film, handheld, pan, picture, whip
    for path in (pan(0.1), pan(0.25, 0.05), lambda i: pan(0.15)(max(0, i - 15)), whip(0.35), whip(0.5, 8),
                 handheld(1, 8, 0.5)):
        frames = film(picture(21, WARM), path, 40, seed=2)
        assert detect_cuts(frames) == []
    assert detect_cuts(film(picture(22, GREY), whip(0.35), 40, seed=3)) == []
    # at the real detection width (256 px): violent shake turns its shift back by twice its size (+61 px after -30)
    shake = film(picture(317, WARM), handheld(311, 8, 0.5), 60, seed=310)
    assert detect_cuts([cv2.resize(f, (640, 360), interpolation=cv2.INTER_LINEAR) for f in shake]) == []


def test_flashes_of_1_to_3_frames_are_not_cuts():
    from constructed_edits import WARM, film, flash, pan, picture, still
    for path in (still(), pan(0.08)):
        frames = film(picture(31, WARM), path, 40, seed=4)
        for kind in ("white", "lit"):
            for n in (1, 2, 3):
                assert detect_cuts(flash(frames, 20, kind, n)) == [], (kind, n)
    # at the real detection width: the way out of a flash in a pan comes back where the camera went on moving
    frames = flash(film(picture(202, WARM), pan(0.08), 60, seed=200), 25, "lit", 1)
    assert detect_cuts([cv2.resize(f, (640, 360), interpolation=cv2.INTER_LINEAR) for f in frames]) == []


def test_a_frame_shrunk_once_is_not_shrunk_again():
    """EditReader shrinks each frame once for its three finders: what they see is what each would shrink."""
    from m3ddm_core.pipeline.shots import SmallFrame, _small_bgr, shrunk

    frame = np.random.default_rng(0).integers(0, 256, (540, 960, 3), dtype=np.uint8)
    once = shrunk(frame)
    assert isinstance(once, SmallFrame) and once.shape == (144, 256, 3)
    again = _small_bgr(once)
    assert type(again) is np.ndarray and np.array_equal(again, _small_bgr(frame))
