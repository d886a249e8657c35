"""Top-down pictures of RC-car episodes: a frame array, a PNG or an animated GIF (Pillow only).

Each frame shows the 1 m target circle (green), the 1.2 m safety boundary (red), the path so far
(blue), the car as an oriented rectangle with its heading (black arrow) and velocity (orange
arrow; the angle between the two is the side slip), and a caption with time, speed and side-slip
angle. States are ``(x, y, yaw, v_x, v_y, yaw_rate)`` rows as produced by
:class:`~loop_ros.sim.rc_car.RCCarEnv` (``env.state`` / ``env.base_pose_twist()``).

Example::

    states = [env.state]
    for _ in range(100):
        env.step(env.action_space.sample())
        states.append(env.state)
    render_episode(np.array(states), 'episode.gif', fps=10, title='RCCarCircle-v0')
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CAR_FRONT = 0.20
"""Body outline ahead of the centre of gravity (m)."""
CAR_REAR = 0.17
"""Body outline behind the centre of gravity (m)."""
CAR_HALF_WIDTH = 0.09
"""Half the body width (m)."""
HEADING_ARROW = 0.35
"""Length of the heading arrow (m)."""
VELOCITY_ARROW_PER_MPS = 0.12
"""Length of the velocity arrow per m/s of speed (m), capped at 0.6 m."""
MIN_HALF_EXTENT = 1.6
"""Smallest half-width of the view (m): the 1.2 m boundary with a margin."""

_BACKGROUND = (255, 255, 255)
_TARGET = (40, 160, 60)
_BOUNDARY = (210, 40, 40)
_PATH = (40, 90, 200)
_CAR = (90, 90, 90)
_HEADING = (0, 0, 0)
_VELOCITY = (240, 140, 0)
_TEXT = (20, 20, 20)


class _View:
    """World (m) to pixel mapping of a square view centred on the origin."""

    def __init__(self, size: int, half_extent: float) -> None:
        self.size = size
        self.scale = size / (2.0 * half_extent)
        self.half_extent = half_extent

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        return ((x + self.half_extent) * self.scale, (self.half_extent - y) * self.scale)


def _half_extent(states: np.ndarray) -> float:
    reach = float(np.max(np.abs(states[:, :2]))) + CAR_FRONT + 0.1 if len(states) else 0.0
    return max(MIN_HALF_EXTENT, reach)


def _background(view: _View, radius: float, boundary_radius: float) -> Image.Image:
    image = Image.new('RGB', (view.size, view.size), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    cx, cy = view(0.0, 0.0)
    for circle_radius, colour in ((radius, _TARGET), (boundary_radius, _BOUNDARY)):
        if not math.isfinite(circle_radius):   # no boundary
            continue
        pixels = circle_radius * view.scale
        draw.ellipse((cx - pixels, cy - pixels, cx + pixels, cy + pixels), outline=colour, width=2)
    draw.line((cx - 4, cy, cx + 4, cy), fill=_TEXT)
    draw.line((cx, cy - 4, cx, cy + 4), fill=_TEXT)
    return image


def _arrow(draw: ImageDraw.ImageDraw, view: _View, x: float, y: float, angle: float,
           length: float, colour: tuple[int, int, int]) -> None:
    tip_x, tip_y = x + length * math.cos(angle), y + length * math.sin(angle)
    draw.line((view(x, y), view(tip_x, tip_y)), fill=colour, width=2)
    head = min(0.08, 0.4 * length)
    left = (tip_x - head * math.cos(angle - 0.4), tip_y - head * math.sin(angle - 0.4))
    right = (tip_x - head * math.cos(angle + 0.4), tip_y - head * math.sin(angle + 0.4))
    draw.polygon((view(tip_x, tip_y), view(*left), view(*right)), fill=colour)


def _draw_frame(background: Image.Image, view: _View, states: np.ndarray, step: int | None,
                dt: float, title: str | None) -> Image.Image:
    image = background.copy()
    draw = ImageDraw.Draw(image)
    if len(states) > 1:
        draw.line([view(float(px), float(py)) for px, py in states[:, :2]], fill=_PATH, width=2)
    x, y, yaw, v_x, v_y, _ = (float(value) for value in states[-1])
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    corners = ((CAR_FRONT, CAR_HALF_WIDTH), (CAR_FRONT, -CAR_HALF_WIDTH),
               (-CAR_REAR, -CAR_HALF_WIDTH), (-CAR_REAR, CAR_HALF_WIDTH))
    draw.polygon([view(x + cx * cos_yaw - cy * sin_yaw, y + cx * sin_yaw + cy * cos_yaw)
                  for cx, cy in corners], outline=_CAR, fill=(200, 200, 200))
    _arrow(draw, view, x, y, yaw, HEADING_ARROW, _HEADING)
    speed = math.hypot(v_x, v_y)
    side_slip = math.atan2(v_y, v_x) if speed > 1e-6 else 0.0
    if speed > 1e-3:
        _arrow(draw, view, x, y, yaw + side_slip, min(0.6, VELOCITY_ARROW_PER_MPS * speed),
               _VELOCITY)
    steps = (len(states) - 1) if step is None else step
    caption = (f't={steps * dt:4.1f}s  v={speed:4.2f}m/s  '
               f'slip={math.degrees(side_slip):+5.1f}deg')
    draw.text((4, view.size - 14), caption, fill=_TEXT)
    if title:
        draw.text((4, 3), title, fill=_TEXT)
    return image


def render_frame(states: np.ndarray, size: int = 320, radius: float = 1.0,
                 boundary_radius: float = 1.2, half_extent: float | None = None,
                 step: int | None = None, dt: float = 0.1,
                 title: str | None = None) -> np.ndarray:
    """One top-down frame: the car at ``states[-1]`` and the path through all ``states``.

    Args:
        states: states so far, the current one last.
        size: side of the square frame (pixels).
        radius: target circle radius (m).
        boundary_radius: safety boundary radius (m).
        half_extent: half-width of the view (m); default: fits the states, at least 1.6 m.
        step: step index for the caption (default ``len(states) - 1``).
        dt: control period for the caption's time (s).
        title: optional text at the top.

    Returns:
        The frame as uint8 RGB.

    Shapes:
        states: (T, 6) or (6,); returns (size, size, 3).
    """
    states = np.atleast_2d(np.asarray(states, dtype=np.float64))
    view = _View(size, half_extent if half_extent is not None else _half_extent(states))
    image = _draw_frame(_background(view, radius, boundary_radius), view, states, step, dt,
                        title)
    return np.asarray(image, dtype=np.uint8)


def render_episode(states: np.ndarray, path: str | Path, fps: int = 10,
                   title: str | None = None, size: int = 320, radius: float = 1.0,
                   boundary_radius: float = 1.2, dt: float | None = None) -> Path:
    """Write an episode as a PNG (last frame with the whole path) or an animated GIF.

    The format follows the suffix of ``path`` (``.png`` or ``.gif``). The view is fixed over the
    episode so the GIF does not zoom.

    Args:
        states: the episode's states, the reset state first.
        path: output file; parent directories are created.
        fps: GIF frame rate (frames per second).
        title: optional text at the top of every frame.
        size: side of the square frames (pixels).
        radius: target circle radius (m).
        boundary_radius: safety boundary radius (m).
        dt: control period for the captions (s); default ``1 / fps``.

    Returns:
        The written path.

    Shapes:
        states: (T, 6).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ('.png', '.gif'):
        raise ValueError(f'render_episode writes .png or .gif, got {path.name!r}')
    states = np.atleast_2d(np.asarray(states, dtype=np.float64))
    if states.shape[-1] != 6 or len(states) == 0:
        raise ValueError(f'states must have shape (T, 6) with T >= 1, got {states.shape}')
    if fps < 1:
        raise ValueError(f'fps must be >= 1, got {fps}')
    step_dt = dt if dt is not None else 1.0 / fps
    path.parent.mkdir(parents=True, exist_ok=True)
    view = _View(size, _half_extent(states))
    background = _background(view, radius, boundary_radius)
    if suffix == '.png':
        _draw_frame(background, view, states, None, step_dt, title).save(path)
        return path
    frames = [_draw_frame(background, view, states[:index + 1], None, step_dt, title)
              .quantize(colors=32, method=Image.Quantize.MEDIANCUT)
              for index in range(len(states))]
    frames[0].save(path, save_all=True, append_images=frames[1:],
                   duration=max(20, round(1000 / fps)), loop=0, optimize=False)
    return path
