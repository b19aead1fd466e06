"""Where a stored box lies on the page as displayed.

A layout's boxes are in pixels of the image the engine analysed: the page rendered as displayed,
turned clockwise by ``layout.rotation`` and, when a first reading went badly, straightened by
``-layout.skew_degrees`` (PIL ``rotate(..., expand=True)``). ``AnalysedToPage`` undoes both and
maps analysed pixels to PDF points of the displayed page (origin bottom-left, y up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pagestream.layout import PageLayout

# An affine map as (a, b, c, d, e, f): x' = a·x + c·y + e, y' = b·x + d·y + f (PDF's order).
Affine = tuple[float, float, float, float, float, float]


def compose(first: Affine, then: Affine) -> Affine:
    """The map that applies ``first``, then ``then``."""
    a1, b1, c1, d1, e1, f1 = first
    a2, b2, c2, d2, e2, f2 = then
    return (
        a2 * a1 + c2 * b1,
        b2 * a1 + d2 * b1,
        a2 * c1 + c2 * d1,
        b2 * c1 + d2 * d1,
        a2 * e1 + c2 * f1 + e2,
        b2 * e1 + d2 * f1 + f2,
    )


def invert(m: Affine) -> Affine:
    a, b, c, d, e, f = m
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return (ia, ib, ic, id_, -(ia * e + ic * f), -(ib * e + id_ * f))


def apply(m: Affine, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return a * x + c * y + e, b * x + d * y + f


def _rotation_inverse(rotation: int, width: float, height: float) -> Affine:
    """Pixels of an image turned clockwise by ``rotation`` → pixels of the unturned one.

    ``width``/``height`` are the turned image's.
    """
    r = rotation % 360
    if r == 90:  # unturned (x, y) = (v, W - u)
        return (0.0, -1.0, 1.0, 0.0, 0.0, width)
    if r == 180:
        return (-1.0, 0.0, 0.0, -1.0, width, height)
    if r == 270:  # unturned (x, y) = (H - v, u)
        return (0.0, 1.0, -1.0, 0.0, height, 0.0)
    return (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _unexpanded_size(width: float, height: float, degrees: float) -> tuple[float, float]:
    """Size of an image that ``rotate(degrees, expand=True)`` turned into ``width``×``height``."""
    c, s = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    det = c * c - s * s
    return (width * c - height * s) / det, (height * c - width * s) / det


@dataclass(frozen=True)
class AnalysedToPage:
    """Maps analysed-image pixels of one page to points of the displayed page (PDF, y up)."""

    matrix: Affine

    @classmethod
    def for_layout(cls, layout: PageLayout, page_width: float, page_height: float) -> AnalysedToPage:
        """The map for ``layout`` on a displayed page of ``page_width``×``page_height`` points."""
        w, h = float(layout.width or 1), float(layout.height or 1)
        rotation = layout.rotation % 360
        turned_aspect = page_height / page_width if rotation in (90, 270) else page_width / page_height
        m: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        # Straightened by us (expand=True) only if the analysed size is the turned page grown by the turn.
        if abs(layout.skew_degrees) >= 0.05:
            w0, h0 = _unexpanded_size(w, h, -layout.skew_degrees)
            if w0 > 0 and h0 > 0 and abs(w0 / h0 - turned_aspect) < abs(w / h - turned_aspect):
                t = math.radians(-layout.skew_degrees)  # PIL turned it counter-clockwise as displayed
                cos, sin = math.cos(t), math.sin(t)
                # p_new = R(p_old - c_old) + c_new, with R = [[cos, sin], [-sin, cos]] (y down);
                # inverse: p_old = R^T (p_new - c_new) + c_old
                rt: Affine = (cos, sin, -sin, cos, 0.0, 0.0)
                m = compose((1.0, 0.0, 0.0, 1.0, -w / 2, -h / 2), rt)
                m = compose(m, (1.0, 0.0, 0.0, 1.0, w0 / 2, h0 / 2))
                w, h = w0, h0
        m = compose(m, _rotation_inverse(rotation, w, h))
        dw, dh = (h, w) if rotation in (90, 270) else (w, h)
        # displayed pixels (y down) → points (y up)
        m = compose(m, (page_width / dw, 0.0, 0.0, -page_height / dh, 0.0, page_height))
        return cls(matrix=m)

    def point(self, x: float, y: float) -> tuple[float, float]:
        return apply(self.matrix, x, y)
