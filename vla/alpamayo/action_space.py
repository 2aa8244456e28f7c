"""Alpamayo-R1's action space: a unicycle driven by acceleration and curvature, 64 steps of 0.1 s.

An action is ``(64, 2)`` normalised ``(acceleration, curvature)``; its normalisation constants are
buffers (``accel_mean``, ``accel_std``, ``curvature_mean``, ``curvature_std``) stored with the checkpoint.
Rolling an action out from the ego state at t0 (the origin of the ego frame, heading 0):

- the speed at t0 is fitted to the 16-pose history by regularised least squares: consecutive positions
  satisfy ``p[t+1] - p[t] = dt / 2 * (v[t] u[t] + v[t+1] u[t+1])`` with ``u`` the unit heading vector;
  a third-order smoothness term (weight ``v_lambda / dt**6``) and a ridge ``v_ridge`` regularise it;
- speed integrates the acceleration, heading integrates ``kappa * (v dt + a dt**2 / 2)``, positions
  integrate the speed along the heading with the trapezoid rule; z stays at the history's last z and
  rotations are yaw-only.
"""

from __future__ import annotations

import torch
from torch import nn


def yaw_of(rot: torch.Tensor) -> torch.Tensor:
    """Yaw of rotation matrices ``[..., 3, 3]`` (rotation about z applied last)."""
    return torch.atan2(rot[..., 1, 0], rot[..., 0, 0])


def wrap_angle(x: torch.Tensor) -> torch.Tensor:
    return torch.atan2(torch.sin(x), torch.cos(x))


def unwrap_angles(phi: torch.Tensor) -> torch.Tensor:
    """Angles along the last axis made continuous (each step in (-pi, pi])."""
    steps = wrap_angle(torch.diff(phi, dim=-1))
    return torch.cat([phi[..., :1], phi[..., :1] + torch.cumsum(steps, dim=-1)], dim=-1)


def yaw_matrices(yaw: torch.Tensor) -> torch.Tensor:
    """3x3 rotations about z for yaws ``[...]``."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    return torch.stack([torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1),
                        torch.stack([zero, zero, one], -1)], -2)


def third_order_penalty(n: int, lam: float, dt: float, lead: tuple[int, ...], device: torch.device,
                        dtype: torch.dtype) -> torch.Tensor:
    """``lam / dt**6 * D3^T D3`` for a sequence of ``n`` values (``D3`` the third difference)."""
    rows = max(n - 3, 0)
    d3 = torch.zeros(rows, n, dtype=dtype, device=device)
    idx = torch.arange(rows, device=device)
    for offset, coefficient in enumerate((-1.0, 3.0, -3.0, 1.0)):
        d3[idx, idx + offset] = coefficient
    return (lam / dt**6 * d3.T @ d3).expand(*lead, n, n)


def speeds_from_history(xy: torch.Tensor, yaw: torch.Tensor, dt: float, v_lambda: float,
                        v_ridge: float) -> torch.Tensor:
    """Speeds ``[..., N]`` at each of ``N`` history poses (positions ``[..., N, 2]``, unwrapped yaw ``[..., N]``)."""
    *lead, n, _ = xy.shape
    steps = n - 1
    target = (2.0 / dt * (xy[..., 1:, :] - xy[..., :-1, :])).flatten(-2)        # [..., 2 * steps]
    a = torch.zeros(*lead, 2 * steps, n, dtype=xy.dtype, device=xy.device)
    rows, cols = torch.arange(steps, device=xy.device), torch.arange(steps, device=xy.device)
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    a[..., 2 * rows, cols], a[..., 2 * rows, cols + 1] = cos[..., :-1], cos[..., 1:]
    a[..., 2 * rows + 1, cols], a[..., 2 * rows + 1, cols + 1] = sin[..., :-1], sin[..., 1:]
    lhs = a.transpose(-1, -2) @ a + third_order_penalty(n, v_lambda, dt, tuple(lead), xy.device, xy.dtype)
    lhs = lhs + v_ridge * torch.eye(n, dtype=xy.dtype, device=xy.device)
    rhs = (a.transpose(-1, -2) @ target.unsqueeze(-1)).squeeze(-1)
    return torch.cholesky_solve(rhs.unsqueeze(-1), torch.linalg.cholesky(lhs)).squeeze(-1)


class UnicycleAccelCurvature(nn.Module):
    """Normalised ``(acceleration, curvature)`` actions <-> trajectories in the t0 ego frame."""

    def __init__(self, accel_mean: float = 0.0, accel_std: float = 1.0, curvature_mean: float = 0.0,
                 curvature_std: float = 1.0, dt: float = 0.1, n_waypoints: int = 64, v_lambda: float = 1e-6,
                 v_ridge: float = 1e-4, **unused: object) -> None:
        super().__init__()
        self.register_buffer("accel_mean", torch.tensor(float(accel_mean)))
        self.register_buffer("accel_std", torch.tensor(float(accel_std)))
        self.register_buffer("curvature_mean", torch.tensor(float(curvature_mean)))
        self.register_buffer("curvature_std", torch.tensor(float(curvature_std)))
        self.dt = float(dt)
        self.n_waypoints = int(n_waypoints)
        self.v_lambda = float(v_lambda)
        self.v_ridge = float(v_ridge)

    @property
    def dims(self) -> tuple[int, int]:
        return self.n_waypoints, 2

    @torch.no_grad()
    def speed_at_t0(self, history_xyz: torch.Tensor, history_rot: torch.Tensor) -> torch.Tensor:
        """The fitted speed at the last history pose, ``[...]`` (computed in float32)."""
        xy = history_xyz[..., :2].float()
        yaw = unwrap_angles(yaw_of(history_rot.float()))
        return speeds_from_history(xy, yaw, self.dt, self.v_lambda, self.v_ridge)[..., -1]

    def action_to_traj(self, action: torch.Tensor, history_xyz: torch.Tensor, history_rot: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Trajectories ``xyz [..., 64, 3]``, ``rot [..., 64, 3, 3]`` from actions ``[..., 64, 2]`` and the
        history ``[..., 16, 3]`` / ``[..., 16, 3, 3]`` it continues."""
        action = action.float()
        accel = action[..., 0] * self.accel_std.float() + self.accel_mean.float()
        kappa = action[..., 1] * self.curvature_std.float() + self.curvature_mean.float()
        v0 = self.speed_at_t0(history_xyz, history_rot).to(accel)
        dt = self.dt
        speed = torch.cat([v0[..., None], v0[..., None] + torch.cumsum(accel * dt, -1)], -1)          # [..., N+1]
        turn = kappa * speed[..., :-1] * dt + kappa * accel * (0.5 * dt * dt)
        heading = torch.cat([torch.zeros_like(v0)[..., None], torch.cumsum(turn, -1)], -1)        # [..., N+1]
        half = 0.5 * dt
        x = torch.cumsum(speed[..., :-1] * torch.cos(heading[..., :-1]) * half
                         + speed[..., 1:] * torch.cos(heading[..., 1:]) * half, -1)
        y = torch.cumsum(speed[..., :-1] * torch.sin(heading[..., :-1]) * half
                         + speed[..., 1:] * torch.sin(heading[..., 1:]) * half, -1)
        z = history_xyz[..., -1:, 2].float().expand_as(x)
        return torch.stack([x, y, z], -1), yaw_matrices(heading[..., 1:])
