"""Continuous normalizing flows through torchdiffeq: the dynamics, the divergences and the
solves FFJORD trains and scores with (FFJORD eq. 4; the RNODE penalties of Finlay et al. 2020).

Example (an untrained MLP is the identity map, so ``log p`` is the base Gaussian's):
    >>> import torch
    >>> x = torch.zeros(2, 3)
    >>> logp, nfe = cnf_log_prob(MLPDynamics(3, hidden=(8,)), x)
    >>> torch.allclose(logp, standard_normal_log_prob(x))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rem_core.density.base import SolverStalled, standard_normal_log_prob

__all__ = [
    "MLPDynamics",
    "RegularisedTerms",
    "cnf_log_prob",
    "cnf_regularised_terms",
    "exact_divergence",
    "hutchinson_divergence",
]


def _activation(name: str) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    if name == "tanh":
        return torch.tanh, lambda a: 1.0 - torch.tanh(a).pow(2)
    return nn.functional.softplus, torch.sigmoid


class MLPDynamics(nn.Module):
    """Dynamics ``f(t, z)`` of the continuous flow: an MLP with time concatenated to every layer.

    The output layer starts at zero, so an untrained flow is the identity map.

    Args:
        dim: ``D``, the feature dimension.
        hidden: hidden layer widths.
        activation: ``"softplus"`` or ``"tanh"``.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), activation: str = "softplus"):
        super().__init__()
        sizes = [dim, *hidden]
        self.hidden = nn.ModuleList(
            nn.Linear(a + 1, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.out = nn.Linear(sizes[-1] + 1, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.activation = activation
        self._act, self._dact = _activation(activation)

    def _run(self, t: Tensor | float, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        tt = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0], 1)
        h, pre = z, []
        for layer in self.hidden:
            a = layer(torch.cat([h, tt], dim=1))
            pre.append(a)
            h = self._act(a)
        return self.out(torch.cat([h, tt], dim=1)), pre

    def forward(self, t: Tensor | float, z: Tensor) -> Tensor:
        """``(B, D)`` velocity at time ``t`` (scalar) of states ``z`` ``(B, D)``."""
        return self._run(t, z)[0]

    def divergence(self, t: Tensor | float, z: Tensor) -> tuple[Tensor, Tensor]:
        """Velocity ``(B, D)`` and exact ``tr(df/dz)`` ``(B,)`` in closed form.

        With ``J = W_L S_{L-1} W_{L-1} ... S_1 W_1`` (``W_l`` the weight columns acting on the
        state, ``S_l = diag(act'(a_l))``): for two hidden layers
        ``tr J = s_2^T (W_2 * (W_1 W_3)^T) s_1``, a bilinear form costing ``H^2`` per row, no
        loop over dimensions; deeper nets propagate the ``(B, H, D)`` Jacobian layer by layer.
        """
        f, pre = self._run(t, z)
        ws = [layer.weight[:, :-1] for layer in self.hidden] + [self.out.weight[:, :-1]]
        ss = [self._dact(a) for a in pre]
        if len(ss) == 1:
            tr = ss[0] @ torch.diagonal(ws[0] @ ws[1])
        elif len(ss) == 2:
            k = ws[1] * (ws[0] @ ws[2]).T
            tr = ((ss[0] @ k.T) * ss[1]).sum(dim=1)
        else:
            jac = ss[0].unsqueeze(2) * ws[0]
            for w, s in zip(ws[1:-1], ss[1:], strict=True):
                jac = s.unsqueeze(2) * torch.matmul(w, jac)
            tr = torch.einsum("dh,bhd->b", ws[-1], jac)
        return f, tr


def exact_divergence(dynamics: nn.Module, t: Tensor | float, z: Tensor) -> tuple[Tensor, Tensor]:
    """Velocity ``(B, D)`` and exact trace of its Jacobian ``(B,)`` at states ``z`` ``(B, D)``.

    Uses the dynamics' own closed form (``dynamics.divergence``) when it has one, else the full
    per-row Jacobian from ``torch.func.jacrev`` vectorised with ``vmap`` (no loop over D).
    """
    closed_form = getattr(dynamics, "divergence", None)
    if closed_form is not None:
        return closed_form(t, z)

    def one(zi: Tensor) -> tuple[Tensor, Tensor]:
        out = dynamics(t, zi.unsqueeze(0)).squeeze(0)
        return out, out

    jac, f = torch.func.vmap(torch.func.jacrev(one, has_aux=True))(z)
    return f, jac.diagonal(dim1=-2, dim2=-1).sum(-1)


def hutchinson_divergence(
    dynamics: nn.Module, t: Tensor | float, z: Tensor, noise: Tensor, create_graph: bool = True
) -> tuple[Tensor, Tensor]:
    """Velocity ``(B, D)`` and Hutchinson's unbiased trace estimate ``eps^T (df/dz) eps`` ``(B,)``.

    One vector-Jacobian product per call. ``noise`` ``(B, D)`` should be Rademacher (+-1) or
    standard normal; ``E[eps eps^T] = I`` makes the estimate unbiased.
    """
    f, vjp = _velocity_and_vjp(dynamics, t, z, noise, create_graph)
    return f, (vjp * noise).sum(dim=1)


def _velocity_and_vjp(
    dynamics: nn.Module, t: Tensor | float, z: Tensor, noise: Tensor, create_graph: bool
) -> tuple[Tensor, Tensor]:
    """``f(t, z)`` ``(B, D)`` and ``eps^T df/dz`` ``(B, D)`` (one vector-Jacobian product)."""
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        f = dynamics(t, z)
        (vjp,) = torch.autograd.grad(f, z, noise, create_graph=create_graph)
    return f, vjp


class _Augmented(nn.Module):
    """The augmented ODE ``d/dt [z, L] = [f(t, z), tr(df/dz)]``, counting evaluations.

    With ``regularise`` (which needs ``noise``) the state is ``[z, L, E, J]`` with
    ``dE/dt = ||f||^2`` and ``dJ/dt = ||eps^T df/dz||^2`` (RNODE), both from the velocity and
    the vector-Jacobian product the trace estimate computes anyway.
    """

    def __init__(
        self,
        dynamics: nn.Module,
        noise: Tensor | None,
        create_graph: bool,
        max_nfe: int | None,
        regularise: bool = False,
    ):
        super().__init__()
        self.dynamics = dynamics
        self.noise = noise
        self.create_graph = create_graph
        self.max_nfe = max_nfe
        self.regularise = regularise
        self.nfe = 0

    def forward(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        self.nfe += 1
        if self.max_nfe is not None and self.nfe > self.max_nfe:
            # An adaptive solver facing stiff dynamics shrinks its step without bound; counting
            # here works for every solver and survives ``python -O`` (torchdiffeq asserts).
            raise SolverStalled(
                f"the ODE solve needed more than {self.max_nfe} function evaluations "
                f"(t = {float(t):.4g}); the dynamics are stiff: raise density.max_nfe, "
                "loosen the tolerances or lower the learning rate"
            )
        z = state[0]
        if self.noise is None:
            return exact_divergence(self.dynamics, t, z)
        f, vjp = _velocity_and_vjp(self.dynamics, t, z, self.noise, self.create_graph)
        trace = (vjp * self.noise).sum(dim=1)
        if not self.regularise:
            return f, trace
        return f, trace, f.pow(2).sum(dim=1), vjp.pow(2).sum(dim=1)


def cnf_log_prob(
    dynamics: nn.Module,
    x: Tensor,
    *,
    t1: float = 1.0,
    solver: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    noise: Tensor | None = None,
    create_graph: bool = False,
    max_nfe: int | None = None,
) -> tuple[Tensor, int]:
    """Log-density of a continuous normalizing flow with a standard Gaussian base (FFJORD eq. 4).

    Integrates ``[z, L]`` from ``[x, 0]`` over ``[0, t1]`` with ``torchdiffeq.odeint``; then
    ``log p(x) = log N(z(t1); 0, I) + L(t1)``.

    Args:
        dynamics: ``f(t, z)`` mapping a scalar time and ``(B, D)`` states to ``(B, D)``.
        x: ``(B, D)`` float points.
        t1: end time.
        solver, rtol, atol: torchdiffeq method and tolerances.
        noise: ``(B, D)`` Hutchinson probe; ``None`` uses the exact trace.
        create_graph: keep the graph of the trace estimate (training).
        max_nfe: raise :class:`SolverStalled` past this many function evaluations.

    Returns:
        ``(B,)`` log-density in nats, and the number of function evaluations.

    Raises:
        SolverStalled: the solve exceeded ``max_nfe``.
    """
    from torchdiffeq import odeint

    aug = _Augmented(dynamics, noise, create_graph, max_nfe)
    ts = torch.tensor([0.0, t1], dtype=x.dtype, device=x.device)
    zs, ls = odeint(aug, (x, x.new_zeros(x.shape[0])), ts, method=solver, rtol=rtol, atol=atol)
    return standard_normal_log_prob(zs[-1]) + ls[-1], aug.nfe


_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")


def _flow_norm(state: tuple[Tensor, ...]) -> Tensor:
    """torchdiffeq's mixed RMS norm over ``z`` and ``L`` only (the error control of a plain
    solve), ignoring the penalty states."""
    return torch.stack([s.pow(2).mean().sqrt() for s in state[:2]]).max()


@dataclass(frozen=True)
class RegularisedTerms:
    """One training solve of a CNF with the RNODE penalties (Finlay et al. 2020).

    Attributes:
        log_prob: ``(B,)`` Hutchinson-estimated log-density in nats (with graph).
        kinetic: ``(B,)`` kinetic energy ``integral_0^t1 ||f(t, z(t))||^2 dt``.
        jacobian: ``(B,)`` ``integral_0^t1 ||eps^T df/dz(t, z(t))||^2 dt``, an unbiased
            estimate of the integrated squared Frobenius norm of the Jacobian.
        nfe: function evaluations of the solve.
    """

    log_prob: Tensor
    kinetic: Tensor
    jacobian: Tensor
    nfe: int

    def loss(self, kinetic_weight: float, jacobian_weight: float) -> Tensor:
        """Scalar RNODE objective: mean over rows of ``-log p + l_K K + l_J J``.

        Both penalties are non-negative, so with non-negative weights this is never below the
        plain NLL loss ``-log_prob.mean()``.
        """
        return (
            -self.log_prob + kinetic_weight * self.kinetic + jacobian_weight * self.jacobian
        ).mean()


def cnf_regularised_terms(
    dynamics: nn.Module,
    x: Tensor,
    noise: Tensor,
    *,
    t1: float = 1.0,
    solver: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    create_graph: bool = True,
    max_nfe: int | None = None,
) -> RegularisedTerms:
    """Log-density and RNODE penalties of a CNF in one solve (training).

    Integrates ``[z, L, E, J]`` from ``[x, 0, 0, 0]`` over ``[0, t1]`` with
    ``dE/dt = ||f||^2`` and ``dJ/dt = ||eps^T df/dz||^2``, reusing the probe ``noise`` and the
    vector-Jacobian product of the Hutchinson trace, so the penalties cost no extra
    evaluation of ``f``. An adaptive solver's error control looks at ``z`` and ``L`` only, as
    in a plain solve, so the penalties do not shrink its steps.

    Args:
        dynamics: ``f(t, z)`` mapping a scalar time and ``(B, D)`` states to ``(B, D)``.
        x: ``(B, D)`` float points.
        noise: ``(B, D)`` Hutchinson probe (Rademacher or standard normal).
        t1, solver, rtol, atol, create_graph, max_nfe: as :func:`cnf_log_prob`.

    Returns:
        :class:`RegularisedTerms`.

    Raises:
        SolverStalled: the solve exceeded ``max_nfe``.
    """
    from torchdiffeq import odeint

    aug = _Augmented(dynamics, noise, create_graph, max_nfe, regularise=True)
    ts = torch.tensor([0.0, t1], dtype=x.dtype, device=x.device)
    zero = x.new_zeros(x.shape[0])
    # The penalties ride along without steering the step size: their integrals grow to tens
    # of nats and would otherwise take over the error control (measured: NFE 44 -> 58).
    options = {"norm": _flow_norm} if solver in _ADAPTIVE else None
    zs, ls, es, js = odeint(
        aug, (x, zero, zero, zero), ts, method=solver, rtol=rtol, atol=atol, options=options
    )
    return RegularisedTerms(
        log_prob=standard_normal_log_prob(zs[-1]) + ls[-1],
        kinetic=es[-1],
        jacobian=js[-1],
        nfe=aug.nfe,
    )
