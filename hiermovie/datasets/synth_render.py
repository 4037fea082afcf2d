"""Rendering the synthetic world (`synth_world`): each event as frames of actors moving over
the scene's texture."""

from __future__ import annotations

import numpy as np

from hiermovie.datasets.synth_world import COLOURS, SCENES, VERBS, Event


def _positions(motion: str, t: np.ndarray, rng_jitter: float) -> tuple[np.ndarray, ...]:
    """Agent x, y, scale and patient x, y for times t in [0, 1] (unit coordinates)."""
    one = np.ones_like(t)
    ax, ay, scale, px, py = 0.4 * one, 0.5 * one, one, 0.75 * one, 0.5 * one
    if motion == "approach":
        ax = 0.15 + 0.45 * t
    elif motion == "retreat":
        ax = 0.6 - 0.45 * t
    elif motion == "orbit":
        px = 0.5 * one
        ax, ay = 0.5 + 0.28 * np.cos(2 * np.pi * t), 0.5 + 0.28 * np.sin(2 * np.pi * t)
    elif motion == "jump":
        ay = 0.75 - 0.45 * np.abs(np.sin(2 * np.pi * t))
        py = 0.75 * one
    elif motion == "shake":
        ax = 0.4 + 0.07 * np.sin(14 * np.pi * t)
    elif motion == "push":
        ax = np.where(t < 0.5, 0.15 + 0.5 * t, 0.4 + 0.5 * (t - 0.5) * 2 * 0.4)
        px = np.where(t < 0.5, 0.55, 0.55 + (t - 0.5) * 2 * 0.35)
    elif motion == "chase":
        px, ax = 0.35 + 0.5 * t, 0.1 + 0.5 * t
    elif motion == "swap":
        ax, px = 0.25 + 0.5 * t, 0.75 - 0.5 * t
        ay, py = 0.38 * one, 0.62 * one
    elif motion == "grow":
        scale = 0.6 + 1.2 * t
    elif motion == "fall":
        ay = 0.15 + 0.7 * t**2
        py = 0.8 * one
    elif motion == "bob":
        ay = 0.5 + 0.06 * np.sin(4 * np.pi * t)
    elif motion != "still":
        raise ValueError(f"unknown motion {motion!r}")
    return ax + rng_jitter, ay, scale, px, py


def _mask(shape: str, size: int) -> np.ndarray:
    r = size / 2
    yy, xx = np.mgrid[0:size, 0:size] + 0.5 - r
    if shape == "circle":
        return xx**2 + yy**2 <= r**2
    if shape == "square":
        return (np.abs(xx) <= r * 0.85) & (np.abs(yy) <= r * 0.85)
    if shape == "diamond":
        return np.abs(xx) + np.abs(yy) <= r
    return (yy >= -r * 0.8) & (np.abs(xx) <= (yy + r * 0.8) * 0.6)  # triangle


def background(scene: str, size: int, tint: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """A fixed texture per scene, optionally tinted (used for the long-form 'year' label)."""
    i = SCENES.index(scene)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.array([[90, 90, 110], [120, 140, 150], [100, 120, 80], [140, 110, 90],
                     [70, 70, 70], [150, 120, 110]][i], np.float32)
    pattern = [(xx // 8) % 2, (yy // 8) % 2, ((xx + yy) // 10) % 2, ((xx // 6) + (yy // 6)) % 2,
               (xx // 14) % 2 * ((yy // 14) % 2), ((xx - yy) // 12) % 2][i]
    img = base[None, None, :] * (0.75 + 0.25 * pattern[..., None])
    return np.clip(img + np.array(tint, np.float32), 0, 255).astype(np.uint8)


def render_event(event: Event, frames: int, size: int, rng: np.random.Generator,
                 tint: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """uint8 [frames, size, size, 3] of one event."""
    bg = background(event.scene, size, tint)
    if event.hidden:  # the scene shows above a panel that covers wherever actors can be
        bg = bg.copy()
        bg[int(0.12 * size):] = 35
        return np.repeat(bg[None], frames, axis=0)
    t = np.linspace(0, 1, frames, endpoint=False)
    ax, ay, scale, px, py = _positions(VERBS[event.verb], t, rng.uniform(-0.03, 0.03))
    if event.flip:
        ax, px = 1 - ax, 1 - px
    out = np.repeat(bg[None], frames, axis=0)
    actor_size = max(6, size // 7)
    for f in range(frames):
        for phrase, x, y, s in ((event.patient, px[f], py[f], 1.0),
                                (event.agent, ax[f], ay[f], scale[f])):
            colour, shape = phrase.split(" ")
            n = max(3, int(actor_size * s))
            m = _mask(shape, n)
            cx, cy = int(x * size) - n // 2, int(y * size) - n // 2
            x0, y0 = max(cx, 0), max(cy, 0)
            x1, y1 = min(cx + n, size), min(cy + n, size)
            if x1 <= x0 or y1 <= y0:
                continue
            sub = m[y0 - cy:y1 - cy, x0 - cx:x1 - cx]
            out[f, y0:y1, x0:x1][sub] = COLOURS[colour]
    return out
