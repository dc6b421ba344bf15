"""The experiment's reference tables, shipped with the package with their provenance.

The whole active-learning experiment (``rem_core.experiment.runs``) takes about an hour on the
demo world, so its measured tables ship in ``rem_core/reference_results/<preset>/`` and the
Experiments page opens on them, labelled as the reference run, until the user's own runs
replace them. A folder holds CSV and JSON only (tens of KB, no per-segment arrays):

- ``experiment.csv``, ``experiment.json``, ``runs.csv``, ``curves.csv``,
  ``comparisons.csv``: as ``rem experiment --out`` writes them (``write_experiment``);
- ``intervals.csv``: ``ExperimentIntervals.rows``, the rows' 95% intervals, so that the
  paper's claims (``rem_core.experiment.claims``) are computed again from the folder alone;
- ``provenance.json``: the experiment's cache key, the rareness key, the world's settings
  hash and its bytes' key (``rem_core.pipeline.dataset_key``), every stage's code
  fingerprint (``rem_core.pipeline.code_fingerprints``), the settings, the commit, the dates,
  the machine and its kernels, the rows, seeds and steps, the command and every file's
  sha256;
- ``README.md``: what the folder is and how it was made.

``load_reference`` gives it back only when it was computed for the settings asked for on
this world, otherwise ``None`` and a sentence saying why; ``reference_status`` says what has
changed since it was computed (the code of which stages, the machine) and how to recompute
it. ``ship_reference`` writes it (``rem experiment
--ship-reference``, ``make reference``), as one folder, whole or absent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from rem_core.config import RemConfig, config_to_dict
from rem_core.dataset import Dataset
from rem_core.errors import InputError
from rem_core.experiment.export import write_experiment
from rem_core.experiment.results import ExperimentResult
from rem_core.experiment.runs import ExperimentPlan, plan_experiment
from rem_core.experiment.stats import ExperimentIntervals
from rem_core.files import file_sha256, publish_folder
from rem_core.pipeline import code_fingerprints, dataset_key, rareness_key
from rem_core.provenance import git, kernels, machine

__all__ = [
    "REFERENCE_RESULTS",
    "Reference",
    "load_reference",
    "read_reference",
    "reference_root",
    "ship_reference",
]

#: Shipped references: one folder per preset.
REFERENCE_RESULTS = Path(__file__).resolve().parents[1] / "reference_results"
#: The tables of a reference, each hashed in its provenance.
TABLES = ("experiment.csv", "experiment.json", "runs.csv", "intervals.csv", "comparisons.csv",
          "curves.csv")  # fmt: skip


def reference_root() -> Path:
    """The reference the app looks for: ``$REM_REFERENCE_DIR``, else the demo's."""
    env = os.environ.get("REM_REFERENCE_DIR", "").strip()
    return Path(env) if env else REFERENCE_RESULTS / "demo"


@dataclass(frozen=True)
class Reference:
    """A shipped experiment, as the Experiments page shows it.

    Attributes:
        path: its folder.
        table: ``experiment.csv``: ``results_table`` with the intervals' columns.
        runs: ``runs.csv``: one row per (row, seed).
        curves: ``row -> seed -> recall-by-rareness bins``, as ``ExperimentResult.curves``.
        intervals: the rows' intervals and the paired comparisons (``paper_claims`` input).
        provenance: ``provenance.json``.
    """

    path: Path
    table: pd.DataFrame
    runs: pd.DataFrame
    curves: dict[str, dict[int, pd.DataFrame]]
    intervals: ExperimentIntervals
    provenance: dict

    @property
    def label(self) -> str:
        """One sentence: when, where and how it was computed."""
        p = self.provenance
        commit = str(p.get("commit") or "unknown")[:7]
        if p.get("commit_dirty"):
            commit += " (with uncommitted changes)"
        m = p.get("machine", {})
        per_row = self.runs.groupby("row")["seed"].size()
        low, high = int(per_row.min()), int(per_row.max())
        each = f"{low}" if low == high else f"{low} to {high}"
        seeds = sorted(set(self.runs["seed"].astype(int)))
        drawn = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]} to {seeds[-1]}"
        steps = p.get("steps")
        steps = f"{steps:,}" if isinstance(steps, int) else "?"
        return (
            f"Reference run: computed on {p.get('computed', '?')} at commit {commit}, "
            f"{m.get('cpus', '?')} CPUs ({m.get('cpu_model', 'unknown')}), Python "
            f"{m.get('python', '?')}, torch {m.get('torch', '?')}; {len(per_row)} rows, "
            f"{each} seed{'' if high == 1 else 's'} each ({drawn}; {len(self.runs)} runs of "
            f"{steps} training steps); command `{p.get('command', '?')}`."
        )

    def for_rows(self, rows: Sequence[str]) -> Reference | None:
        """The reference restricted to ``rows`` (in that order); ``None`` if it has none."""
        keep = [r for r in rows if r in set(self.table["row"])]
        if not keep:
            return None

        def pick(frame: pd.DataFrame, column: str = "row") -> pd.DataFrame:
            order = frame[column].map({r: i for i, r in enumerate(keep)})
            ranks = order.dropna().to_numpy().argsort(kind="stable")
            return frame[order.notna()].iloc[ranks].reset_index(drop=True)

        comparisons = self.intervals.comparisons
        comparisons = comparisons[comparisons["other"].isin(keep)]
        intervals = replace(
            self.intervals, rows=pick(self.intervals.rows), comparisons=pick(comparisons)
        )
        return replace(
            self,
            table=pick(self.table),
            runs=pick(self.runs),
            curves={r: c for r, c in self.curves.items() if r in keep},
            intervals=intervals,
        )


def _settings(plan: ExperimentPlan) -> dict:
    """What the experiment key hashes, readable: to say which setting differs."""
    config = plan.config
    experiment = config_to_dict(config.experiment)
    for name in ("rows", "seeds"):  # not in the key: each run is a file of its own
        experiment.pop(name)
    return {
        "experiment": experiment,
        "steps": plan.steps,
        **{name: config_to_dict(getattr(config, name))
           for name in ("detector", "mining", "score", "rareness")},
    }  # fmt: skip


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def ship_reference(
    result: ExperimentResult,
    intervals: ExperimentIntervals,
    out_dir: str | Path,
    command: str,
    *,
    config: RemConfig,
    dataset: Dataset,
    force: bool = False,
    plan: ExperimentPlan | None = None,
) -> Path:
    """Write ``result`` and its ``intervals`` as a shipped reference to ``out_dir``.

    Written into a temporary sibling folder and renamed: ``out_dir`` is whole or absent.

    Args:
        result: cached runs (``read_experiment``) of ``config`` on ``dataset``.
        intervals: their bootstrap (``experiment_intervals(result)``).
        out_dir: the folder to create (``rem_core/reference_results/<preset>``).
        command: the ``rem experiment`` command that computes these runs.
        force: replace a folder that holds anything but a README.md.
        plan: the experiment's ``plan_experiment(config, dataset)`` when the caller holds it.

    Raises:
        FileExistsError: ``out_dir`` holds a reference (or other files) and ``force`` is false.
        ValueError: no runs, or ``intervals`` are of other rows.
    """
    out = Path(out_dir)
    if out.is_dir() and not force:
        held = sorted(p.name for p in out.iterdir() if p.name != "README.md")
        if held:
            raise FileExistsError(f"{out}: holds {', '.join(held)}; pass --force to replace it")
    if result.runs.empty:
        raise InputError(f"{result.path}: no cached run to ship")
    if list(intervals.rows["row"]) != list(result.table["row"]):
        raise InputError(
            f"intervals: rows {list(intervals.rows['row'])} are not the result's "
            f"{list(result.table['row'])}"
        )
    plan = plan or plan_experiment(config, dataset)
    if result.path.name != plan.key:
        raise InputError(
            f"{result.path}: not the runs of these settings (experiment key {plan.key})"
        )
    provenance = _provenance(result, intervals, plan, dataset, command)

    def write(tmp: Path) -> None:
        write_experiment(result, tmp, force=True, intervals=intervals)
        intervals.rows.to_csv(tmp / "intervals.csv", index=False)
        provenance["sha256"] = {name: file_sha256(tmp / name) for name in TABLES}
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        (tmp / "README.md").write_text(
            "# The experiment's shipped reference\n\n"
            f"Computed {provenance['computed']} with `{command}` and shipped with `make "
            "reference` (`rem experiment --ship-reference`): the Experiments page opens on "
            "these tables until the user's own runs replace them (docs/experiment.md, \"The "
            'shipped reference"). `provenance.json` says what made them.\n'
        )

    publish_folder(out, write)  # whole or absent: written beside it, then renamed
    return out


def _provenance(
    result: ExperimentResult,
    intervals: ExperimentIntervals,
    plan: ExperimentPlan,
    dataset: Dataset,
    command: str,
) -> dict:
    """What ``provenance.json`` says of a reference (its files' hashes are added as written)."""
    runs = [result.path / "runs" / f"{r}-seed{s}.json" for r, s in
            zip(result.runs["row"], result.runs["seed"], strict=True)]  # fmt: skip
    stamps = [p.stat().st_mtime for p in runs if p.is_file()]
    computed = datetime.fromtimestamp(max(stamps), UTC) if stamps else datetime.now(UTC)
    seeds = result.runs.groupby("row", sort=False)["seed"].apply(lambda s: sorted(map(int, s)))
    commit = git("rev-parse", "HEAD")
    # read-only: no index refresh, which could race with a git command run meanwhile
    changes = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return {
        "experiment_key": plan.key,
        "rareness_key": rareness_key(plan.config, dataset),
        "world_config_hash": dataset.manifest.get("config_hash"),
        "dataset_key": dataset_key(dataset),
        "code": code_fingerprints(),
        "commit": commit,
        "commit_dirty": bool(changes) if commit else None,
        "computed": computed.date().isoformat(),
        "shipped": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "kernels": kernels(),
        "rows": list(result.table["row"]),
        "seeds": {row: s for row, s in seeds.items()},
        "steps": plan.steps,
        "run_seconds": round(float(result.runs["seconds"].sum()), 1),
        "resamples": intervals.resamples,
        "level": intervals.level,
        "command": command,
        "settings": _settings(plan),
    }  # fmt: skip


def read_reference(folder: str | Path) -> Reference:
    """The reference in ``folder``, whatever settings it was computed for.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: ``provenance.json`` is not JSON, a table lacks a column, or a file
            differs from its hash in the provenance.
    """
    folder = Path(folder)
    path = folder / "provenance.json"
    try:
        provenance = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    for name, want in provenance.get("sha256", {}).items():
        if file_sha256(folder / name) != want:
            raise InputError(f"{folder / name}: altered since it was shipped (sha256 differs)")
    tables = {}
    needed = {"experiment.csv": ("row", "label", "group", "ap_large"), "runs.csv": ("row", "seed"),
              "intervals.csv": ("row", "gap_closed_low"), "curves.csv": ("row", "seed", "lower"),
              "comparisons.csv": ("row", "other", "metric", "low", "high")}  # fmt: skip
    for name, columns in needed.items():
        table = pd.read_csv(folder / name, keep_default_na=False, na_values=[""])
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise InputError(f"{folder / name}: missing column(s) {', '.join(missing)}")
        tables[name] = table
    comparisons = tables["comparisons.csv"]
    comparisons["holds"] = comparisons["holds"].astype("boolean")
    curves: dict[str, dict[int, pd.DataFrame]] = {}
    for (row, seed), bins in tables["curves.csv"].groupby(["row", "seed"], sort=False):
        curves.setdefault(row, {})[int(seed)] = bins.drop(columns=["row", "seed"]).reset_index(
            drop=True
        )
    intervals = ExperimentIntervals(
        rows=tables["intervals.csv"],
        comparisons=comparisons,
        resamples=int(provenance["resamples"]),
        level=float(provenance["level"]),
    )
    return Reference(folder, tables["experiment.csv"], tables["runs.csv"], curves, intervals,
                     provenance)  # fmt: skip


def load_reference(
    config: RemConfig,
    dataset: Dataset,
    root: str | Path | None = None,
    *,
    plan: ExperimentPlan | None = None,
) -> tuple[Reference | None, str]:
    """The shipped reference in ``root`` (default ``reference_root()``) if it was computed
    for ``config`` on ``dataset``, else ``None``; and, then, a sentence saying why.

    It matches when it was computed for these settings (every setting the experiment's key
    holds: all but the rows and seeds) on this world (its settings, and its bytes where the
    reference recorded them), whatever code computed it: ``reference_status`` says how its
    code differs from this one. ``plan``: the experiment's ``plan_experiment(config,
    dataset)`` when the caller holds it already.
    """
    folder = Path(root) if root is not None else reference_root()
    if not (folder / "provenance.json").is_file():
        return None, f"No shipped reference for these settings ({folder} holds none)."
    try:
        provenance = json.loads((folder / "provenance.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return None, f"The shipped reference is unreadable: {folder / 'provenance.json'}: {exc}."
    plan = plan or plan_experiment(config, dataset)
    there = _flat(provenance.get("settings", {}))
    here = _flat(json.loads(json.dumps(_settings(plan))))
    differ = [k for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)]
    if differ:
        shown = "; ".join(f"{k} {there.get(k)!r} there, {here.get(k)!r} here"
                          for k in differ[:3])  # fmt: skip
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        return None, f"The shipped reference was computed for other settings ({shown}{more})."
    world = dataset.manifest.get("config_hash")
    if provenance.get("world_config_hash") != world:
        return None, (
            "The shipped reference was computed on another world (world settings "
            f"{provenance.get('world_config_hash')}; this one's are {world})."
        )
    content = provenance.get("dataset_key")
    if content is not None and content != dataset_key(dataset):
        return None, (
            "The shipped reference was computed on a world simulated differently (its bytes' "
            f"key {content}; this one's is {dataset_key(dataset)})."
        )
    try:
        return read_reference(folder), ""
    except (OSError, ValueError, KeyError) as exc:
        return None, f"The shipped reference is unreadable: {exc}."
