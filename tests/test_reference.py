"""The experiment's shipped reference (rem_core.experiment.reference): ship, load, match, refuse."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from rem_core.config import RemConfig
from rem_core.evaluation import REPORTED_SUBSETS
from rem_core.experiment import (
    SegmentResults,
    experiment_intervals,
    load_reference,
    paper_claims,
    plan_experiment,
    read_experiment,
    read_reference,
    reference_status,
    run_experiment,
    ship_reference,
    verify,
    with_intervals,
    write_segment_results,
)
from rem_core.pipeline import code_fingerprints, dataset_key


def settings(config: RemConfig | None = None, **experiment) -> RemConfig:
    config = config or RemConfig.tiny()
    return dataclasses.replace(
        config, experiment=dataclasses.replace(config.experiment, **experiment)
    )


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def world(seed_tiny_world, root):
    """The tiny world in the cache, where ``rem experiment --preset tiny`` finds it."""
    return seed_tiny_world(root)


@pytest.fixture(scope="module")
def tiny_run(world, root):
    """Two rows of the tiny experiment at one seed, really trained."""
    config = settings(rows=("partial", "random"), seeds=1)
    result = run_experiment(config, world, root=root)
    return config, result, experiment_intervals(result)


def fake_frames(rng: np.random.Generator, large_recall: float) -> SegmentResults:
    """A run on 8 segments of 12 Regular and 4 Large boxes each."""
    gt_segment = np.repeat(np.arange(8), 16)
    gt_large = np.tile(np.r_[np.zeros(12, bool), np.ones(4, bool)], 8)
    found = rng.random(len(gt_segment)) < np.where(gt_large, large_recall, 0.8)
    segment = np.r_[gt_segment[found], np.repeat(np.arange(8), 6)]
    tp = np.r_[np.ones(found.sum(), bool), np.zeros(48, bool)]
    large = np.r_[gt_large[found], rng.random(48) < 0.2]
    return SegmentResults(
        segments=np.array([f"val-{i}" for i in range(8)]),
        subsets=REPORTED_SUBSETS,
        pred_segment=segment,
        pred_score=np.where(tp, rng.uniform(0.5, 1, len(tp)), rng.uniform(0, 0.7, len(tp))),
        pred_tp=tp,
        pred_in=np.stack([np.ones(len(tp), bool), ~large, large], axis=1),
        gt_count=np.stack([np.full(8, 16), np.full(8, 12), np.full(8, 4)], axis=1),
    )


def cache_fake_runs(folder, rows, seeds, rng) -> None:
    """Runs as the experiment caches them: Full and MD-REM++ find most Large boxes."""
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    curve = {"lower": [0.0, 50.0], "upper": [50.0, 100.0], "n_gt": [4, 4],
             "n_detected": [3, 1], "recall": [0.75, 0.25]}  # fmt: skip
    for row in rows:
        for seed in range(seeds):
            frames = fake_frames(rng, 0.95 if row in ("full", "md-rem++") else 0.3)
            ap = frames.ap()
            write_segment_results(folder / "runs" / f"{row}-seed{seed}.npz", frames)
            record = {
                "row": row, "seed": seed, "ap_all": ap["all"], "ap_regular": ap["regular"],
                "ap_large": ap["large"], "human_tracks": 3, "human_boxes": 30,
                "pseudo_boxes": 100, "train_steps": 10, "seconds": 2.0, "spearman": 0.0,
                "curve": curve,
            }  # fmt: skip
            (folder / "runs" / f"{row}-seed{seed}.json").write_text(json.dumps(record))


def test_a_tiny_experiment_ships_and_loads_back(tiny_run, world, tmp_path):
    config, result, intervals = tiny_run
    out = tmp_path / "reference"
    ship_reference(result, intervals, out, "rem experiment --preset tiny", config=config,
                   dataset=world)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "comparisons.csv", "curves.csv", "experiment.csv", "experiment.json",
        "intervals.csv", "provenance.json", "runs.csv",
    ]  # fmt: skip
    assert sum(p.stat().st_size for p in out.iterdir()) < 200_000

    reference, why = load_reference(config, world, out)
    assert why == "" and reference is not None
    expected = with_intervals(result.table, intervals)
    pd.testing.assert_frame_equal(reference.table, expected, check_dtype=False)
    pd.testing.assert_frame_equal(reference.runs, result.runs, check_dtype=False)
    pd.testing.assert_frame_equal(reference.intervals.rows, intervals.rows, check_dtype=False)
    for row, by_seed in result.curves.items():
        pd.testing.assert_frame_equal(reference.curves[row][0], by_seed[0], check_dtype=False)
    assert [c.sentence for c in paper_claims(reference.intervals)] == [
        c.sentence for c in paper_claims(intervals)
    ]

    p = reference.provenance
    assert p["experiment_key"] == plan_experiment(config, world).key == result.path.name
    assert p["dataset_key"] == dataset_key(world)
    assert p["code"] == code_fingerprints() and p["kernels"]["threads"] >= 1
    assert p["rows"] == ["partial", "random"] and p["seeds"] == {"partial": [0], "random": [0]}
    assert p["steps"] == int(result.runs["train_steps"].iloc[0])
    assert p["machine"]["cpus"] == os.cpu_count() and p["machine"]["torch"]
    assert p["command"] == "rem experiment --preset tiny"
    assert reference.label.startswith(f"Reference run: computed on {p['computed']} at commit ")
    assert "2 rows, 1 seed each (seed 0; 2 runs of" in reference.label
    # The rows and seeds asked for are not in the key: other rows and seeds still match.
    again, _ = load_reference(settings(rows=("random", "full"), seeds=3), world, out)
    assert again is not None
    assert again.for_rows(["random", "full"]).table["row"].tolist() == ["random"]
    assert again.for_rows(["full"]) is None


def test_claims_come_back_from_the_csvs_alone(world, tmp_path):
    rows = ["partial", "full", "random", "ensemble", "md-rem++"]
    config = settings(rows=tuple(rows), seeds=3)
    cache = tmp_path / "cache"
    cache_fake_runs(cache / "experiment" / plan_experiment(config, world).key, rows, 3,
                    np.random.default_rng(0))  # fmt: skip
    result = read_experiment(config, world, root=cache)
    intervals = experiment_intervals(result, resamples=300)
    ship_reference(result, intervals, tmp_path / "ref", "rem experiment", config=config,
                   dataset=world)  # fmt: skip
    assert not list((tmp_path / "ref").glob("*.npz"))  # no per-segment arrays ship
    reference, _ = load_reference(config, world, tmp_path / "ref")
    claims = paper_claims(reference.intervals)
    assert [c.sentence for c in claims] == [c.sentence for c in paper_claims(intervals)]
    assert claims[0].verdict == "holds"  # MD-REM++ beats Random, with numbers to show it
    pd.testing.assert_frame_equal(
        reference.intervals.comparisons, intervals.comparisons, check_dtype=False
    )
    narrowed = reference.for_rows(["md-rem++", "random"])
    assert narrowed.table["row"].tolist() == ["md-rem++", "random"]
    assert set(narrowed.intervals.comparisons["other"]) == {"random"}
    assert "3 seeds each (seeds 0 to 2; 6 runs of" in narrowed.label


def test_a_reference_of_other_settings_or_another_world_is_not_given(tiny_run, world, tmp_path):
    config, result, intervals = tiny_run
    out = tmp_path / "reference"
    ship_reference(result, intervals, out, "rem", config=config, dataset=world)

    other = dataclasses.replace(config, mining=dataclasses.replace(config.mining, budget="6%"))
    reference, why = load_reference(other, world, out)
    assert reference is None
    assert why == (
        "The shipped reference was computed for other settings (mining.budget '3%' there, "
        "'6%' here)."
    )
    reference, why = load_reference(config, world, tmp_path / "absent")
    assert reference is None and why.startswith("No shipped reference for these settings")

    def edited(name: str, **changes: object) -> tuple[object, str]:
        copy = tmp_path / name
        shutil.copytree(out, copy)
        provenance = json.loads((copy / "provenance.json").read_text())
        (copy / "provenance.json").write_text(json.dumps({**provenance, **changes}))
        return load_reference(config, world, copy)

    reference, why = edited("world", experiment_key="0" * 16, world_config_hash="f" * 16)
    assert reference is None and why.startswith(
        "The shipped reference was computed on another world (world settings ffffffffffffffff"
    )
    reference, why = edited("simulated", dataset_key="0" * 16)
    assert reference is None and "world simulated differently" in why
    # Other code computed it: it is still the reference of these settings, said to be stale.
    code = {stage: "0" * 16 for stage in code_fingerprints()}
    reference, why = edited("version", experiment_key="0" * 16, code=code)
    assert reference is not None and why == ""
    status = reference_status(reference)
    assert not status.current and status.stages_changed == tuple(code_fingerprints())
    assert "has changed since, so this code may give other numbers" in status.sentences()[0]
    reference, _ = edited("unrecorded", code=None)
    assert (
        "before the code's fingerprints were recorded"
        in (reference_status(reference).sentences()[0])
    )
    reference, _ = load_reference(config, world, out)
    assert reference_status(reference).current
    altered = tmp_path / "altered"
    shutil.copytree(out, altered)
    with (altered / "runs.csv").open("a") as f:
        f.write("full,0,0.9,0.9,0.9,1,1,1,1,1.0,0.0\n")
    reference, why = load_reference(config, world, altered)
    assert reference is None and why == (
        f"The shipped reference is unreadable: {altered / 'runs.csv'}: altered since it was "
        "shipped (sha256 differs)."
    )
    with pytest.raises(ValueError, match="not valid JSON"):
        (altered / "provenance.json").write_text("{")
        read_reference(altered)


def test_shipping_refuses_to_replace_a_reference_or_to_ship_nothing(
    tiny_run, world, root, tmp_path, monkeypatch, capsys
):
    from rem_core.cli import main

    config, result, intervals = tiny_run
    out = tmp_path / "reference"
    out.mkdir()
    (out / "README.md").write_text("how it is produced\n")  # as the repository holds it
    ship_reference(result, intervals, out, "rem", config=config, dataset=world)
    before = (out / "provenance.json").read_text()
    with pytest.raises(FileExistsError, match="pass --force to replace it"):
        ship_reference(result, intervals, out, "rem", config=config, dataset=world)
    assert (out / "provenance.json").read_text() == before
    ship_reference(result, intervals, out, "again", config=config, dataset=world, force=True)
    assert json.loads((out / "provenance.json").read_text())["command"] == "again"

    # the command: from the cache, computing nothing
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    assert "--ship-reference" in capsys.readouterr().out
    monkeypatch.setenv("REM_CACHE_DIR", str(root))
    args = ["experiment", "--preset", "tiny", "--rows", "partial,random", "--seeds", "2"]
    cli_out = tmp_path / "cli"
    assert main([*args, "--ship-reference", "--out", str(cli_out)]) == 0
    captured = capsys.readouterr()
    assert "not cached, left out: partial seed 1, random seed 1" in captured.err
    provenance = json.loads((cli_out / "provenance.json").read_text())
    assert provenance["command"] == "rem " + " ".join(args)
    assert provenance["seeds"] == {"partial": [0], "random": [0]}
    assert main([*args, "--ship-reference", "--out", str(cli_out)]) == 2
    assert "pass --force to replace it" in capsys.readouterr().err
    assert main([*args, "--ship-reference", "--out", str(cli_out), "--force"]) == 0
    assert main([*args, "--budget", "9%", "--ship-reference", "--out", str(tmp_path / "x")]) == 2
    assert "no cached run of partial, random" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_verify_redoes_reference_runs_and_says_whether_the_claims_change(
    tiny_run, world, root, tmp_path
):
    config, result, intervals = tiny_run
    out = tmp_path / "reference"
    ship_reference(result, intervals, out, "rem experiment --preset tiny", config=config,
                   dataset=world)  # fmt: skip
    reference, _ = load_reference(config, world, out)
    found = verify(config, reference, runs=1, weights=False, root=root)
    (run,) = found.runs
    # the same code on the same machine: the shipped run comes back to the last digit
    assert (run["row"], run["seed"]) == ("partial", 0)
    assert run["same"] and run["ap_large"] == run["reference_ap_large"]
    assert found.reproduced and found.passed
    assert {c["claim"] for c in found.claims} >= {"MD-REM++ beats Random on Large AP"}
    assert "reproduced 1 reference runs' AP to the last digit" in found.summary()

    # a reference computed elsewhere: the run differs, against the row's spread over seeds
    elsewhere = dataclasses.replace(
        reference, runs=reference.runs.assign(ap_large=reference.runs["ap_large"] + 0.01)
    )
    found = verify(config, elsewhere, runs=1, weights=False, root=root)
    assert not found.runs[0]["same"] and not found.reproduced
    assert found.passed == found.claims_hold
    assert "differs: Large -0.0100" in found.table()
    status = reference_status(reference, root)
    assert status.verification.when == found.when and found.summary() in status.sentences()
