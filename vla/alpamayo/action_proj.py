"""Alpamayo-R1's action input projection: a noisy action and the flow time become expert token embeddings.

Per waypoint, each action dimension and the flow time are encoded with Fourier features at
log-spaced frequencies (1 .. ``max_freq``), concatenated and passed through an MLP (Linear, SiLU, then
``num_enc_layers`` blocks of RMSNorm + Linear, SiLU between them) and a LayerNorm. Submodule names
(``sinus.N``, ``timestep_fourier_encoder``, ``encoder.trunk.K``, ``norm``) are the checkpoint's keys.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FourierFeatures(nn.Module):
    """``sqrt(2) * [sin(2 pi f x), cos(2 pi f x)]`` for ``dim / 2`` frequencies log-spaced in [1, max_freq]."""

    def __init__(self, dim: int, max_freq: float = 100.0) -> None:
        super().__init__()
        self.out_dim = dim
        self.register_buffer("freqs", torch.logspace(0, math.log10(max_freq), steps=dim // 2)[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arg = x[..., None] * self.freqs * 2 * math.pi
        return torch.cat([torch.sin(arg), torch.cos(arg)], -1) * math.sqrt(2)


class MLPEncoder(nn.Module):
    def __init__(self, in_features: int, num_layers: int, hidden_size: int, out_features: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_enc_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = [nn.Linear(in_features, hidden_size), nn.SiLU()]
        for k in range(num_layers):
            last = k == num_layers - 1
            layers += [RMSNorm(hidden_size, eps=1e-5), nn.Linear(hidden_size, out_features if last else hidden_size)]
            if not last:
                layers.append(nn.SiLU())
        self.trunk = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class PerWaypointActionInProj(nn.Module):
    """``(B, T, action_dim)`` actions and ``(B, ...)`` flow times -> ``(B, T, out_dim)`` embeddings."""

    def __init__(self, in_dims: tuple[int, ...], out_dim: int, num_enc_layers: int = 4, hidden_size: int = 1024,
                 max_freq: float = 100.0, num_fourier_feats: int = 20) -> None:
        super().__init__()
        self.in_dims = tuple(in_dims)
        self.out_dim = out_dim
        self.sinus = nn.ModuleList(FourierFeatures(num_fourier_feats, max_freq) for _ in range(self.in_dims[-1]))
        self.timestep_fourier_encoder = FourierFeatures(num_fourier_feats, max_freq)
        features = sum(s.out_dim for s in self.sinus) + self.timestep_fourier_encoder.out_dim
        self.encoder = MLPEncoder(features, num_enc_layers, hidden_size, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        x, t = x.float(), t.float()
        action = torch.cat([enc(x[:, :, i]) for i, enc in enumerate(self.sinus)], -1)
        time = self.timestep_fourier_encoder(t[..., -1]).repeat(1, steps, 1)
        features = torch.cat([action, time], -1).flatten(0, 1).to(self.norm.weight.dtype)
        return self.norm(self.encoder(features).reshape(batch, steps, -1))
