"""``rem verify``: does this code, on this machine, give what ships with the package?

Two checks, each a computation redone here and compared with what shipped:

1. **The shipped weights.** One member of the shipped ensemble is trained again, with the
   shipped recipe on as many torch threads as shipped, and its bytes compared with the
   shipped file's (and, when they differ, how far its weights are).
2. **The reference.** ``runs`` of the shipped reference's runs (row and seed) are trained and
   evaluated again, and their AP compared to the last digit. When they differ, each
   difference is set against its row's spread over seeds, and the paper's claims are
   recomputed with the runs redone here in place of the shipped ones (a bootstrap over
   seeds, the same for both) to say whether any claim's verdict changes.

The result is written to ``<cache>/verify/last.json`` for the app (Home, Experiments) and the
``rem experiment`` command to say what was last verified, and when. It passes when both
checks match, or else when no claim's verdict changes: another CPU's kernels may train other
bytes (docs/experiment.md, "Machines"), and that is a finding to report, not a failure, as
long as the conclusions hold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from rem_core.cache import cache_root
from rem_core.config import RemConfig
from rem_core.dataset import Dataset
from rem_core.detect import load_detector, train_detectors
from rem_core.experiment.claims import paper_claims
from rem_core.experiment.reference import Reference
from rem_core.experiment.rows import AP_COLUMNS, EXPERIMENT_ROWS
from rem_core.experiment.runs import plan_experiment, redo_run
from rem_core.experiment.stats import bootstrap_intervals
from rem_core.files import file_sha256, publish_file
from rem_core.pipeline import code_fingerprint, ensure_world, shipped_folder
from rem_core.provenance import kernels, machine

__all__ = ["Verification", "read_verification", "verify"]

#: Where the last verification is kept, under the cache root.
_RECORD = Path("verify") / "last.json"


@dataclass(frozen=True)
class Verification:
    """What ``rem verify`` found.

    Attributes:
        when: when it ran (ISO 8601, UTC).
        machine: this machine (``rem_core.provenance.machine``).
        kernels: this machine's torch kernels (``rem_core.provenance.kernels``).
        weights: the shipped member retrained: ``member``, ``threads``, ``same`` (bytes),
            ``max_abs_diff`` (of any weight), ``code_matches`` (the shipped weights' code
            fingerprint is this code's), ``seconds``; empty when not checked.
        runs: one per reference run redone: ``row``, ``seed``, each AP there and here,
            ``same`` (every AP to the last digit), ``spread`` (the row's standard
            deviation of Large AP over its seeds in the reference).
        claims: one per paper claim: ``claim``, ``shipped`` and ``here`` (its verdict on
            the reference's runs and with the runs redone here, both by a bootstrap over
            seeds).
        reference: the shipped reference's commit and the machine that computed it.
    """

    when: str
    machine: dict
    kernels: dict
    weights: dict
    runs: list[dict]
    claims: list[dict]
    reference: dict = field(default_factory=dict)

    @property
    def reproduced(self) -> bool:
        """Whether the weights' bytes and every run's AP came out the same."""
        weights = not self.weights or self.weights.get("same", False)
        return weights and all(r["same"] for r in self.runs)

    @property
    def claims_hold(self) -> bool:
        """Whether no claim's verdict changed with the runs redone here."""
        return all(c["shipped"] == c["here"] for c in self.claims)

    @property
    def passed(self) -> bool:
        """Reproduced exactly, or else, with reference runs redone, the paper's conclusions
        unchanged (weights alone that differ cannot show that they hold)."""
        return self.reproduced or (bool(self.runs) and self.claims_hold)

    def summary(self) -> str:
        """One sentence for the app: what was verified, where and when."""
        when = self.when[:10]
        where = f"{self.machine.get('cpu_model', '?')}, {self.kernels.get('capability', '?')}"
        if self.reproduced:
            what = []
            if self.weights:
                what.append("the shipped weights' bytes")
            if self.runs:
                what.append(f"{len(self.runs)} reference runs' AP to the last digit")
            return f"`rem verify` reproduced {' and '.join(what)} on {when} ({where})."
        held = "every paper claim still holds" if self.claims_hold else "a paper claim changed"
        return (
            f"`rem verify` on {when} ({where}) did not reproduce the shipped numbers exactly "
            f"(this machine's kernels differ); with its runs in place of the reference's, "
            f"{held}."
        )

    def table(self) -> str:
        """The findings as text, for the terminal."""
        lines = [f"rem verify, {self.when} on {self.machine.get('cpu_model', '?')} "
                 f"({self.kernels.get('capability', '?')}, {self.kernels.get('threads')} "
                 "threads)"]  # fmt: skip
        w = self.weights
        if w:
            same = "identical" if w["same"] else f"differ (max |diff| {w['max_abs_diff']:.3g})"
            code = "" if w["code_matches"] else " (shipped by other code)"
            lines.append(f"  weights, member {w['member']} on {w['threads']} threads: {same}{code}")
        for r in self.runs:
            here = " ".join(f"{c[3:]} {r[c]:.4f}/{r['reference_' + c]:.4f}" for c in AP_COLUMNS)
            diff = r["ap_large"] - r["reference_ap_large"]
            verdict = "same" if r["same"] else f"differs: Large {diff:+.4f}"
            if not r["same"] and r["spread"] > 0:  # NaN (one seed) is not
                verdict += f", {abs(diff) / r['spread']:.1f}x the row's spread over seeds"
            lines.append(f"  run {r['row']} seed {r['seed']}: here/reference {here}: {verdict}")
        for c in self.claims:
            mark = "unchanged" if c["shipped"] == c["here"] else "CHANGED"
            lines.append(f"  claim: {c['claim']}: {c['shipped']} -> {c['here']} ({mark})")
        lines.append("  passed" if self.passed else "  FAILED")
        return "\n".join(lines)


def verify(
    config: RemConfig,
    reference: Reference | None,
    *,
    runs: int = 2,
    weights: bool = True,
    root: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Verification:
    """Redo a shipped member and ``runs`` reference runs here, compare, and record the result
    under the cache ``root``.

    Args:
        config: the preset's settings (their world is built first if missing).
        reference: the shipped reference for these settings (``load_reference``), or
            ``None`` to check the weights alone.
        runs: reference runs to redo (the first rows of ``partial``, ``md-rem++``,
            ``random`` ..., seed 0 first).
        weights: whether to retrain a shipped member.
    """
    report = progress or (lambda stage, done, total: None)
    dataset = ensure_world(config.world, root=root)
    checked_weights = _check_weights(config, dataset, report) if weights else {}
    redone, claims, about = [], [], {}
    if reference is not None and runs:
        redone = _redo_runs(config, dataset, reference, runs, root, report)
        claims = _compare_claims(reference, redone)
        p = reference.provenance
        about = {
            "commit": p.get("commit"),
            "machine": p.get("machine"),
            "kernels": p.get("kernels"),
        }
    result = Verification(
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine(),
        kernels=kernels(),
        weights=checked_weights,
        runs=redone,
        claims=claims,
        reference=about,
    )
    path = Path(root or cache_root()) / _RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(result), indent=1, default=float)
    publish_file(path, lambda tmp: tmp.write_text(text), force=True)
    return result


def read_verification(root: Path | None = None) -> Verification | None:
    """What ``rem verify`` last found under the cache ``root``; ``None`` if it never ran."""
    path = Path(root or cache_root()) / _RECORD
    try:
        return Verification(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _check_weights(config: RemConfig, dataset: Dataset, report: Callable) -> dict:
    """Member 0 of the shipped ensemble of ``config``, trained again and compared."""
    folder = shipped_folder(config.detector)
    provenance = json.loads((folder / "provenance.json").read_text())
    threads = int((provenance.get("kernels") or {}).get("threads") or torch.get_num_threads())
    recipe = config.detector.changed(num_threads=threads)
    start = time.perf_counter()
    stage = "training member 0 of the shipped ensemble again"
    (model,) = train_detectors(recipe, dataset, [0], progress=lambda d, t: report(stage, d, t))
    seconds = time.perf_counter() - start
    shipped = load_detector(folder / "member-0").state_dict()
    here = model.state_dict()
    diff = max(
        float((here[k].double() - shipped[k].double()).abs().max()) if here[k].numel() else 0.0
        for k in shipped
    )
    same = all(torch.equal(here[k], shipped[k]) for k in shipped)
    return {
        "member": 0,
        "threads": threads,
        "same": bool(same),
        "max_abs_diff": diff,
        "code_matches": provenance.get("code") == code_fingerprint("detector"),
        "shipped_sha256": file_sha256(folder / "member-0" / "model.pt"),
        "seconds": round(seconds, 1),
    }


#: The rows whose runs are redone first: the paper's main comparison.
_ORDER = ("partial", "md-rem++", "random", "full", "ensemble")


def _redo_runs(
    config: RemConfig,
    dataset: Dataset,
    reference: Reference,
    runs: int,
    root: Path | None,
    report: Callable,
) -> list[dict]:
    """``runs`` of the reference's runs, trained and evaluated again here."""
    shipped = reference.runs
    rows = [r for r in _ORDER if r in set(shipped["row"])]
    rows += [r for r in dict.fromkeys(shipped["row"]) if r not in rows]
    picked = [(row, seed) for seed in sorted(set(shipped["seed"])) for row in rows][:runs]
    plan = plan_experiment(config, dataset)
    spread = reference.table.set_index("row")["ap_large_std"]
    out = []
    for i, (row, seed) in enumerate(picked):
        report("reference runs redone", i, len(picked))
        record = redo_run(plan, dataset, EXPERIMENT_ROWS[row], int(seed), root, progress=report)
        there = shipped[(shipped["row"] == row) & (shipped["seed"] == seed)].iloc[0]
        entry = {"row": row, "seed": int(seed)}
        for column in AP_COLUMNS:
            entry[column] = float(record[column])
            entry[f"reference_{column}"] = float(there[column])
        entry["same"] = all(entry[c] == entry[f"reference_{c}"] for c in AP_COLUMNS)
        entry["spread"] = float(spread.get(row, np.nan))
        out.append(entry)
    report("reference runs redone", len(picked), len(picked))
    return out


def _compare_claims(reference: Reference, redone: list[dict]) -> list[dict]:
    """Each paper claim's verdict on the reference's runs, and with ``redone`` in place of
    the same (row, seed): both by the bootstrap over seeds alone."""
    shipped = reference.runs.copy()
    here = shipped.copy()
    for r in redone:
        rows = (here["row"] == r["row"]) & (here["seed"] == r["seed"])
        for column in AP_COLUMNS:
            here.loc[rows, column] = r[column]
    before = paper_claims(bootstrap_intervals(shipped, {}))
    after = paper_claims(bootstrap_intervals(here, {}))
    return [
        {"claim": b.claim, "shipped": b.verdict, "here": a.verdict}
        for b, a in zip(before, after, strict=True)
    ]
