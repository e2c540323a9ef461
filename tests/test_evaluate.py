"""Evaluation by the papers' protocol: the masked borders, and metrics checked on pairs with known values."""
import numpy as np
import pytest
import torch

from m3ddm_core.analysis.evaluate import (evaluate_frames, evaluation_padding, frechet_distance, generated_region,
                                          resize_frames)


def test_the_papers_mask_ratios_remove_that_share_of_the_width_half_on_each_side():
    assert evaluation_padding((256, 256), 0.25) == (32, 32, 0, 0)
    assert evaluation_padding((256, 256), 0.666) == (85, 85, 0, 0)  # 170 of 256 columns
    assert evaluation_padding((120, 208), 0.25, "vertical") == (0, 0, 15, 15)
    assert evaluation_padding((100, 200), 0.5, "all sides") == (50, 50, 25, 25)
    region = generated_region((4, 8), (2, 1, 0, 0))
    assert region.sum() == 12 and not region[:, 2:7].any() and region[:, :2].all() and region[:, 7].all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        evaluation_padding((256, 256), 1.5)
    with pytest.raises(ValueError, match="direction 'diagonal' is unknown"):
        evaluation_padding((256, 256), 0.25, "diagonal")


def test_psnr_and_mse_have_their_known_values_over_the_region_and_the_frame():
    truth = torch.zeros(2, 16, 32, 3)
    result = truth.clone()
    region = generated_region((16, 32), (8, 8, 0, 0))  # half of the frame
    result[:, region] = 0.1  # MSE 0.01 in the region -> 20 dB; 0.005 over the frame -> 23.01 dB
    m = evaluate_frames(result, truth, region, lpips=False)
    assert m.region["mse"] == pytest.approx(0.01) and m.region["psnr"] == pytest.approx(20.0, abs=1e-4)
    assert m.frame["mse"] == pytest.approx(0.005) and m.frame["psnr"] == pytest.approx(23.0103, abs=1e-3)
    same = evaluate_frames(truth, truth, region, lpips=False)
    assert same.region["psnr"] == 100.0 and same.region["ssim"] == pytest.approx(1.0)


def test_ssim_of_two_flat_frames_is_the_luminance_term():
    # constant frames: no variance, so SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1), C1 = (0.01 * 1)^2
    x, y = torch.full((1, 24, 24, 3), 0.5), torch.full((1, 24, 24, 3), 0.6)
    expected = (2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4)
    m = evaluate_frames(x, y, generated_region((24, 24), (6, 6, 0, 0)), lpips=False)
    assert m.region["ssim"] == pytest.approx(expected, abs=1e-5)
    assert m.frame["ssim"] == pytest.approx(expected, abs=1e-5)


def test_frechet_distance_of_shifted_and_scaled_feature_sets():
    a = np.random.default_rng(0).normal(size=(400, 6))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.0])
    assert frechet_distance(a, a + shift) == pytest.approx((shift ** 2).sum(), rel=1e-6)  # same covariance
    centred = a - a.mean(0)
    # S_b = 4 S_a: tr(S_a + 4 S_a - 2 * 2 S_a) = tr(S_a)
    assert frechet_distance(centred, 2 * centred) == pytest.approx(np.trace(np.cov(centred, rowvar=False)), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_lpips_and_fvd_are_reported_missing_without_their_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    x = torch.rand(1, 16, 16, 3)
    m = evaluate_frames(x, x, generated_region((16, 16), (4, 4, 0, 0)))
    assert "lpips" not in m.frame and "alexnet-owt-7be5be79.pth" in m.missing["lpips"]
    assert str(tmp_path / "hub" / "checkpoints") in m.missing["lpips"]
    assert "i3d_torchscript.pt" in m.missing["fvd"]
    report = m.report()
    assert "generated region: PSNR 100.00 dB" in report and "LPIPS: not computed" in report


def test_frames_are_resized_to_the_papers_square():
    frames = torch.rand(3, 120, 208, 3)
    out = resize_frames(frames)
    assert out.shape == (3, 256, 256, 3) and 0 <= out.min() and out.max() <= 1
    assert resize_frames(torch.rand(1, 512, 512, 3)).shape == (1, 256, 256, 3)


@pytest.mark.slow
def test_the_evaluation_benchmark_runs_end_to_end_through_a_real_server(comfy_server, capsys, monkeypatch):
    """benchmarks/evaluate.py on the demo clip with the random nano model, on the session's real ComfyUI server:
    Load Video -> Get Video Components -> M3DDM Evaluate for each video, and the script prints the figures."""
    import importlib.util
    import re
    import sys

    from comfy_env import DEMO_CLIP, REPO, TEST_MODEL
    # the script puts the repository first on sys.path, where its nodes/ would shadow ComfyUI's nodes module for
    # the tests that import the plugin later: the path is restored after this test
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("evaluate_benchmark", REPO / "benchmarks" / "evaluate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = bench.parse_args(["--video", str(DEMO_CLIP), "--video", str(DEMO_CLIP), "--mask-ratio", "0.25",
                             "--steps", "1", "--scheduler", "ddim", "--guidance", "1", "1", "--working-size", "128"])
    bench.evaluate_on(comfy_server, bench.videos_of(args.video), TEST_MODEL, "taesd", args)
    out = capsys.readouterr().out
    assert out.count("generated region: PSNR") == 2 and "LPIPS: not computed" in out
    last = re.search(r"ratio=0.25 videos=2 psnr=([\d.]+) ssim=([\d.]+) mse=([\d.]+) region_psnr=([\d.]+) "
                     r"region_ssim=([\d.]+) lpips=none fvd=none", out)
    assert last, out[-2000:]
    psnr, ssim, mse, region_psnr, _ = (float(g) for g in last.groups())
    assert 0 < region_psnr < psnr < 100 and 0 < ssim <= 1 and 0 < mse < 1
    assert "fvd: not computed" in out
