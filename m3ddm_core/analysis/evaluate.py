"""Outpainting quality by the papers' protocol: mask a ground-truth video's borders, outpaint them back, and
measure the generated region against the truth.

M3DDM (ACM MM 2023, section 4.2.2) evaluates horizontal outpainting on DAVIS and YouTube-VOS with mask ratios
0.25 and 0.666 -- that share of the frame width is removed, half on each side -- on frames at 256x256 (as HERO,
which compares against it, states), with MSE, PSNR and SSIM on frames in [0, 1], LPIPS on [-1, 1] and FVD over 16
frames sampled uniformly per video. PSNR, SSIM and MSE come from ``torchmetrics``; LPIPS (``torchmetrics`` with
torchvision's AlexNet) and FVD (the I3D network, a TorchScript file) only where their weights are on this
machine -- otherwise the report says so instead of substituting anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..pipeline.canvas import CanvasError, CanvasPlan, plan_canvas
from ..pipeline.composite import composite
from ..pipeline.frame_canvas import FrameCanvas
from ..pipeline.passes import SampleSettings
from ..pipeline.parameters import EVALUATION_DIRECTIONS as DIRECTIONS

PAPER_MASK_RATIOS = (0.25, 0.666)
PAPER_SIZE = 256
FVD_FRAMES = 16
LPIPS_WEIGHTS = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet, LPIPS's default backbone


def evaluation_padding(frame_hw: tuple[int, int], mask_ratio: float, direction: str = "horizontal") \
        -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` pixels masked out of a ``(H, W)`` frame: ``mask_ratio`` of the width
    (horizontal), of the height (vertical) or of both (all sides), split evenly between the two sides."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is unknown; choose one of {', '.join(DIRECTIONS)}")
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask ratio {mask_ratio} must lie between 0 and 1 (the papers use 0.25 and 0.666)")
    h, w = frame_hw

    def split(size: int) -> tuple[int, int]:
        masked = min(size - 1, max(2, round(size * mask_ratio)))
        return masked // 2, masked - masked // 2
    left, right = split(w) if direction in ("horizontal", "all sides") else (0, 0)
    top, bottom = split(h) if direction in ("vertical", "all sides") else (0, 0)
    return left, right, top, bottom


def generated_region(frame_hw: tuple[int, int], padding: Sequence[int]) -> torch.Tensor:
    """``[H, W]`` bool, True where the border was masked (and so generated)."""
    h, w = frame_hw
    left, right, top, bottom = padding
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[top:h - bottom, left:w - right] = False
    return mask


def resize_frames(frames: torch.Tensor, size: int = PAPER_SIZE) -> torch.Tensor:
    """``[N, H, W, 3]`` float 0..1 -> ``[N, size, size, 3]`` (area filter when shrinking, bicubic otherwise)."""
    x = frames.permute(0, 3, 1, 2).float()
    mode = "area" if min(frames.shape[1:3]) >= size else "bicubic"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=(size, size), mode=mode, **kwargs).clamp(0, 1).permute(0, 2, 3, 1)


@dataclass(frozen=True)
class EvaluationTask:
    """The papers' protocol applied to a clip: the ``truth`` ``[N, H, W, 3]`` (resized to 256x256 when asked), the
    ``visible`` middle left after masking the border, the canvas ``plan`` that outpaints it back to the truth's
    size, and the ``region`` ``[H, W]`` that is measured (True where generated)."""

    truth: torch.Tensor
    visible: torch.Tensor
    plan: CanvasPlan
    region: torch.Tensor
    mask_ratio: float = 0.25
    direction: str = "horizontal"
    working_size: int = PAPER_SIZE

    @property
    def canvas(self) -> FrameCanvas:
        """The visible frames with their plan, to :meth:`.FrameCanvas.prepare`."""
        return FrameCanvas.of(self.visible, self.plan)

    def score(self, canvases: torch.Tensor, lpips: bool = True) -> tuple[torch.Tensor, "Metrics"]:
        """The outpainted clip (``canvases``: the working canvases sampled for ``visible`` with ``plan``, put back
        around it without feathering, as the papers measure) and its :func:`evaluate_frames` metrics."""
        outpainted = composite(self.visible, canvases, self.plan, feather=0)
        return outpainted, evaluate_frames(outpainted, self.truth, self.region, lpips=lpips)

    def report(self, metrics: "Metrics", settings: SampleSettings, seed: int) -> str:
        """What was measured and how it was sampled (a line), then the figures (:meth:`Metrics.report`)."""
        (h, w), s = self.truth.shape[1:3], settings
        return (f"M3DDM evaluation ({self.plan.family}, working size {self.working_size}): {self.direction}, mask "
                f"ratio {self.mask_ratio:g}, {w}x{h}, {s.scheduler} {s.steps} steps, s1 {s.s1:g}, s2 {s.s2:g}, seed "
                f"{seed}\n" + metrics.report())


def evaluation_task(frames: torch.Tensor, mask_ratio: float, direction: str = "horizontal", paper_size: bool = True,
                    working_size: int = PAPER_SIZE, family: str = "m3ddm") -> EvaluationTask:
    """Mask ``frames`` (``[N, H, W, 3]`` float 0..1) as the papers do -- ``mask_ratio`` of the width, the height or
    both (``direction``) hidden at the borders -- and plan the outpainting of what is left back to the full frame.
    Raises ValueError with what to change when the masked frame cannot map back exactly."""
    truth = frames.float().cpu()
    if paper_size:
        truth = resize_frames(truth, PAPER_SIZE)
    hw = (int(truth.shape[1]), int(truth.shape[2]))
    padding = evaluation_padding(hw, mask_ratio, direction)
    left, right, top, bottom = padding
    visible = truth[:, top:hw[0] - bottom, left:hw[1] - right].contiguous()
    try:
        plan = plan_canvas(tuple(visible.shape[1:3]), padding=padding, canvas_size=working_size, family=family)
    except CanvasError as exc:
        raise ValueError(f"{exc}; try another mask ratio") from None
    if tuple(plan.output_hw) != hw or tuple(plan.content_out_yx) != (top, left):
        raise ValueError(f"the masked frame does not map back onto {hw[1]}x{hw[0]}; try another mask ratio")
    return EvaluationTask(truth, visible, plan, generated_region(hw, padding), mask_ratio, direction, working_size)


def lpips_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_WEIGHTS


@dataclass
class Metrics:
    """Means over the frames. ``region``: the generated border only; ``frame``: whole frames (what the papers'
    tables report). ``missing`` says why a metric is absent."""

    frames: int
    region: dict = field(default_factory=dict)
    frame: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)

    def report(self) -> str:
        def fmt(d):
            return ", ".join(f"{k.upper()} {v:.4f}" if k != "psnr" else f"PSNR {v:.2f} dB" for k, v in d.items())
        lines = [f"{self.frames} frames", f"generated region: {fmt(self.region)}", f"whole frames: {fmt(self.frame)}"]
        lines += [f"{name.upper()}: not computed: {why}" for name, why in self.missing.items()]
        return "\n".join(lines)


def _nchw(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2).float().clamp(0, 1)


def evaluate_frames(result: torch.Tensor, truth: torch.Tensor, region: torch.Tensor, lpips: bool = True,
                    i3d_path: Optional[Path] = None) -> Metrics:
    """Compare ``result`` with ``truth`` (``[N, H, W, 3]`` float 0..1) over ``region`` (``[H, W]`` bool, the
    generated pixels) and over whole frames. PSNR is per frame, then averaged (identical frames count as 100 dB)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    if result.shape != truth.shape:
        raise ValueError(f"result {tuple(result.shape)} and ground truth {tuple(truth.shape)} differ in shape")
    if tuple(region.shape) != tuple(truth.shape[1:3]) or not region.any():
        raise ValueError("the generated region must be an [H, W] mask with at least one pixel")
    x, y = _nchw(result), _nchw(truth)
    n = x.shape[0]
    _, ssim_map = structural_similarity_index_measure(x, y, data_range=1.0, return_full_image=True, reduction="none")
    metrics = Metrics(frames=n)
    for name, keep in (("region", region), ("frame", torch.ones_like(region))):
        xs, ys = x[:, :, keep], y[:, :, keep]  # [N, 3, pixels]
        mse = ((xs - ys) ** 2).mean(dim=(1, 2))
        psnr = [min(100.0, float(peak_signal_noise_ratio(xs[i], ys[i], data_range=1.0))) if mse[i] > 0 else 100.0
                for i in range(n)]
        getattr(metrics, name).update(psnr=float(np.mean(psnr)), ssim=float(ssim_map[:, :, keep].mean()),
                                      mse=float(mse.mean()))
    if lpips:
        if lpips_weights_path().is_file():
            from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
            metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)  # takes [0, 1] in
            metrics.frame["lpips"] = float(metric(x, y))
        else:
            metrics.missing["lpips"] = (f"its AlexNet weights ({LPIPS_WEIGHTS}) are not in "
                                        f"{lpips_weights_path().parent}; put the file there (torchvision's ImageNet "
                                        "AlexNet) to get LPIPS")
    if i3d_path is None or not Path(i3d_path).is_file():
        metrics.missing["fvd"] = ("needs the I3D network as TorchScript (i3d_torchscript.pt, as used for FVD by "
                                  "StyleGAN-V) and a set of videos; " + ("none given" if i3d_path is None else
                                                                         f"{i3d_path} does not exist"))
    return metrics


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature vectors ``[n, d]`` (FVD on I3D
    features): ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 sqrt(S_a S_b))``, the matrix root by ``scipy.linalg.sqrtm``."""
    from scipy import linalg

    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    s_a, s_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
    root = linalg.sqrtm(s_a @ s_b)
    if np.iscomplexobj(root):
        root = root.real  # rounding leaves tiny imaginary parts
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


def i3d_features(videos: Sequence[torch.Tensor], i3d_path: Path, device="cpu") -> np.ndarray:
    """I3D features ``[len(videos), d]`` of videos ``[N, H, W, 3]`` float 0..1: 16 frames sampled uniformly,
    resized to 224, scaled to [-1, 1] -- the StyleGAN-V FVD recipe for its TorchScript I3D."""
    model = torch.jit.load(str(i3d_path), map_location=device).eval()
    feats = []
    for video in videos:
        idx = np.linspace(0, video.shape[0] - 1, FVD_FRAMES).astype(int)
        clip = F.interpolate(_nchw(video[idx]), size=(224, 224), mode="bilinear", align_corners=False)
        clip = (clip * 2 - 1).permute(1, 0, 2, 3).unsqueeze(0).to(device)  # [1, 3, T, 224, 224]
        with torch.no_grad():
            feats.append(model(clip, rescale=False, resize=False, return_features=True).cpu().numpy()[0])
    return np.stack(feats)

