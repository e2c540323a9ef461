"""The headless batch command: files and folders in, one whole mp4 out per video, failures summarized, re-runs
skip finished outputs; local VAE files in diffusers or original (LDM) format."""
import dataclasses
import logging
import re
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from comfy_env import REPO
from conftest import NANO_CONFIG
from helpers import load_clip
from m3ddm_core import VideoWriter, probe, read_audio
from m3ddm_core.apps.batch import main
from m3ddm_core.apps.jobs import BatchError, load_vae, output_path, vae_functions

sys.path.insert(0, str(REPO / "scripts"))
from random_weights import write_random_m3ddm  # noqa: E402

TINY_VAE = dict(block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, norm_num_groups=4, latent_channels=4)


def _tiny_vae(seed=0):
    from diffusers import AutoencoderKL
    torch.manual_seed(seed)
    return AutoencoderKL(**TINY_VAE).eval()


def _to_ldm(state: dict, blocks: int) -> dict:
    """diffusers AutoencoderKL keys -> the original (LDM) layout of SD's VAE files, e.g.
    vae-ft-mse-840000-ema-pruned.safetensors: the inverse of what diffusers converts on loading."""
    out = {}
    for key, value in state.items():
        k = key
        k = re.sub(r"down_blocks\.(\d+)\.resnets\.", r"down.\1.block.", k)
        k = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", k)
        k = re.sub(r"up_blocks\.(\d+)\.resnets\.", lambda m: f"up.{blocks - 1 - int(m[1])}.block.", k)
        k = re.sub(r"up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"up.{blocks - 1 - int(m[1])}.upsample.", k)
        k = re.sub(r"mid_block\.resnets\.(\d)\.", lambda m: f"mid.block_{int(m[1]) + 1}.", k)
        k = k.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        attn = re.match(r"(.*)mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.*)", k)
        if attn:
            name = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[attn[2]]
            k = f"{attn[1]}mid.attn_1.{name}.{attn[3]}"
            if name != "norm" and value.ndim == 2:
                value = value[:, :, None, None]  # 1x1 convolutions in the original
        out[k] = value
    return out


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    write_random_m3ddm(root / "m3ddm-nano", NANO_CONFIG)
    vae = _tiny_vae()
    vae.save_pretrained(str(root / "vae"), safe_serialization=True)
    videos = root / "in"
    videos.mkdir()
    frames = (load_clip(20) * 255).round().to(torch.uint8).numpy()
    t = np.arange(int(20 / 25 * 16000), dtype=np.float32) / 16000
    audio = (np.sin(2 * np.pi * 330 * t)[None] * 0.3).astype(np.float32), 16000
    for name, n, sound in (("a.mp4", 20, audio), ("b.mp4", 12, None)):
        with VideoWriter(videos / name, Fraction(25), 208, 120, audio=sound) as w:
            for f in frames[:n]:
                w.write(f)
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    (videos / "empty.mov").write_bytes(b"")  # an interrupted copy
    (videos / "notes.txt").write_text("shot list")  # not a video: named in the summary, not dropped silently
    return root


def _args(assets, out, *extra):
    return [str(assets / "in"), "--ratio", "9:16", "--out", str(out), "--model", str(assets / "m3ddm-nano"),
            "--vae", str(assets / "vae"), "--steps", "1", "--scheduler", "ddim", "--working-size", "128", "--quiet",
            *extra]


def test_a_folder_becomes_one_whole_video_per_input_and_failures_are_summarized(assets, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(assets, out)) == 1  # two inputs are broken
    text = capsys.readouterr().out
    assert "done: 2 written, 0 skipped (already there), 2 failed, 1 not videos" in text
    assert re.search(r"broken\.mp4: .+", text) and "empty.mov: the file is empty (0 bytes)" in text
    assert re.search(r"left out; not videos \(by their suffix, .*\): notes\.txt", text)
    a, b = probe(output_path(assets / "in" / "a.mp4", out, "9:16")), probe(out / "b_9x16.mp4")
    assert (a.frames, a.fps, a.width, a.height) == (20, 25, 208, 370) and b.frames == 12
    sound = read_audio(out / "a_9x16.mp4", 0, 10)
    assert sound is not None and abs(sound[0].shape[1] / sound[1] - 0.8) < 0.05
    assert read_audio(out / "b_9x16.mp4", 0, 10) is None
    assert sorted(p.name for p in out.iterdir()) == ["a_9x16.mp4", "b_9x16.mp4"]  # nothing half-written
    # a re-run skips what is finished and tries the failure again
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(_args(assets, out)) == 1
    assert "done: 0 written, 2 skipped (already there), 2 failed, 1 not videos" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_folder_without_videos_names_what_it_holds(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cover.jpg").write_bytes(b"jpeg")
    assert main([str(tmp_path / "in"), "--ratio", "9:16", "--out", str(tmp_path / "out"), "--model", "m",
                 "--vae", "v"]) == 2
    err = capsys.readouterr().err
    assert "no videos found in" in err and "not videos (by their suffix" in err and "cover.jpg" in err


def test_models_that_do_not_load_are_a_clear_error(assets, tmp_path, capsys):
    assert main(_args(assets, tmp_path / "out", "--vae", str(tmp_path / "nowhere.safetensors"))) == 2
    assert "cannot load the models:" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_an_original_format_vae_file_loads_to_the_same_model_as_its_diffusers_folder(tmp_path):
    from safetensors.torch import save_file
    vae = _tiny_vae(seed=3)
    path = tmp_path / "tiny-vae.safetensors"
    save_file({k: v.contiguous() for k, v in _to_ldm(vae.state_dict(), 4).items()}, str(path))
    import json
    path.with_suffix(".json").write_text(json.dumps(TINY_VAE))  # not SD 1.x's size: its config beside it
    loaded = load_vae(path, torch.device("cpu"), torch.float32)
    pixels = torch.rand(2, 64, 64, 3)
    enc_a, dec_a = vae_functions(vae)
    enc_b, dec_b = vae_functions(loaded)
    with torch.no_grad():
        assert torch.allclose(enc_a(pixels), enc_b(pixels), atol=1e-6)  # a wrong mapping differs wholesale
        lat = enc_a(pixels)
        # 1x1 convolutions vs linear layers in the attention: float rounding only (measured 2.7e-6)
        assert torch.allclose(dec_a(lat), dec_b(lat), atol=1e-5) and dec_a(lat).shape == (2, 64, 64, 3)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)}, str(wrong))
    with pytest.raises(BatchError, match="wrong.safetensors is not an SD 1.x VAE"):
        load_vae(wrong, torch.device("cpu"), torch.float32)


def test_phone_vfr_and_odd_sized_files_come_out_as_players_show_them(assets, tmp_path, capsys):
    """The batch command on files as phones and editors write them: a rotated portrait clip, a variable-frame-rate
    clip with sound and an odd-sized one, each outpainted to 16:9 through the streamed path."""
    import media_sources as media
    folder = tmp_path / "in"
    folder.mkdir()
    media.rotated_phone_clip(folder / "phone.mp4", n=6)
    pts = media.vfr_clip(folder / "vfr.mp4", [33] * 10 + [100] * 6, flashes=(15,))
    media.odd_sized_clip(folder / "odd.mov", hw=(179, 201))
    out = tmp_path / "out"
    args = [str(folder), "--ratio", "16:9", "--out", str(out), "--model", str(assets / "m3ddm-nano"),
            "--vae", str(assets / "vae"), "--steps", "1", "--scheduler", "ddim", "--working-size", "128", "--quiet"]
    assert main(args) == 0, capsys.readouterr()
    phone, vfr, odd = (probe(out / f"{name}_16x9.mp4") for name in ("phone", "vfr", "odd"))
    assert (phone.width, phone.height, phone.rotation, phone.frames) == (568, 320, 0, 6)
    assert vfr.frames == 17 and vfr.vfr and [p * vfr.time_base * 1000 for p in vfr.pts] == pytest.approx(pts, abs=2)
    sound, rate = read_audio(out / "vfr_16x9.mp4", 0, 10)
    assert abs(sound.shape[1] / rate - vfr.duration) < 0.08
    assert (odd.width, odd.height) == (320, 180)  # 201x179 -> 16:9 = 319x180, rounded up to even sides


def test_the_family_and_working_size_are_options_of_the_command(assets, tmp_path, capsys):
    """--family m3ddm_plus --working-size 128: M3DDM+'s preprocessing on a 128 canvas (another result than M3DDM's
    at the same size); a working size that is not a multiple of 8 is refused before anything loads."""
    video = assets / "in" / "b.mp4"
    common = [str(video), "--ratio", "9:16", "--model", str(assets / "m3ddm-nano"), "--vae", str(assets / "vae"),
              "--steps", "1", "--scheduler", "ddim", "--quiet", "--working-size", "128"]
    latents = {}
    for family in ("m3ddm_plus", "m3ddm"):
        spec_out = tmp_path / family
        from m3ddm_core.apps.jobs import JobSpec, load_job, run_batch
        from m3ddm_core.pipeline.passes import SampleSettings
        job = load_job(JobSpec(str(assets / "m3ddm-nano"), str(assets / "vae"), "9:16",
                               SampleSettings(steps=1, scheduler="ddim"), family=family, working_size=128))
        assert job.family == family
        got = {}
        with torch.inference_mode():
            run_batch(job, [video], spec_out, show=False, latents=got)
        latents[family] = got[video]
        assert latents[family].shape[-2:] == (16, 16) and probe(spec_out / "b_9x16.mp4").frames == 12
    assert not torch.equal(latents["m3ddm_plus"], latents["m3ddm"])
    assert main([*common, "--out", str(tmp_path / "cli"), "--family", "m3ddm_plus", "--qc"]) == 0
    assert (tmp_path / "cli" / "b_9x16.mp4").exists()
    # --qc: the quality report beside the output, its windows the plan's finest passes
    import json

    from m3ddm_core import plan_video, plan_windows
    report = json.loads((tmp_path / "cli" / "b_9x16.qc.json").read_text())
    assert report["frames"] == 12 and report["seams"] == ["top", "bottom"]
    assert [(w["start"], w["end"]) for w in report["windows"]] == plan_windows(plan_video(12))
    assert len(report["per_frame"]["seam"]) == 12 and "proxies" in report["note"]
    assert main([*common[:-1], "130", "--out", str(tmp_path / "bad")]) == 2
    assert "--working-size: working size 130 must be a multiple of 8 from 64 to 1024" in capsys.readouterr().err
    # the core's one input check: every bad argument named at once, before anything loads
    bad = [*common[:-1], "2048", "--strides", "5,15,1", "--steps", "0", "--out", str(tmp_path / "bad")]
    bad[bad.index("--ratio") + 1] = "9x16"
    assert main(bad) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["--steps", "--working-size", "--ratio", "--strides"], err
    assert err[0] == "--steps: 0 is below 1, the least it takes"  # the limit the nodes' widget shows
    assert not (tmp_path / "bad").exists()


def _batch_process(args, threads: int = 1):
    """``python -m m3ddm_core.batch ARGS`` as a user runs it (its own process, one torch thread)."""
    import os
    import subprocess
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen([sys.executable, "-m", "m3ddm_core.batch", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_batch_killed_mid_video_samples_only_the_remaining_passes_when_run_again(assets, tmp_path, caplog):
    """SIGKILL while a video is being sampled, then the same batch again: the finished passes come from the
    store in the output folder, only the others are sampled, and the latents equal an uninterrupted run's bit for
    bit (both with one torch thread, as the killed process had); the store is gone once the video is written."""
    import logging
    import signal
    import time

    from m3ddm_core import plan_video
    from m3ddm_core.apps.jobs import JobSpec, load_job, run_batch
    from m3ddm_core.pipeline.passes import SampleSettings
    frames = (load_clip(64) * 255).round().to(torch.uint8).numpy()
    (tmp_path / "in").mkdir()
    video = tmp_path / "in" / "long.mp4"
    with VideoWriter(video, Fraction(25), 208, 120) as w:
        for f in frames:
            w.write(f)
    total = len(plan_video(64, (), "15,5,1"))
    out = tmp_path / "out"
    proc = _batch_process([str(video), "--ratio", "9:16", "--out", str(out), "--model", str(assets / "m3ddm-nano"),
                           "--vae", str(assets / "vae"), "--steps", "2", "--scheduler", "ddim", "--strides", "15,5,1",
                           "--seed", "3", "--working-size", "128"])
    store = out / ".m3ddm_resume"
    deadline = time.monotonic() + 300
    while len(list(store.glob("*/pass_*.safetensors"))) < 3:
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no pass was stored"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    kept = len(list(store.glob("*/pass_*.safetensors")))
    assert 3 <= kept < total and not (out / "long_9x16.mp4").exists()

    spec = JobSpec(str(assets / "m3ddm-nano"), str(assets / "vae"), "9:16",
                   SampleSettings(steps=2, scheduler="ddim"), seed=3, strides="15,5,1", working_size=128)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        job = load_job(spec)
        resumed, fresh = {}, {}
        with torch.inference_mode(), caplog.at_level(logging.INFO, logger="M3DDM"):
            assert run_batch(job, [video], out, show=False, latents=resumed)[0] == [video]
            assert f"sampled {total - kept} of {total} passes ({kept} resumed)" in caplog.text
            assert not store.exists()  # removed with the video's passes once it is written
            import dataclasses
            job.spec = dataclasses.replace(spec, resume=False)
            assert run_batch(job, [video], tmp_path / "fresh", show=False, latents=fresh)[0] == [video]
    finally:
        torch.set_num_threads(threads)
    assert not (tmp_path / "fresh" / ".m3ddm_resume").exists()
    assert torch.equal(resumed[video], fresh[video])
    assert probe(out / "long_9x16.mp4").frames == 64


def test_the_worst_windows_are_rendered_again_and_kept_only_where_they_score_better(assets, tmp_path):
    """--rerender-worst N: the N worst flagged windows sampled again with a derived seed; the report lists each with
    its score before and after, and the output holds the new latents exactly where a window was kept."""
    import json

    from m3ddm_core import plan_video
    from m3ddm_core.apps.jobs import JobSpec, load_job, run_batch
    from m3ddm_core.pipeline.passes import SampleSettings
    video = assets / "in" / "a.mp4"
    spec = JobSpec(str(assets / "m3ddm-nano"), str(assets / "vae"), "9:16", SampleSettings(steps=1, scheduler="ddim"),
                   strides="5,1", working_size=128, qc=True)
    job = load_job(spec)
    plain, again = {}, {}
    with torch.inference_mode():
        assert run_batch(job, [video], tmp_path / "plain", show=False, latents=plain)[0] == [video]
        import dataclasses
        job.spec = dataclasses.replace(spec, rerender_worst=2)
        assert run_batch(job, [video], tmp_path / "again", show=False, latents=again)[0] == [video]
    first = json.loads((tmp_path / "plain" / "a_9x16.qc.json").read_text())
    assert sum(bool(w["flags"]) for w in first["windows"]) >= 2  # a random model's borders are flagged
    report = json.loads((tmp_path / "again" / "a_9x16.qc.json").read_text())
    entries = report["rerendered"]
    assert len(entries) == 2 and all(first["windows"][e["window"]]["flags"] for e in entries)
    from m3ddm_core.pipeline.executors import dependents
    vp = plan_video(20, (), "5,1")
    for e in entries:
        # the same latents; the decoded mp4 may differ by x264's threaded choices
        assert e["before"] == pytest.approx(first["windows"][e["window"]]["badness"], rel=0.05)
        frames = [f for j in dependents(vp, [e["pass"]]) for _, f in vp.passes[j].in_video.writes]
        same = torch.equal(again[video][frames], plain[video][frames])
        assert same != e["kept"]  # new latents exactly where kept
    touched = {f for e in entries for j in dependents(vp, [e["pass"]]) for _, f in vp.passes[j].in_video.writes}
    untouched = sorted(set(range(20)) - touched)
    assert untouched and torch.equal(again[video][untouched], plain[video][untouched])
    assert not list((tmp_path / "again").glob(".*rerender*"))  # the trial file is gone


def test_detected_shots_of_one_camera_set_up_are_grouped_while_the_file_streams_in(assets, tmp_path, caplog):
    """The batch command (and Ray, which encodes through the same encode_file) groups returning set-ups as the
    nodes do: --setups auto (the default) groups an interview's A, B, A' in the pass that reads the file and finds
    its cuts; none keeps every shot its own; a label per shot decides by hand."""
    from constructed_edits import H, W, interview_edits
    from m3ddm_core.apps.jobs import JobSpec, encode_file, load_job
    from m3ddm_core.pipeline.passes import SampleSettings

    edit = interview_edits(0)[0]
    video = tmp_path / "interview.mp4"
    with VideoWriter(video, Fraction(25), W, H, crf=10) as writer:
        for start in (0, edit.cuts[0], edit.cuts[1]):
            for frame in edit.frames[start:start + 8]:
                writer.write(frame)
    spec = JobSpec(str(assets / "m3ddm-nano"), str(assets / "vae"), "9:16", SampleSettings(steps=1),
                   shots="detect", working_size=128, resume=False)
    job = load_job(spec)
    for setups, groups in (("auto", (0, 1, 0)), ("none", (0, 1, 2)), ("A B B", (0, 1, 1))):
        job = dataclasses.replace(job, spec=dataclasses.replace(spec, setups=setups))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="M3DDM"):
            plan = encode_file(job, video).video.plan
        assert plan.cuts == (8, 16) and plan.groups == groups, setups
        # the shots logged as M3DDM Outpaint Video logs them (media/outpainted.py), led by the file's name
        assert "[interview.mp4] 3 shot(s); cuts at frames [8, 16]" in caplog.text, setups
