"""Drawing primitives of the synthetic bird generator: part outlines, pose, rasters, textures, clutter.

Canonical frame: the bird faces right, x grows rightwards and y downwards (image convention), one unit
is about the bird's length. A part's outline is a list of polygons, each an array `(N, 2)` of (x, y).
Nothing here draws random numbers except the functions that take a `numpy.random.Generator`.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Polygon = np.ndarray  # (N, 2) float64, (x, y)

_TAIL_ROOT = np.array([-0.16, 0.07])
_TAIL_DIRECTION_DEG = 165.0  # pointing back and slightly down


def ellipse(cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0, n: int = 48) -> Polygon:
    """An ellipse as a polygon `(n, 2)`, its x axis turned by `angle_deg` (clockwise on screen)."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    a = np.deg2rad(angle_deg)
    x, y = rx * np.cos(t), ry * np.sin(t)
    return np.stack([cx + x * np.cos(a) - y * np.sin(a), cy + x * np.sin(a) + y * np.cos(a)], axis=1)


def _polar(radius: float, offset_deg: float) -> np.ndarray:
    """A point `(2,)` at `radius` from the tail root, `offset_deg` away from the tail's direction."""
    a = np.deg2rad(_TAIL_DIRECTION_DEG + offset_deg)
    return _TAIL_ROOT + radius * np.array([np.cos(a), np.sin(a)])


def _fan_tail() -> list[Polygon]:
    arc = [_polar(0.31, d) for d in np.linspace(-24.0, 24.0, 13)]
    return [np.array([_polar(0.02, 90.0), *arc, _polar(0.02, -90.0)])]


def _forked_tail() -> list[Polygon]:
    pts = [_polar(0.02, 90.0), _polar(0.34, -28.0), _polar(0.31, -12.0), _polar(0.15, 0.0),
           _polar(0.31, 12.0), _polar(0.34, 28.0), _polar(0.02, -90.0)]
    return [np.array(pts)]


def _pointed_wing() -> list[Polygon]:
    t = np.linspace(-0.5 * np.pi, 0.5 * np.pi, 17)
    front = np.stack([0.04 + 0.10 * np.cos(t), 0.02 + 0.09 * np.sin(t)], axis=1)
    return [np.vstack([front, [[-0.36, 0.11]]])]


def _legs() -> list[Polygon]:
    w = 0.014
    out = []
    for x0 in (-0.01, 0.07):
        out.append(np.array([[x0 - w, 0.15], [x0 + w, 0.15], [x0 + w, 0.33], [x0 - w, 0.33]]))
        out.append(np.array([[x0 - w, 0.33 - 2 * w], [x0 + 0.06, 0.33 - 2 * w], [x0 + 0.06, 0.33], [x0 - w, 0.33]]))
    return out


def _crest() -> list[Polygon]:
    bases = [((0.19, -0.20), (0.225, -0.225), (0.13, -0.31)),
             ((0.225, -0.225), (0.26, -0.235), (0.20, -0.35)),
             ((0.26, -0.235), (0.295, -0.23), (0.28, -0.34))]
    return [np.array(tri, dtype=np.float64) for tri in bases]


# part -> shape name -> outline in the canonical frame
SHAPES: dict[str, dict[str, list[Polygon]]] = {
    "head": {"round": [ellipse(0.26, -0.14, 0.115, 0.11)]},
    "beak": {
        "short": [np.array([[0.35, -0.175], [0.46, -0.14], [0.35, -0.10]])],
        "hooked": [np.array([[0.35, -0.185], [0.48, -0.175], [0.555, -0.15], [0.565, -0.085],
                             [0.54, -0.105], [0.50, -0.125], [0.35, -0.10]])],
    },
    "eye": {"round": [ellipse(0.29, -0.16, 0.033, 0.033, n=24)]},
    "body": {"oval": [ellipse(0.0, 0.05, 0.27, 0.16, -8.0)]},
    "wing": {"round": [ellipse(-0.04, 0.02, 0.17, 0.09, 8.0)], "pointed": _pointed_wing()},
    "tail": {"fan": _fan_tail(), "forked": _forked_tail()},
    "legs": {"thin": _legs()},
    "crest": {"tuft": _crest()},
}


def all_points() -> np.ndarray:
    """Every outline point of every shape variant `(M, 2)`."""
    return np.vstack([p for variants in SHAPES.values() for polys in variants.values() for p in polys])


def reference_circle() -> tuple[np.ndarray, float]:
    """Centre `(2,)` and radius of a circle holding every shape variant: it fits the bird in any pose,
    and being the same for every class, it keeps the bird's size free of class information."""
    pts = all_points()
    centre = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    return centre, float(np.linalg.norm(pts - centre, axis=1).max())


@dataclass(frozen=True)
class Pose:
    """Similarity transform canonical -> pixels: mirror, rotate about `centre`, scale, translate."""

    centre: tuple[float, float]
    pixels_per_unit: float
    angle_deg: float
    flip: bool
    offset: tuple[float, float]

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates `(N, 2)` of canonical points `(N, 2)`."""
        q = points - np.asarray(self.centre)
        if self.flip:
            q = q * np.array([-1.0, 1.0])
        a = np.deg2rad(self.angle_deg)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        return (q @ rot.T) * self.pixels_per_unit + np.asarray(self.offset)

    def direction_deg(self, canonical_deg: float) -> float:
        """The on-screen angle of a canonical direction."""
        return (180.0 - canonical_deg if self.flip else canonical_deg) + self.angle_deg


def raster(polygons: list[np.ndarray], size: int) -> np.ndarray:
    """Boolean mask `(size, size)` of the union of pixel-space polygons `(N, 2)`."""
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        draw.polygon([(float(x), float(y)) for x, y in poly], fill=255)
    return np.asarray(img) > 0


def speckle_field(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Balanced +-1 noise `(size, size)` in square cells of `cell` pixels (fine speckle)."""
    n = -(-size // cell)
    cells = np.where(rng.random((n, n)) < 0.5, -1.0, 1.0)
    return np.kron(cells, np.ones((cell, cell)))[:size, :size]


def stripe_field(size: int, cell: int, angle_deg: float) -> np.ndarray:
    """+-1 stripes `(size, size)`, each `cell` pixels wide, running along `angle_deg` on screen."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    a = np.deg2rad(angle_deg)
    across = -xx * np.sin(a) + yy * np.cos(a)
    return np.where(np.floor(across / cell) % 2 == 0, 1.0, -1.0)


def hsv_unit_rgb(hue_deg: float, saturation: float) -> np.ndarray:
    """RGB `(3,)` in [0, 1] of a hue and saturation at value 1; RGB is linear in value, so a pixel
    of value v is v times this."""
    return np.array(colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, saturation, 1.0))


def _muted(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random low-saturation colour, unlike any part's."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.04, 0.2), rng.uniform(0.5, 0.9))
    return round(r * 255), round(g * 255), round(b * 255)


def clutter_background(rng: np.random.Generator, size: int, n_blobs: int, n_lines: int) -> np.ndarray:
    """A muted background `(size, size, 3)` float in [0, 255]: soft blobs and thin blurred lines."""
    img = Image.new("RGB", (size, size), _muted(rng))
    draw = ImageDraw.Draw(img)
    for _ in range(n_blobs):
        cx, cy = rng.uniform(0, size, 2)
        rx, ry = rng.uniform(0.08, 0.3, 2) * size
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=_muted(rng))
    img = img.filter(ImageFilter.GaussianBlur(radius=size / 32))
    draw = ImageDraw.Draw(img)
    for _ in range(n_lines):
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        draw.line([(x0, y0), (x1, y1)], fill=_muted(rng), width=int(rng.integers(1, 3)))
    img = img.filter(ImageFilter.GaussianBlur(radius=0.8))
    return np.asarray(img, dtype=np.float64)
