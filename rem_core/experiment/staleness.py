"""How current the shipped reference is: which code computed it, which stages have changed
since, on which machine, and what ``rem verify`` last found here.

The reference costs hours to recompute, so it may stay when the code moves on; the
Experiments page and ``rem experiment`` then say so plainly (``ReferenceStatus.sentences``)
instead of showing its numbers as this code's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rem_core.experiment.reference import Reference
from rem_core.experiment.verification import Verification, read_verification
from rem_core.pipeline import STAGE_CODE, code_fingerprints
from rem_core.provenance import kernels, machine

__all__ = ["ReferenceStatus", "reference_status"]


@dataclass(frozen=True)
class ReferenceStatus:
    """How current a shipped reference is.

    Attributes:
        commit: the commit that computed it (short), ``None`` if unknown.
        computed: the day its last run finished.
        stages_changed: the stages whose code differs from this code's; ``None`` when the
            reference recorded no code fingerprints (computed before they existed).
        machine_there: the machine and kernels that computed it, in words.
        machine_here: this machine and its kernels, in words.
        verification: what ``rem verify`` last found under this cache, if it ran.
        command: the ``rem experiment`` command that computed its runs.
    """

    commit: str | None
    computed: str | None
    stages_changed: tuple[str, ...] | None
    machine_there: str
    machine_here: str
    verification: Verification | None
    command: str = "rem experiment"

    @property
    def recompute(self) -> str:
        """How to recompute it: its runs, then the folder (hours on 2 cores)."""
        return f"`{self.command}` (hours on 2 cores), then `make reference`"

    @property
    def current(self) -> bool:
        """Whether this code computes every stage as the reference's code did."""
        return self.stages_changed == ()

    @property
    def same_machine(self) -> bool:
        """Whether this machine and its kernels are the reference's, as far as recorded."""
        return self.machine_there == self.machine_here

    def sentences(self) -> list[str]:
        """What a reader of the reference's numbers should know, one sentence each."""
        commit = self.commit or "an unknown commit"
        if self.stages_changed is None:
            code = (
                f"Computed at commit {commit} on {self.computed or '?'}, before the code's "
                "fingerprints were recorded: which stages have changed since cannot be told. "
                f"To recompute it: {self.recompute}."
            )
        elif self.stages_changed:
            code = (
                f"Computed at commit {commit} on {self.computed or '?'}; the code of "
                f"{_join(self.stages_changed)} has changed since, so this code may give other "
                f"numbers. To recompute it: {self.recompute}."
            )
        else:
            code = f"Computed at commit {commit} by this very code (every stage's fingerprint)."
        lines = [code]
        if not self.same_machine:
            lines.append(
                f"It ran on {self.machine_there}; this machine is {self.machine_here}. A CPU's "
                'kernels alone move a run\'s AP (docs/experiment.md, "Machines"): compare '
                "your own runs with each other, not with the reference's."
            )
        v = self.verification
        lines.append(
            v.summary() if v is not None else "`rem verify` has not run here (`make verify`)."
        )
        return lines


def reference_status(reference: Reference, root: Path | None = None) -> ReferenceStatus:
    """How current ``reference`` is against this code and this machine (``root``: the cache
    holding ``rem verify``'s last record)."""
    p = reference.provenance
    recorded = p.get("code")
    if isinstance(recorded, dict):
        here = code_fingerprints()
        changed = tuple(s for s in STAGE_CODE if recorded.get(s) != here[s])
    else:
        changed = None
    commit = p.get("commit")
    return ReferenceStatus(
        commit=str(commit)[:7] if commit else None,
        computed=p.get("computed"),
        stages_changed=changed,
        machine_there=_machine_words(p.get("machine") or {}, p.get("kernels") or {}),
        # as much of this machine as the reference recorded of its own, to compare like
        machine_here=_machine_words(machine(), kernels() if p.get("kernels") else {}),
        verification=read_verification(root),
        command=p.get("command") or "rem experiment",
    )


def _machine_words(m: dict, k: dict) -> str:
    """``AMD EPYC, 2 CPUs, AVX2 kernels on 2 threads`` (what is recorded of it)."""
    words = f"{m.get('cpu_model', 'an unknown CPU')}, {m.get('cpus', '?')} CPUs"
    if k:
        words += f", {k.get('capability', '?')} kernels on {k.get('threads', '?')} threads"
    return words


def _join(names: tuple[str, ...]) -> str:
    names = tuple(n.replace("/", " (") + ")" if "/" in n else n for n in names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
