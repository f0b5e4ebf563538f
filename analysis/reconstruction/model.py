"""The homogeneous ReLU MLP of Haim et al. (2022) and the modified ReLU used to reconstruct from it.

``HomogeneousMLP`` is D-1000-1000-1 with a bias only in the first layer (the official code's
``NeuralNetwork`` with ``use_bias=False``), so the network is homogeneous in its parameters:
scaling every parameter by c scales the output by c**3.  Only the first layer (weights and bias)
gets the small initialisation, N(0, init_scale**2) with ``init_scale=1e-4`` as in the official
MNIST training arguments; the other two layers keep PyTorch's default (Kaiming-uniform) init.

``modified_relu`` is ReLU forward and sigmoid(alpha z) backward: the reconstruction objective
differentiates the parameter gradient of the network with respect to the inputs, and the true
ReLU's derivative (a step) would give zero second derivatives.
"""
from __future__ import annotations

import torch
from torch import nn


class ModifiedReLUFunction(torch.autograd.Function):
    """ReLU whose backward pass uses sigmoid(alpha z) as the derivative (twice differentiable)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.alpha = alpha
        return torch.relu(z)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (z,) = ctx.saved_tensors
        # written with differentiable ops so that create_graph=True differentiates through it
        return grad_output * torch.sigmoid(ctx.alpha * z), None


def modified_relu(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """``relu(z)`` forward, ``sigmoid(alpha * z)`` as derivative backward.

    Parameters
    ----------
    z : Tensor
    alpha : float
        Steepness of the surrogate derivative (> 0); large alpha approaches the step function.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    return ModifiedReLUFunction.apply(z, float(alpha))


class HomogeneousMLP(nn.Module):
    """D-hidden-hidden-1 ReLU MLP, bias only in the first layer.

    Parameters
    ----------
    d : int
        Input dimension (flattened image).
    hidden : int
        Width of both hidden layers (1000 in the paper).
    init_scale : float
        Standard deviation of the first layer's weights and bias at initialisation.
    hidden_init_scale : float, optional
        Standard deviation of the second and third layers' weights; ``None`` keeps PyTorch's
        default (the official code's choice).
    dtype : torch.dtype
        Parameter dtype (float64 by default, as the official code).
    seed : int, optional
        Seed of the initialisation (``None``: torch's global generator).
    """

    def __init__(self, d: int, hidden: int = 1000, init_scale: float = 1e-4, hidden_init_scale: float | None = None,
                 dtype: torch.dtype = torch.float64, seed: int | None = None) -> None:
        super().__init__()
        if int(d) < 1:
            raise ValueError(f"d (input dimension) must be >= 1, got {d}")
        if int(hidden) < 1:
            raise ValueError(f"hidden (layer width) must be >= 1, got {hidden}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        if hidden_init_scale is not None and not hidden_init_scale > 0:
            raise ValueError(f"hidden_init_scale must be positive or None, got {hidden_init_scale}")
        self.d, self.hidden, self.init_scale = int(d), int(hidden), float(init_scale)
        self.hidden_init_scale = None if hidden_init_scale is None else float(hidden_init_scale)
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(int(seed))
            self.layers = nn.ModuleList([
                nn.Linear(self.d, self.hidden, bias=True),
                nn.Linear(self.hidden, self.hidden, bias=False),
                nn.Linear(self.hidden, 1, bias=False),
            ])
            with torch.no_grad():
                self.layers[0].weight.normal_(0.0, self.init_scale)
                self.layers[0].bias.normal_(0.0, self.init_scale)
                if hidden_init_scale is not None:
                    self.layers[1].weight.normal_(0.0, hidden_init_scale)
                    self.layers[2].weight.normal_(0.0, hidden_init_scale)
        self.to(dtype)

    def forward(self, x: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        """Scores Φ(x), shape (n,).

        Parameters
        ----------
        x : Tensor (n, d) or (n, ...) with prod(...) == d
        alpha : float, optional
            Use :func:`modified_relu` with this steepness instead of ReLU (reconstruction).
        """
        h = x.reshape(len(x), -1)
        if h.shape[1] != self.d:
            raise ValueError(f"x has {h.shape[1]} features per item, the model expects {self.d}")
        act = torch.relu if alpha is None else (lambda z: modified_relu(z, alpha))
        for layer in self.layers[:-1]:
            h = act(layer(h))
        return self.layers[-1](h)[:, 0]

    def float64_copy(self) -> "HomogeneousMLP":
        """A float64 CPU copy with the same parameters (for reconstruction)."""
        clone = HomogeneousMLP(self.d, self.hidden, self.init_scale, self.hidden_init_scale, seed=0)
        clone.load_state_dict({k: v.detach().to(torch.float64) for k, v in self.state_dict().items()})
        return clone
