"""``bench/calibrate.py``: the machine's calibration figure, and every timing benchmark
printing it beside its own figures."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

#: Scripts in bench/ that time nothing: they run a recipe.
NOT_TIMING = {"calibrate.py", "reference_command.py"}


@pytest.fixture(scope="module")
def calibrate_module():
    sys.path.insert(0, str(BENCH))
    try:
        import calibrate

        yield calibrate
    finally:
        sys.path.remove(str(BENCH))


def test_calibration_times_every_part(calibrate_module, monkeypatch):
    calls: list[str] = []
    parts = {name: (lambda name=name: calls.append(name)) for name in calibrate_module.PARTS}
    monkeypatch.setattr(calibrate_module, "PARTS", parts)
    torch = __import__("torch")
    before = torch.get_num_threads()
    found = calibrate_module.calibrate(repeats=2, threads=1)
    assert calls == [name for name in parts for _ in range(3)]  # a warm-up, then 2 timed
    assert found["calibration_s"] == pytest.approx(sum(found[p] for p in parts), abs=2e-3)
    assert found["threads"] == 1 and found["cpu"]
    assert torch.get_num_threads() == before


def test_the_workload_runs(calibrate_module):
    for work in calibrate_module.PARTS.values():
        work()


def test_with_calibration_adds_the_figure_beside_a_result(calibrate_module, monkeypatch, capsys):
    fake = {"calibration_s": 3.0, "torch_s": 1.0, "numpy_s": 1.0, "python_s": 1.0,
            "threads": 2, "cpu": "test CPU"}  # fmt: skip
    monkeypatch.setattr(calibrate_module, "calibrate", lambda threads=2: dict(fake))
    out = calibrate_module.with_calibration({"fit_s": 6.0})
    assert out["fit_s"] == 6.0 and out["calibration_s"] == 3.0
    assert out["calibration"]["cpu"] == "test CPU" and "calibration_s" not in out["calibration"]
    assert "calibration 3.000 s (test CPU" in capsys.readouterr().out
    drifted = calibrate_module.with_calibration({"fit_s": 6.0}, before={"calibration_s": 2.0})
    assert drifted["calibration_s"] == 2.5
    assert drifted["calibration"]["before_s"] == 2.0 and drifted["calibration"]["after_s"] == 3.0
    assert "mean of 2.000 s before and 3.000 s after" in capsys.readouterr().out


@pytest.mark.parametrize(
    "script", sorted(p.name for p in BENCH.glob("*.py") if p.name not in NOT_TIMING)
)
def test_every_timing_benchmark_prints_the_calibration(script):
    tree = ast.parse((BENCH / script).read_text())
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert "with_calibration" in calls, f"bench/{script} prints no calibration_s"


def test_the_app_benchmark_gives_its_times_in_calibration_units(calibrate_module, monkeypatch):
    # bench/app.py by its path: ``app`` is also the Streamlit entry's name. It puts bench/ on
    # sys.path when it loads; a copy of the path is given back after the test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("bench_app", BENCH / "app.py")
    app_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app_bench)

    result = {
        "first_analysis_s": 240.0,
        "cold_ready_s": 600.0,
        "stage_s": {"world": 60.0},
        "browser_page_s": {"Home": 0.5},
        "load_page_s": {"Home": 1.5, "Rarest tracks": None},  # None: no visit finished
        "server_cpu_share": 0.05,
        "calibration_s": 3.0,
    }
    units = app_bench.per_calibration(result)
    assert units == {
        "first_analysis_s": 80.0,
        "cold_ready_s": 200.0,
        "stage_s": {"world": 20.0},
        "browser_page_s": {"Home": 0.167},
        "load_page_s": {"Home": 0.5, "Rarest tracks": None},
    }
