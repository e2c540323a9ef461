"""pipeline/parameters.py: what every front-end offers -- the choices, and each setting's default, limits and
meaning -- as the batch command's options show them and check_inputs checks them (the nodes' widgets:
tests/test_nodes.py::test_widgets_show_the_core_settings_unchanged)."""
import argparse
import inspect

import pytest

from m3ddm_core import (CHOICES, OFFICIAL_CANVAS, PARAMETERS, SCHEDULERS, SCHEDULES, STRIDE_PRESETS, SampleSettings,
                        check_inputs, compare_frames, composite, evaluation_task)


def test_the_choices_are_the_lists_of_the_modules_that_define_them():
    assert CHOICES.schedulers == tuple(SCHEDULERS) and CHOICES.schedules == tuple(SCHEDULES)
    assert CHOICES.strides == ("auto", *STRIDE_PRESETS)
    assert CHOICES.working_size in CHOICES.working_sizes and 64 in CHOICES.working_sizes
    assert 1024 in CHOICES.working_sizes and 1032 not in CHOICES.working_sizes and 260 not in CHOICES.working_sizes
    for size in (CHOICES.working_sizes[0], CHOICES.working_sizes[-1]):
        assert check_inputs(working_size=size) == []


def test_each_default_is_the_one_the_core_uses_and_within_its_own_limits():
    sampling = SampleSettings()
    assert (PARAMETERS["steps"].default, PARAMETERS["context_guidance"].default, PARAMETERS["global_guidance"].default,
            PARAMETERS["scheduler"].default, PARAMETERS["low_vram"].default) == \
        (sampling.steps, sampling.s1, sampling.s2, sampling.scheduler, sampling.sequential)
    named = ("scheduler", "steps", "context_guidance", "global_guidance", "low_vram")
    assert SampleSettings.of(**{n: PARAMETERS[n].default for n in named}) == sampling  # the names, read as the core's
    assert SampleSettings.of("ddim", 7, 1.5, 3.0, True) == SampleSettings(7, 1.5, 3.0, "ddim", True)
    assert PARAMETERS["working_size"].default == OFFICIAL_CANVAS == 256
    # the library functions' own defaults agree with what the front-ends offer
    defaults = {f: {k: v.default for k, v in inspect.signature(f).parameters.items()}
                for f in (composite, compare_frames, evaluation_task)}
    assert PARAMETERS["feather"].default == defaults[composite]["feather"]
    assert PARAMETERS["layout"].default == defaults[compare_frames]["layout"]
    assert PARAMETERS["direction"].default == defaults[evaluation_task]["direction"]
    assert PARAMETERS["paper_size"].default == defaults[evaluation_task]["paper_size"]
    for name, p in PARAMETERS.items():
        assert len(p.help) > 20 and p.problem(p.default) is None, name
        assert (p.low is None) == (p.high is None) and not (p.options and p.low is not None), name
        for limit in (p.low, p.high, p.step):
            assert limit is None or type(limit) is type(p.default), name  # an INT widget gets int limits


def test_values_outside_their_limits_or_options_are_named_by_the_one_check():
    assert check_inputs(steps=0, context_guidance=20.5, seed=-1, scheduler="euler", feather=8) == [
        "steps: 0 is below 1, the least it takes", "context_guidance: 20.5 is above 20.0, the most it takes",
        "seed: -1 is below 0, the least it takes", "scheduler: 'euler' is unknown; choose one of pndm, ddim, dpmpp_2m"]
    assert check_inputs(steps=1000, global_guidance=0.0, seed=2 ** 64 - 1, strides="auto", working_size=512) == []
    with pytest.raises(KeyError):  # a setting that does not exist is a programming error, not a user's
        check_inputs(stpes=10)


@pytest.fixture
def batch_options(monkeypatch) -> dict:
    """The batch command's parser actions by their destination, as ``main`` builds them."""
    from m3ddm_core.apps import batch

    seen = {}

    def parse(self, args=None, namespace=None):
        seen.update({a.dest: a for a in self._actions})
        raise SystemExit(0)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    with pytest.raises(SystemExit):
        batch.main(["x"])
    return seen


def test_the_batch_command_offers_the_same_choices_defaults_and_help(batch_options):
    seen = batch_options
    assert tuple(seen["scheduler"].choices) == CHOICES.schedulers
    assert tuple(seen["schedule"].choices) == CHOICES.schedules
    assert tuple(seen["dtype"].choices) == ("auto", *CHOICES.dtypes)
    assert tuple(seen["family"].choices) == ("auto", *CHOICES.families)
    assert seen["strides"].choices is None  # strides of one's own, e.g. 10,2,1, are checked by check_inputs
    options = {"steps": "steps", "s1": "context_guidance", "s2": "global_guidance", "seed": "seed",
               "strides": "strides", "schedule": "schedule", "setups": "setups", "feather": "feather",
               "dtype": "dtype", "family": "family", "working_size": "working_size", "low_vram": "low_vram",
               "scheduler": "scheduler"}
    for dest, name in options.items():
        p = PARAMETERS[name]
        assert seen[dest].default == p.default and type(seen[dest].default) is type(p.default), dest
        assert seen[dest].help.startswith(p.help), dest
