"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024, arXiv:2409.11321).

Why: Adam normalises each coordinate alone; for a weight matrix whose gradients are correlated
across rows and columns (convolutions are), Shampoo's Kronecker factors L = E[G Gᵀ] and
R = E[Gᵀ G] capture those correlations. SOAP rotates the gradient into the eigenbases of L and R,
runs Adam there (second moments in the rotated basis) and rotates the update back; the bases are
refreshed every few steps. Vyas et al. report it needs markedly fewer steps than AdamW for the
same loss; Cool-chic 5 trains its decoders with it. Whether it pays here is measured in
docs/training.md ("The recipe: a CPU study").

Written from the paper's Algorithm 3 (not from its reference code): for a parameter of any shape,
every dimension d with 1 < size ≤ ``max_precondition_dim`` gets a factor
F_d ← β_s·F_d + (1 − β_s)·G_(d) G_(d)ᵀ (G_(d): the gradient with dimension d first, the rest
flattened) and a basis Q_d (eigenvectors of F_d: computed with ``eigh`` at the first step, then one
power iteration and a QR decomposition every ``precondition_frequency`` steps, as the paper does);
other dimensions, and 1-D parameters, stay in the standard basis (plain Adam there). The first
moment is kept in the standard basis and projected each step; the second moment lives in the
rotated basis, and its entries are re-ordered with the eigenvalues when a basis is refreshed.

As in the authors' code, a gradient is never projected on a basis it helped make: the first step
only builds the factors and bases (in the eigenbases of G Gᵀ and Gᵀ G, G itself is diagonal, and
its rounding noise off the diagonal, divided by its own square root, made arbitrary steps), and
later gradients enter the factors after their step.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SOAP(torch.optim.Optimizer):
    """SOAP for ``params`` (groups may carry their own ``lr``, as in :class:`torch.optim.Adam`).

    ``batched``: the first dimension of every parameter indexes independent problems (the
    overfitted codec fits G images at once as (G, …) tensors): each gets its own factors and
    bases, as if it were optimised alone.

    ``eps_relative``: in the rotated basis the first moment (kept in the standard basis and
    projected) and the second (accumulated from rotated gradients) are sums of the same numbers in
    different orders, so where a rotated gradient is zero to rounding the ratio of the two is
    rounding noise over ``eps``: up to 10^2 times a normal step, seen on a least-squares problem
    (the loss rose 15× in one step; on one CPU and not on another). ``eps`` grows by this
    fraction of the parameter's RMS gradient (per set when batched): directions 10^4 below
    the RMS, in float32 noise, take no step; every other one an Adam step as before."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.95, 0.95), shampoo_beta: float = 0.95,
                 eps: float = 1e-8, weight_decay: float = 0.0, precondition_frequency: int = 10,
                 max_precondition_dim: int = 1024, batched: bool = False, eps_relative: float = 1e-4):
        if lr <= 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or not 0 <= shampoo_beta < 1:
            raise ValueError("SOAP needs lr > 0 and betas in [0, 1)")
        if eps < 0 or eps_relative < 0:
            raise ValueError("SOAP needs eps, eps_relative >= 0")
        defaults = dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps, weight_decay=weight_decay,
                        precondition_frequency=precondition_frequency, max_precondition_dim=max_precondition_dim,
                        batched=batched, eps_relative=eps_relative)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lead = 1 if group.get("batched") else 0
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(grad)
                    state["exp_avg_sq"] = torch.zeros_like(grad)
                    dims = [d for d in range(lead, grad.dim())
                            if grad.dim() - lead > 1 and 1 < grad.shape[d] <= group["max_precondition_dim"]]
                    for d in dims:
                        state[f"factor{d}"] = torch.zeros(*grad.shape[:lead], grad.shape[d], grad.shape[d], device=grad.device)
                    state["dims"] = dims  # a list: load_state_dict would cast a tensor to the parameter's dtype
                dims = state["dims"]
                state["step"] += 1
                step = state["step"]
                if step == 1 and dims:  # bases from this gradient alone, and no step (see the docstring)
                    _accumulate(state, grad, dims, lead, group["shampoo_beta"])
                    for d in dims:
                        state[f"basis{d}"] = _eigenbasis(state[f"factor{d}"])
                    continue
                bases = {d: state[f"basis{d}"] for d in dims}
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                rotated = _project(grad, bases, lead=lead)
                exp_avg_sq.mul_(beta2).addcmul_(rotated, rotated, value=1 - beta2)
                taken = step - 1 if dims else step  # Adam steps taken so far, this one included
                bias1, bias2 = 1 - beta1**taken, 1 - beta2**taken
                denominator = (exp_avg_sq / bias2).sqrt_()
                if dims and group["eps_relative"]:  # see the class docstring
                    rms = (exp_avg_sq / bias2).mean(dim=tuple(range(lead, grad.dim())), keepdim=True).sqrt_()
                    denominator.add_(rms * group["eps_relative"])
                direction = _project(exp_avg, bases, lead=lead) / bias1 / denominator.add_(group["eps"])
                update = _project(direction, bases, back=True, lead=lead)
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-group["lr"])
                if dims:  # the factors learn this gradient after it was used (never projected on itself)
                    _accumulate(state, grad, dims, lead, group["shampoo_beta"])
                    if step % group["precondition_frequency"] == 0:
                        for d in dims:
                            state[f"basis{d}"] = _refreshed(state, d, lead)
        return loss


def _accumulate(state: dict, grad: Tensor, dims: list[int], lead: int, beta: float) -> None:
    """Shampoo's factors: an exponential moving average of G_(d) G_(d)ᵀ for each dimension d."""
    for d in dims:
        flat = grad.movedim(d, lead).reshape(*grad.shape[:lead], grad.shape[d], -1)
        state[f"factor{d}"].lerp_(flat @ flat.transpose(-1, -2), 1 - beta)


def _project(t: Tensor, bases: dict[int, Tensor], back: bool = False, lead: int = 0) -> Tensor:
    """``t`` with each dimension d in ``bases`` expressed in the basis Q_d (Q_dᵀ t), or back (Q_d t);
    with ``lead`` = 1 each slice t[i] in its own basis Q_d[i]."""
    for d, q in bases.items():
        q = q.transpose(-1, -2) if back else q
        if lead:  # (G, n, n) → (G, 1, …, 1, n, n): one basis per slice, broadcast over the rest
            q = q.reshape(q.shape[0], *([1] * (t.dim() - 3)), *q.shape[-2:])
        t = (t.movedim(d, -1) @ q).movedim(-1, d)
    return t


def _eigenbasis(factor: Tensor) -> Tensor:
    """Eigenvectors of a symmetric factor (or a batch of them), largest eigenvalue first (float64
    for stability)."""
    _, vectors = torch.linalg.eigh(factor.double())
    return vectors.flip(-1).to(factor.dtype).contiguous()


def _refreshed(state: dict, d: int, lead: int = 0) -> Tensor:
    """One power iteration of the factor on its current basis, orthonormalised by QR (the paper's
    cheap refresh); the columns, and the second moments along dimension d, are first put in order
    of decreasing estimated eigenvalue so that each column keeps following its eigenvector."""
    factor, basis = state[f"factor{d}"], state[f"basis{d}"]
    estimates = (basis.transpose(-1, -2) @ factor @ basis).diagonal(dim1=-2, dim2=-1)
    order = torch.argsort(estimates, dim=-1, descending=True)
    if lead:
        basis = basis.gather(-1, order[:, None, :].expand_as(basis))
        avg_sq = state["exp_avg_sq"]
        shape = [order.shape[0]] + [1] * (avg_sq.dim() - 1)
        shape[d] = order.shape[1]
        state["exp_avg_sq"] = avg_sq.gather(d, order.reshape(shape).expand_as(avg_sq))
    else:
        basis = basis[:, order]
        state["exp_avg_sq"] = state["exp_avg_sq"].index_select(d, order)
    q, _ = torch.linalg.qr(factor @ basis)
    return q
