"""RC-car vehicle model: 3-DoF dynamic bicycle, rear-wheel drive, brush (Fiala) tyres.

The model of E. Ahn's ``aa_simulation`` / ``driftgym`` (``BrushTireModel``, spec sec. 9), with
the parameters of its ``rccar.yml``, integrated by fixed-step RK4 instead of scipy's adaptive
RK45. Two implementations of the same arithmetic, in the same operation order:

* :func:`step_scalar`: one car, plain Python floats (fast enough for a gymnasium env);
* :func:`step_batch` / :class:`RCCarDynamicsTorch`: many cars as torch tensors on any device
  (a ground-truth model for planners, tests and benchmarks).

State ``(x, y, yaw, v_x, v_y, yaw_rate)``: world position (m), heading (rad, wrapped to
[-pi, pi) after every control step), body-frame velocity (m/s, x forward, y left) and yaw rate
(rad/s). Normalised action ``a in [-1, 1]^2``: ``a[0]`` -> commanded rear-wheel speed
``(a[0] + 1) / 2 * 10`` m/s, ``a[1]`` -> steering angle ``a[1] * pi / 6`` rad.

Equations (forces in N, angles in rad; ``delta`` steering, ``F_z`` axle normal loads):

* slip angles from the tyre's own frame, folded into (-pi/2, pi/2) as the reference does:
  ``tan(alpha_f) = (v_yf cos(delta) - v_x sin(delta)) / |v_x cos(delta) + v_yf sin(delta)|``
  with ``v_yf = v_y + L_f r``, and ``tan(alpha_r) = (v_y - L_r r) / |v_x|``;
* front brush tyre: ``F_yf = -mu_s F_zf sign(t) (1 - (1 - min(|t| / t_sl, 1))^3)``,
  ``t_sl = 3 mu_s F_zf / C_alpha`` (the reference's cubic in ``tan(alpha)``, rewritten);
* rear combined slip: ``K = (v_wheel - v_x) / |v_x|``,
  ``gamma = sqrt((C_x |K| / (1 + |K|))^2 + (C_alpha tan(alpha_r) / (1 + |K|))^2)``,
  ``F = mu_s F_zr (1 - (1 - gamma / (3 mu_s F_zr))^3)`` up to full slide, ``mu_k F_zr`` after,
  split along ``(C_x K / (1 + |K|), -C_alpha tan(alpha_r) / (1 + |K|)) / gamma``;
* ``dv_x/dt = (F_xr - F_yf sin(delta)) / m + r v_y - 0.025 v_x``,
  ``dv_y/dt = (F_yf cos(delta) + F_yr) / m - r v_x - 0.025 v_y``,
  ``dr/dt = (L_f F_yf cos(delta) - L_r F_yr) / I_z - 0.02 r``;
* ``dx/dt = v_x cos(yaw) - v_y sin(yaw)``, ``dy/dt = v_x sin(yaw) + v_y cos(yaw)``.

Low-speed regularisation (replaces the reference's ``|v| < 0.01`` special cases): every slip
denominator ``|v|`` is clamped to at least ``slip_speed_floor`` (0.5 m/s). The model is unchanged
above that speed; below it slips stay finite and the tyre stiffness ``C / (m |v|)`` stays within
the stability region of RK4 (largest Jacobian eigenvalue ~90 1/s, RK4 stable to 2.78 / h). No
NaN or inf is produced from finite states and actions.

References:
    Sikchi et al., "Learning Off-Policy with Online Planning", CoRL 2021, sec. 6 and app. C.
    E. Ahn, "Towards Safe Reinforcement Learning in the Real World", CMU-RI-TR-19-56, 2019.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

MAX_WHEEL_SPEED = 10.0
"""Commanded rear-wheel speed (m/s) at ``a[0] = +1``; ``a[0] = -1`` commands 0 m/s."""
MAX_STEER = math.pi / 6
"""Steering angle (rad) at ``a[1] = +-1``."""
STATE_DIM = 6
ACTION_DIM = 2
TWO_PI = 2.0 * math.pi
GAMMA_EPS = 1e-12
"""Lower clamp of the rear combined slip where it divides (a car at rest has gamma = 0)."""


@dataclass(frozen=True)
class RCCarParams:
    """Physical parameters of the RC car (``rccar.yml`` of aa_simulation, spec sec. 9)."""

    mass: float = 2.645
    """m (kg)."""
    l_front: float = 0.137
    """L_f: centre of gravity to front axle (m)."""
    l_rear: float = 0.120
    """L_r: centre of gravity to rear axle (m)."""
    load_front: float = 12.1
    """F_zf: normal load on the front axle (N)."""
    load_rear: float = 13.8178
    """F_zr: normal load on the rear axle (N)."""
    c_x: float = 103.94
    """C_x: longitudinal slip stiffness of the rear axle (N per unit slip)."""
    c_alpha: float = 56.4
    """C_alpha: cornering stiffness of each axle (N per unit tan(slip angle))."""
    i_z: float = 0.0558
    """I_z: yaw moment of inertia (kg m^2)."""
    mu_s: float = 1.37
    """Static friction coefficient (brush region and front saturation)."""
    mu_k: float = 1.96
    """Kinetic friction coefficient of the fully sliding rear axle (the reference's value)."""
    damping_v: float = 0.025
    """Linear damping of v_x and v_y (1/s)."""
    damping_yaw: float = 0.02
    """Linear damping of the yaw rate (1/s)."""
    slip_speed_floor: float = 0.5
    """Lower clamp (m/s) of the speeds dividing the slip quantities (low-speed regularisation)."""

    def __post_init__(self) -> None:
        for name in ('mass', 'l_front', 'l_rear', 'load_front', 'load_rear', 'c_x', 'c_alpha',
                     'i_z', 'mu_s', 'mu_k', 'slip_speed_floor'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'RCCarParams.{name} must be finite and > 0, got {value!r}')
        for name in ('damping_v', 'damping_yaw'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'RCCarParams.{name} must be finite and >= 0, got {value!r}')

    @property
    def wheelbase(self) -> float:
        """L = L_f + L_r (m)."""
        return self.l_front + self.l_rear

    @property
    def front_slide_tan(self) -> float:
        """tan(alpha_sl) = 3 mu_s F_zf / C_alpha: front slip where the tyre fully slides."""
        return 3.0 * self.mu_s * self.load_front / self.c_alpha

    @property
    def rear_slide_gamma(self) -> float:
        """3 mu_s F_zr: combined rear slip beyond which the rear axle fully slides."""
        return 3.0 * self.mu_s * self.load_rear


DEFAULT_PARAMS = RCCarParams()


def action_to_controls(action0: float, action1: float) -> tuple[float, float]:
    """Map a normalised action to (wheel speed m/s, steering rad), clipping to [-1, 1] first.

    Args:
        action0: normalised wheel-speed command; -1 -> 0 m/s, +1 -> 10 m/s.
        action1: normalised steering; +-1 -> +-pi/6 rad (positive steers left).

    Returns:
        ``(v_wheel, delta)``: v_wheel = (a0 + 1) / 2 * 10, delta = a1 * pi / 6.
    """
    a0 = -1.0 if action0 < -1.0 else (1.0 if action0 > 1.0 else action0)
    a1 = -1.0 if action1 < -1.0 else (1.0 if action1 > 1.0 else action1)
    return (a0 + 1.0) * (0.5 * MAX_WHEEL_SPEED), a1 * MAX_STEER


def wrap_angle(angle: float) -> float:
    """Wrap to [-pi, pi): (angle + pi) mod 2 pi - pi."""
    wrapped = (angle + math.pi) % TWO_PI - math.pi
    return wrapped if wrapped < math.pi else wrapped - TWO_PI  # mod can round up to 2 pi


ScalarDerivative = Callable[[float, float, float, float, float, float, float],
                            tuple[float, float, float, float, float, float]]


@functools.lru_cache(maxsize=16)
def scalar_derivative(p: RCCarParams = DEFAULT_PARAMS) -> ScalarDerivative:
    """The state derivative of one car as a fast closure over the constants of ``p``.

    The returned ``derivative(yaw, v_x, v_y, yaw_rate, v_wheel, cos_delta, sin_delta)`` gives
    ``(dx, dy, dyaw, dv_x, dv_y, dr)`` per second (the derivative does not depend on x, y).
    Constants are closure locals: attribute look-ups would cost more than the arithmetic.
    """
    floor = p.slip_speed_floor
    l_front = p.l_front
    l_rear = p.l_rear
    inv_front_slide = 1.0 / p.front_slide_tan
    front_force_max = p.mu_s * p.load_front
    c_x = p.c_x
    neg_c_alpha = -p.c_alpha
    gamma_slide = p.rear_slide_gamma
    inv_gamma_slide = 1.0 / gamma_slide
    rear_force_max = p.mu_s * p.load_rear
    kinetic_extra = (p.mu_k - p.mu_s) * p.load_rear
    inv_mass = 1.0 / p.mass
    l_front_over_iz = p.l_front / p.i_z
    l_rear_over_iz = p.l_rear / p.i_z
    damping_v = p.damping_v
    damping_yaw = p.damping_yaw
    copysign = math.copysign
    hypot = math.hypot
    cos = math.cos
    sin = math.sin

    def derivative(yaw: float, v_x: float, v_y: float, yaw_rate: float, v_wheel: float,
                   cos_delta: float, sin_delta: float
                   ) -> tuple[float, float, float, float, float, float]:
        # front brush tyre: F_yf = -mu_s F_zf sign(t) (1 - (1 - min(|t| / t_sl, 1))^3)
        v_lat_front = v_y + l_front * yaw_rate
        den = abs(v_x * cos_delta + v_lat_front * sin_delta)
        if den < floor:
            den = floor
        neg_tan_front = (v_x * sin_delta - v_lat_front * cos_delta) / den  # -tan(alpha_f)
        grip = 1.0 - abs(neg_tan_front) * inv_front_slide
        if grip < 0.0:
            grip = 0.0
        f_yf = copysign(front_force_max - front_force_max * (grip * grip * grip), neg_tan_front)
        # rear combined slip: K = (v_wheel - v_x) / |v_x|, gamma = |(C_x K, C_a tan a_r)| / (1+|K|)
        den = abs(v_x)
        if den < floor:
            den = floor
        slip_k = (v_wheel - v_x) / den
        inv = 1.0 / (1.0 + abs(slip_k))
        long_part = abs(slip_k) * inv * c_x
        neg_lat_part = (v_y - l_rear * yaw_rate) * inv / den * neg_c_alpha
        gamma = hypot(long_part, neg_lat_part)
        if gamma < gamma_slide:
            grip = 1.0 - gamma * inv_gamma_slide
            force = rear_force_max - rear_force_max * (grip * grip * grip)
        elif gamma > gamma_slide:  # fully sliding: kinetic friction mu_k F_zr
            force = rear_force_max + kinetic_extra
        else:
            force = rear_force_max + 0.5 * kinetic_extra
        scale = force / (gamma if gamma > GAMMA_EPS else GAMMA_EPS)
        f_xr = copysign(long_part * scale, slip_k)
        f_yr = neg_lat_part * scale
        # rigid body with Coriolis terms and linear damping
        front_lateral = f_yf * cos_delta
        cos_yaw = cos(yaw)
        sin_yaw = sin(yaw)
        return (v_x * cos_yaw - v_y * sin_yaw,
                v_x * sin_yaw + v_y * cos_yaw,
                yaw_rate,
                (f_xr - f_yf * sin_delta) * inv_mass + yaw_rate * v_y - damping_v * v_x,
                (front_lateral + f_yr) * inv_mass - yaw_rate * v_x - damping_v * v_y,
                front_lateral * l_front_over_iz - f_yr * l_rear_over_iz - damping_yaw * yaw_rate)

    return derivative


def step_scalar(state: Sequence[float], v_wheel: float, delta: float, dt: float = 0.1,
                substeps: int = 5, p: RCCarParams = DEFAULT_PARAMS
                ) -> tuple[float, float, float, float, float, float]:
    """Advance one car by one control period with ``substeps`` classic RK4 steps.

    s_{k+1} = s_k + h/6 (k1 + 2 k2 + 2 k3 + k4), h = dt / substeps; yaw wrapped at the end.

    Args:
        state: ``(x, y, yaw, v_x, v_y, yaw_rate)``.
        v_wheel: commanded rear-wheel speed (m/s), already scaled.
        delta: steering angle (rad), already scaled.
        dt: control period (s).
        substeps: RK4 steps per control period.
        p: vehicle parameters.

    Returns:
        The next state as a 6-tuple of floats.
    """
    x, y, yaw, v_x, v_y, r = (float(value) for value in state)
    deriv = scalar_derivative(p)
    cos_delta = math.cos(delta)
    sin_delta = math.sin(delta)
    h = dt / substeps
    half = 0.5 * h
    sixth = h / 6.0
    for _ in range(substeps):  # stages k1..k4 unpacked as a*, b*, c*, d* (index = state entry)
        a0, a1, a2, a3, a4, a5 = deriv(yaw, v_x, v_y, r, v_wheel, cos_delta, sin_delta)
        b0, b1, b2, b3, b4, b5 = deriv(yaw + half * a2, v_x + half * a3, v_y + half * a4,
                                       r + half * a5, v_wheel, cos_delta, sin_delta)
        c0, c1, c2, c3, c4, c5 = deriv(yaw + half * b2, v_x + half * b3, v_y + half * b4,
                                       r + half * b5, v_wheel, cos_delta, sin_delta)
        d0, d1, d2, d3, d4, d5 = deriv(yaw + h * c2, v_x + h * c3, v_y + h * c4, r + h * c5,
                                       v_wheel, cos_delta, sin_delta)
        x += sixth * (a0 + 2.0 * (b0 + c0) + d0)
        y += sixth * (a1 + 2.0 * (b1 + c1) + d1)
        yaw += sixth * (a2 + 2.0 * (b2 + c2) + d2)
        v_x += sixth * (a3 + 2.0 * (b3 + c3) + d3)
        v_y += sixth * (a4 + 2.0 * (b4 + c4) + d4)
        r += sixth * (a5 + 2.0 * (b5 + c5) + d5)
    return x, y, wrap_angle(yaw), v_x, v_y, r


# ----------------------------------------------------------------------------------------------
# Batched torch implementation (the same arithmetic, on any device and float dtype).


def actions_to_controls(action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched :func:`action_to_controls`: ``action (..., 2)`` -> ``(v_wheel, delta)`` (...)."""
    clipped = action.clamp(-1.0, 1.0)
    return (clipped[..., 0] + 1.0) * (0.5 * MAX_WHEEL_SPEED), clipped[..., 1] * MAX_STEER


def wrap_angle_torch(angle: torch.Tensor) -> torch.Tensor:
    """Wrap to [-pi, pi]: (angle + pi) mod 2 pi - pi (rounding may give +pi)."""
    return torch.remainder(angle + math.pi, TWO_PI) - math.pi


def tyre_forces_torch(v_x: torch.Tensor, v_y: torch.Tensor, yaw_rate: torch.Tensor,
                      v_wheel: torch.Tensor, cos_delta: torch.Tensor, sin_delta: torch.Tensor,
                      p: RCCarParams = DEFAULT_PARAMS
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Brush-tyre forces of a batch of cars (the tyre part of :func:`scalar_derivative`).

    Returns:
        ``(F_yf, F_xr, F_yr, gamma_r)``: front lateral force (front-wheel frame, N), rear
        longitudinal and lateral forces (body frame, N) and the rear combined slip ``gamma``;
        the rear axle slides fully where ``gamma > p.rear_slide_gamma``.

    Shapes:
        every input (B,) (or broadcastable); every output (B,).

    Written with fused torch ops (``addcmul``, ``add(alpha=)``, ``rsub``) to keep the number of
    kernel launches low, and without in-place ops, so autograd works through it; the
    arithmetic is that of the scalar version.
    """
    floor = p.slip_speed_floor
    v_lat_front = torch.add(v_y, yaw_rate, alpha=p.l_front)
    den = torch.addcmul(v_x * cos_delta, v_lat_front, sin_delta).abs().clamp_min(floor)
    neg_tan_front = torch.addcmul(v_x * sin_delta, v_lat_front, cos_delta, value=-1.0)
    neg_tan_front = neg_tan_front.div(den)
    grip = torch.rsub(neg_tan_front.abs(), 1.0, alpha=1.0 / p.front_slide_tan).clamp_min(0.0)
    force_max = p.mu_s * p.load_front
    force = torch.rsub(grip * grip * grip, force_max, alpha=force_max)
    f_yf = torch.copysign(force, neg_tan_front)

    den = v_x.abs().clamp_min(floor)
    slip_k = (v_wheel - v_x).div(den)
    slip_k_abs = slip_k.abs()
    inv = (slip_k_abs + 1.0).reciprocal()
    long_part = (slip_k_abs * inv).mul(p.c_x)
    neg_lat_part = torch.add(v_y, yaw_rate, alpha=-p.l_rear).mul(inv).div(den).mul(-p.c_alpha)
    gamma = torch.hypot(long_part, neg_lat_part)
    gamma_slide = p.rear_slide_gamma
    grip = torch.rsub(gamma, 1.0, alpha=1.0 / gamma_slide).clamp_min(0.0)
    force_max = p.mu_s * p.load_rear
    force = torch.rsub(grip * grip * grip, force_max, alpha=force_max)
    # + (mu_k - mu_s) F_zr once fully sliding: step(gamma - gamma_slide), 1/2 at equality
    sliding = torch.sign(gamma - gamma_slide).add(1.0)
    force = force.add(sliding, alpha=0.5 * (p.mu_k - p.mu_s) * p.load_rear)
    scale = force.div(gamma.clamp_min(GAMMA_EPS))
    f_xr = torch.copysign(long_part.mul(scale), slip_k)
    f_yr = neg_lat_part * scale
    return f_yf, f_xr, f_yr, gamma


def derivatives_torch(yaw: torch.Tensor, v_x: torch.Tensor, v_y: torch.Tensor,
                      yaw_rate: torch.Tensor, v_wheel: torch.Tensor, cos_delta: torch.Tensor,
                      sin_delta: torch.Tensor, p: RCCarParams = DEFAULT_PARAMS
                      ) -> tuple[torch.Tensor, ...]:
    """Batched twin of :func:`scalar_derivative`: ``(dx, dy, dyaw, dv_x, dv_y, dr)`` per second.

    Shapes:
        every input (B,) (or broadcastable); every output (B,).
    """
    f_yf, f_xr, f_yr, _ = tyre_forces_torch(v_x, v_y, yaw_rate, v_wheel, cos_delta, sin_delta, p)
    cos_yaw = torch.cos(yaw)
    sin_yaw = torch.sin(yaw)
    front_lateral = f_yf * cos_delta
    inv_mass = 1.0 / p.mass
    dv_x = torch.addcmul(f_xr, f_yf, sin_delta, value=-1.0).mul(inv_mass)
    dv_x = dv_x.addcmul(yaw_rate, v_y).add(v_x, alpha=-p.damping_v)
    dv_y = (front_lateral + f_yr).mul(inv_mass)
    dv_y = dv_y.addcmul(yaw_rate, v_x, value=-1.0).add(v_y, alpha=-p.damping_v)
    dr = (front_lateral * (p.l_front / p.i_z)).add(f_yr, alpha=-(p.l_rear / p.i_z))
    dr = dr.add(yaw_rate, alpha=-p.damping_yaw)
    return (torch.addcmul(v_x * cos_yaw, v_y, sin_yaw, value=-1.0),
            torch.addcmul(v_x * sin_yaw, v_y, cos_yaw),
            yaw_rate, dv_x, dv_y, dr)


def step_batch(state: torch.Tensor, action: torch.Tensor, params: RCCarParams = DEFAULT_PARAMS,
               dt: float = 0.1, substeps: int = 5) -> torch.Tensor:
    """Advance a batch of cars by one control period (batched :func:`step_scalar`).

    s_{k+1} = s_k + h/6 (k1 + 2 k2 + 2 k3 + k4), h = dt / substeps; yaw wrapped at the end.

    Args:
        state: ``(x, y, yaw, v_x, v_y, yaw_rate)`` per car.
        action: normalised actions in [-1, 1] (clipped), as given to the env.
        params: vehicle parameters.
        dt: control period (s).
        substeps: RK4 steps per control period.

    Returns:
        The next states, same device and dtype as ``state``.

    Shapes:
        state: (..., 6); action: (..., 2); returns (..., 6).
    """
    batch_shape = state.shape[:-1]
    columns = state.reshape(-1, STATE_DIM).t().contiguous()  # (6, B): contiguous per variable
    x, y, yaw, v_x, v_y, r = columns.unbind(0)
    v_wheel, delta = actions_to_controls(action.to(state.dtype).reshape(-1, ACTION_DIM))
    cos_delta = torch.cos(delta)
    sin_delta = torch.sin(delta)
    h = dt / substeps
    half = 0.5 * h
    sixth = h / 6.0
    derivs = derivatives_torch
    for _ in range(substeps):
        k1 = derivs(yaw, v_x, v_y, r, v_wheel, cos_delta, sin_delta, params)
        k2 = derivs(torch.add(yaw, k1[2], alpha=half), torch.add(v_x, k1[3], alpha=half),
                    torch.add(v_y, k1[4], alpha=half), torch.add(r, k1[5], alpha=half),
                    v_wheel, cos_delta, sin_delta, params)
        k3 = derivs(torch.add(yaw, k2[2], alpha=half), torch.add(v_x, k2[3], alpha=half),
                    torch.add(v_y, k2[4], alpha=half), torch.add(r, k2[5], alpha=half),
                    v_wheel, cos_delta, sin_delta, params)
        k4 = derivs(torch.add(yaw, k3[2], alpha=h), torch.add(v_x, k3[3], alpha=h),
                    torch.add(v_y, k3[4], alpha=h), torch.add(r, k3[5], alpha=h),
                    v_wheel, cos_delta, sin_delta, params)
        x, y, yaw, v_x, v_y, r = (
            torch.add(value, torch.add(a, b + c, alpha=2.0).add(d), alpha=sixth)
            for value, a, b, c, d in zip((x, y, yaw, v_x, v_y, r), k1, k2, k3, k4))
    out = torch.stack((x, y, wrap_angle_torch(yaw), v_x, v_y, r), dim=-1)
    return out.reshape(*batch_shape, STATE_DIM)


class RCCarDynamicsTorch:
    """Batched ground-truth RC-car dynamics: ``next_state = model(state, action)``.

    Args:
        params: vehicle parameters.
        dt: control period (s).
        substeps: RK4 steps per control period.

    Shapes:
        state: (..., 6); action: (..., 2) normalised; returns (..., 6) on the input's device.
    """

    def __init__(self, params: RCCarParams = DEFAULT_PARAMS, dt: float = 0.1,
                 substeps: int = 5) -> None:
        if dt <= 0.0 or substeps < 1:
            raise ValueError(f'need dt > 0 and substeps >= 1, got dt={dt}, substeps={substeps}')
        self.params = params
        self.dt = float(dt)
        self.substeps = int(substeps)

    def __call__(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One control period for every car (see :func:`step_batch`)."""
        return step_batch(state, action, self.params, self.dt, self.substeps)
