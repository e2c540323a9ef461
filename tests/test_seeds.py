"""One seed rule: every shot's, pass's and re-render's seed derives from the user's seed in pipeline/seeds.py, and
the plan carries the results to the executors, the Ray driver and the resume key."""
import ast
from pathlib import Path

from m3ddm_core import plan_video
from m3ddm_core.pipeline.seeds import NOISE, RERENDER, SHOT, derive_seed

CORE = Path(__file__).resolve().parent.parent / "m3ddm_core"
NODES = CORE.parent / "nodes"


def test_the_rule_is_seed_plus_a_prime_per_stream_modulo_2_63():
    assert derive_seed(7, SHOT, 0) == 7  # the first shot keeps the user's seed
    assert derive_seed(7, SHOT, 2) == 7 + 2 * 1_000_003
    assert derive_seed(7, NOISE, 3) == 7 + 3 * 7_919
    assert derive_seed(7, RERENDER, 1) == 7 + 104_729
    assert derive_seed(2 ** 64 - 1, NOISE, 0) == 2 ** 63 - 1  # the largest seed a node takes, reduced
    assert len({derive_seed(7, step, n) for step in (SHOT, NOISE, RERENDER) for n in range(1, 50)}) == 3 * 49


def test_the_plan_carries_every_seed():
    plan = plan_video(64, [30], "15,5,1", seed=11)
    for p in plan.passes:
        assert p.seed == derive_seed(11, SHOT, p.shot)
        assert p.noise_seed == derive_seed(p.seed, NOISE, p.noise_index)
    assert plan.seed == 11
    rerolled = plan_video(64, [30], "15,5,1", seed=11, shot_seeds={1: 99})
    assert {p.seed for p in rerolled.passes if p.shot == 1} == {99}
    assert [p.seed for p in rerolled.passes if p.shot == 0] == [p.seed for p in plan.passes if p.shot == 0]
    assert rerolled.passes[-1].reseeded(5).noise_seed == derive_seed(5, NOISE, rerolled.passes[-1].noise_index)


def _numbers_and_seeding_calls(path: Path) -> tuple[set, list]:
    tree = ast.parse(path.read_text())
    numbers = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is int}
    seeding = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == "manual_seed"]
    return numbers, seeding


def test_no_other_module_derives_a_seed():
    """The streams' steps appear only in seeds.py, and the only generator seeded in the core and the nodes is the
    pass noise's, with a seed the plan derived."""
    steps = {SHOT, NOISE, RERENDER}
    owners, seeded = [], []
    for path in sorted([*CORE.rglob("*.py"), *NODES.glob("*.py")]):
        numbers, seeding = _numbers_and_seeding_calls(path)
        if numbers & steps and path.name != "seeds.py":
            owners.append(path.name)
        seeded += [f"{path.relative_to(CORE.parent)}:{line}" for line in seeding]
    assert owners == []
    assert len(seeded) == 1 and seeded[0].startswith("m3ddm_core/pipeline/passes.py"), seeded
