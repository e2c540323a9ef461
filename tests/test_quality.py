"""The quality check without ground truth: each score moves the right way on a constructed defect -- a composite
shifted by 2 px at the seam, a flickering border, a slow colour cast -- against the same video without it, and
its windows are the plan's passes."""
import numpy as np
import pytest

from m3ddm_core import plan_canvas, plan_video
from m3ddm_core.pipeline.transitions import Transition
from m3ddm_core.analysis.quality import THRESHOLDS, Seam, check_quality, plan_windows, plot_report, seams

N = 40


def scene_frame(i: int, h: int, w: int) -> np.ndarray:
    """A camera-like frame of a scene the camera pans over (1.5 px right and 0.5 px down a frame): broad gradients,
    soft colour waves, and a soft bright blob moving through it on its own."""
    import cv2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xx + 1.5 * i, yy + 0.5 * i  # the world under the camera
    f = np.stack([60 + 0.3 * x + 25 * np.sin(y / 45), 50 + 0.25 * y + 20 * np.cos(x / 60),
                  110 + 50 * np.sin(x / 70 + y / 90)], -1)
    cy, cx = h * (0.3 + 0.4 * i / N), w * 0.6
    f += 70 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 30.0 ** 2))[..., None]
    return cv2.GaussianBlur(f, (0, 0), 2.0).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=[((120, 208), "9:16"), ((120, 100), "16:9")], ids=["9x16", "16x9"])
def video(request):
    """A perfect outpaint: the whole scene, the source frame being its centre (borders above and below, or left
    and right). Returns the output frames [N, OH, OW, 3] uint8 and the plan."""
    frame_hw, ratio = request.param
    plan = plan_canvas(frame_hw, ratio=ratio)
    oh, ow = plan.output_hw
    return np.stack([scene_frame(i, oh, ow) for i in range(N)]), plan


def _with_border(scene, plan, border):
    """``scene`` with its generated area replaced by ``border`` (same shape), the original pasted back."""
    (y0, x0), (fh, fw) = plan.content_out_yx, plan.frame_hw
    out = np.clip(border, 0, 255).astype(np.uint8)
    out[:, y0:y0 + fh, x0:x0 + fw] = scene[:, y0:y0 + fh, x0:x0 + fw]
    return out


def test_the_seams_follow_the_plan():
    assert [s.side for s in seams(plan_canvas((120, 208), ratio="9:16"))] == ["top", "bottom"]
    assert [s.side for s in seams(plan_canvas((120, 100), ratio="16:9"))] == ["left", "right"]
    assert seams(plan_canvas((120, 208), padding=(0, 40, 0, 0))) == [Seam("right", 208, (0, 120), 16, 16)]


def test_a_clean_outpaint_is_not_flagged(video):
    scene, plan = video
    report = check_quality(iter(scene), plan)
    assert [r for r in report.window_rows() if r["flags"]] == []
    assert report.seam.max() < THRESHOLDS["seam"] and report.drift.max() < THRESHOLDS["drift"]
    assert np.isnan(report.flicker[0]) and not np.isnan(report.flicker[1:]).any()


def test_a_border_shifted_by_two_pixels_makes_the_seam_visible(video):
    scene, plan = video
    clean = check_quality(iter(scene), plan)
    shifted = check_quality(iter(_with_border(scene, plan, np.roll(scene, 2, axis=(1, 2)))), plan)
    assert shifted.seam.mean() > THRESHOLDS["seam"] > clean.seam.mean()
    assert shifted.seam.mean() > 2 * clean.seam.mean()
    # every window's seam at least doubles; where the picture barely changes across the seam a shift shows less
    assert all(a["seam"] > 1.8 * b["seam"] for a, b in zip(shifted.window_rows(), clean.window_rows()))
    assert sum("seam" in r["flags"] for r in shifted.window_rows()) >= 2
    assert "seam" in shifted.to_dict()["shots"][0]["flags"]
    assert np.allclose(shifted.drift, clean.drift, atol=2.0)  # the same colours: no drift invented


def test_a_flickering_border_is_flagged(video):
    scene, plan = video
    rng = np.random.default_rng(0)
    offsets = rng.uniform(-12, 12, N)[:, None, None, None]
    flicker = check_quality(iter(_with_border(scene, plan, scene.astype(np.float32) + offsets)), plan)
    clean = check_quality(iter(scene), plan)
    assert np.nanmean(flicker.flicker) > THRESHOLDS["flicker"] > np.nanmean(clean.flicker)
    assert all("flicker" in r["flags"] for r in flicker.window_rows())


def test_a_slow_colour_cast_is_drift_and_grows(video):
    scene, plan = video
    cast = scene.astype(np.float32)
    cast[..., 0] += np.linspace(0, 40, N)[:, None, None]  # the border turns red over the video
    drift = check_quality(iter(_with_border(scene, plan, cast)), plan)
    clean = check_quality(iter(scene), plan)
    rows = drift.window_rows()
    assert "drift" not in rows[0]["flags"] and "drift" in rows[-1]["flags"]  # it builds up
    assert drift.drift[-1] > THRESHOLDS["drift"] > clean.drift.max()
    assert drift.drift[-1] > drift.drift[N // 2] > drift.drift[2]


def test_cuts_restart_the_shot_and_windows_are_the_plans_passes(video):
    scene, plan = video
    cut_scene = scene.copy()
    cut_scene[20:] = 255 - cut_scene[20:]  # another shot: the colour gap jumps, but a new shot has its own start
    vp = plan_video(N, [20], "15,5,1")
    windows = plan_windows(vp)
    dense = [p for p in vp.passes if p.clip.stride == 1]
    assert windows == [(min(p.in_video.frames), max(p.in_video.frames) + 1) for p in dense]
    assert all(b <= 20 or a >= 20 for a, b in windows)  # no window spans the cut
    report = check_quality(iter(cut_scene), plan, cuts=[20], windows=windows)
    assert np.isnan(report.flicker[20]) and report.drift[20] < 1e-3  # the second shot's first frame: its reference
    assert not [r for r in report.window_rows() if r["flags"]]
    data = report.to_dict()
    assert [(w["start"], w["end"]) for w in data["windows"]] == windows
    assert [s["shot"] for s in data["shots"]] == [0, 1] and data["per_frame"]["flicker"][20] is None
    image = report.plot()
    assert image.shape == (3 * 160 + 30, 960, 3) and image.dtype == np.uint8 and (image < 255).any()
    assert "0 window(s) flagged" in report.text()
    # camera set-ups: listed per shot and lettered in the plot at each shot's start (top panel), not scored
    three = check_quality(iter(cut_scene), plan, cuts=[10, 20], groups=[0, 1, 0])
    own = check_quality(iter(cut_scene), plan, cuts=[10, 20])
    assert [s["setup"] for s in three.to_dict()["shots"]] == ["A", "B", "A"]
    assert [s["setup"] for s in own.to_dict()["shots"]] == ["A", "B", "C"]
    assert np.array_equal(three.seam, own.seam) and np.array_equal(three.drift, own.drift)
    lettered, plain = plot_report(three), plot_report(own)
    differs = np.argwhere((lettered != plain).any(axis=2))
    assert differs.size and differs[:, 0].max() < 160  # only the letters, in the top panel
    # dissolves and fades: listed in the report and shaded over their frames in every panel, not scored
    dissolve = Transition(16, 24, "dissolve", tuple(np.linspace(0.1, 0.9, 8)))
    blended = check_quality(iter(cut_scene), plan, cuts=[20], windows=windows, transitions=[dissolve])
    assert np.array_equal(blended.seam, report.seam) and np.array_equal(blended.drift, report.drift)
    assert blended.to_dict()["transitions"] == [{"kind": "dissolve", "start": 16, "end": 23}]
    assert "dissolve 16-23" in blended.text() and "dissolve" not in report.text()
    shaded = np.argwhere((blended.plot() != image).any(axis=2))
    left, right = 60, 950  # the panels' x range for frames 0 .. N-1
    x0, x1 = (left + (right - left) * f / (N - 1) for f in (16, 23))
    inside = shaded[shaded[:, 0] < 3 * 160]
    assert x0 - 1 <= inside[:, 1].min() and inside[:, 1].max() <= x1 + 60  # the band (and its name, top panel)
    assert {r // 160 for r in inside[:, 0]} == {0, 1, 2}  # in all three panels


def test_wrong_frames_are_refused(video):
    scene, plan = video
    with pytest.raises(ValueError, match=f"the canvas's output is {plan.output_hw[1]}x{plan.output_hw[0]}"):
        check_quality(iter(scene[:, :100]), plan)
    with pytest.raises(ValueError, match="no frames"):
        check_quality(iter([]), plan)
