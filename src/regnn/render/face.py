"""A weight-free 2-D face whose features follow the 25 REACT attributes, drawn with Pillow.

The paper shows reactions as rendered faces (Fig. 5) and the REACT challenge renders 3-D
faces; neither renderer's weights are available offline, so this module draws a cartoon
face from the attribute vector alone. Each facial action unit moves one feature, so every
AU is visible on its own (``tests/test_render_face.py`` checks that region by region):

=======  ==========================  ===========================================
AU       FACS name                   drawn as
=======  ==========================  ===========================================
AU1      inner brow raiser           inner ends of the brows rise
AU2      outer brow raiser           outer ends of the brows rise
AU4      brow lowerer                brows drop and draw together, glabella furrows
AU6      cheek raiser                cheeks rise and flush, lower lids push up, crow's feet
AU7      lid tightener               both lids narrow the eye opening
AU9      nose wrinkler               wrinkles across the nose bridge, nostril wings rise
AU10     upper lip raiser            upper lip rises, nasolabial folds deepen
AU12     lip corner puller           mouth corners go up and out (smile)
AU14     dimpler                     corners tighten inwards, dimples appear
AU15     lip corner depressor        mouth corners go down
AU17     chin raiser                 lower lip pushed up, chin boss wrinkles
AU23     lip tightener               mouth narrows, lips thin
AU24     lip pressor                 lips pressed flat, pressure lines above and below
AU25     lips part                   a gap opens between the lips (teeth visible)
AU26     jaw drop                    the jaw and chin drop, the mouth opens wide
=======  ==========================  ===========================================

Valence and arousal are shown by a small gauge in the top-right corner (a dot at
``(valence, arousal)`` on a square from -1 to 1, green for positive valence, red for
negative); the eight expression probabilities are a bar chart along the bottom edge, in
REACT order (Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt), coloured by
:data:`EXPRESSION_COLOURS`.

All geometry is in unit coordinates of a square tile (x to the right, y down) and is scaled
at draw time, so one :class:`FaceRenderer` draws into any ``ImageDraw`` at any offset; the
video module uses that to draw a whole grid of faces on one canvas per frame. Anti-aliasing
is by supersampling: draw at ``supersample`` times the size, then shrink with a box filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from regnn.schema import NUM_ATTRIBUTES, index_of

RGB = tuple[int, int, int]

# Column indices, resolved once by name so the face never depends on a magic number.
_AU = {name: index_of(name) for name in (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU23", "AU24", "AU25", "AU26",
)}  # fmt: skip
_VALENCE = index_of("valence")
_AROUSAL = index_of("arousal")
_EXPR0 = index_of("Neutral")

EXPRESSION_COLOURS: tuple[RGB, ...] = (
    (150, 150, 150),  # Neutral
    (240, 190, 40),  # Happy
    (70, 110, 200),  # Sad
    (240, 130, 30),  # Surprise
    (140, 80, 170),  # Fear
    (90, 150, 60),  # Disgust
    (210, 40, 40),  # Anger
    (150, 100, 60),  # Contempt
)


@dataclass(frozen=True)
class FaceStyle:
    """Colours of the cartoon face (RGB)."""

    background: RGB = (250, 250, 248)
    skin: RGB = (243, 207, 172)
    outline: RGB = (125, 85, 62)
    brow: RGB = (92, 62, 42)
    wrinkle: RGB = (160, 105, 80)
    cheek: RGB = (236, 140, 130)
    eye_white: RGB = (255, 255, 255)
    iris: RGB = (62, 84, 126)
    lip: RGB = (196, 88, 88)
    mouth: RGB = (78, 22, 32)
    teeth: RGB = (250, 250, 240)
    gauge: RGB = (200, 200, 200)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """Colour ``t`` of the way from ``a`` to ``b`` (``t`` clipped to [0, 1])."""
    t = min(max(t, 0.0), 1.0)
    return (
        int(round(a[0] + (b[0] - a[0]) * t)),
        int(round(a[1] + (b[1] - a[1]) * t)),
        int(round(a[2] + (b[2] - a[2]) * t)),
    )


_ANG = np.linspace(np.pi, 3 * np.pi, 33)[:-1]  # head outline, from the left, over the top
_HEAD = np.stack([np.cos(_ANG), np.sin(_ANG)], axis=1)  # unit circle; scaled per half
_T = np.linspace(0.0, 1.0, 9)[:, None]
_B0, _B1, _B2 = (1 - _T) ** 2, 2 * (1 - _T) * _T, _T**2  # Bernstein weights, (9, 1) each


def _curve(p0: tuple[float, float], mid: tuple[float, float], p2: tuple[float, float]
           ) -> np.ndarray:
    """(9, 2) points of the quadratic Bezier from ``p0`` to ``p2`` passing through ``mid``."""
    ctrl = (2.0 * mid[0] - 0.5 * (p0[0] + p2[0]), 2.0 * mid[1] - 0.5 * (p0[1] + p2[1]))
    return _B0 * p0 + _B1 * ctrl + _B2 * p2


class FaceRenderer:
    """Draw the cartoon face of one frame of attributes.

    ``size`` is the output tile size in pixels (square); ``supersample`` the factor at which
    :meth:`render` draws before shrinking (2 gives smooth edges at about 1.5x the cost).
    :meth:`draw` draws at a caller-chosen scale and offset without any resampling.
    """

    def __init__(self, size: int = 128, supersample: int = 2, style: FaceStyle | None = None
                 ) -> None:
        if size < 32:
            raise ValueError(f"face size must be at least 32 pixels, got {size}")
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.size = int(size)
        self.supersample = int(supersample)
        self.style = style or FaceStyle()

    # ------------------------------------------------------------------ public API
    def render(self, attrs: np.ndarray) -> np.ndarray:
        """One face as an ``(size, size, 3)`` uint8 RGB array."""
        big = self.size * self.supersample
        img = Image.new("RGB", (big, big), self.style.background)
        self.draw(ImageDraw.Draw(img), attrs, 0, 0, big)
        if self.supersample > 1:
            img = img.reduce(self.supersample)
        return np.asarray(img)

    def render_sequence(self, attrs: np.ndarray) -> np.ndarray:
        """Faces of a ``(T, 25)`` sequence as a ``(T, size, size, 3)`` uint8 array."""
        attrs = _check_attrs(attrs, ndim=2)
        return np.stack([self.render(a) for a in attrs])

    def draw(self, draw: ImageDraw.ImageDraw, attrs: np.ndarray, x0: float, y0: float,
             scale: float) -> None:
        """Draw the face of ``attrs`` (25,) into ``draw`` at ``(x0, y0)``, ``scale`` px wide."""
        a = np.asarray(attrs, dtype=np.float64)
        if a.shape != (NUM_ATTRIBUTES,):
            raise ValueError(f"a frame must have shape ({NUM_ATTRIBUTES},), got {a.shape}")
        a = np.nan_to_num(a, nan=0.0)
        au = {k: float(min(max(a[i], 0.0), 1.0)) for k, i in _AU.items()}
        s = self.style
        lw = max(1, int(round(scale * 0.018)))  # stroke width of features
        thin = max(1, int(round(scale * 0.011)))  # stroke width of wrinkles

        def P(x: float, y: float) -> tuple[float, float]:
            return (x0 + x * scale, y0 + y * scale)

        origin = np.array([x0, y0])

        def pts(arr: np.ndarray) -> list[float]:
            return (arr * scale + origin).ravel().tolist()

        def box(cx: float, cy: float, rx: float, ry: float) -> list[float]:
            return [x0 + (cx - rx) * scale, y0 + (cy - ry) * scale,
                    x0 + (cx + rx) * scale, y0 + (cy + ry) * scale]

        # ---- head: upper half-ellipse + lower half-ellipse whose depth follows AU26 -------
        cx, cy, rx = 0.5, 0.46, 0.30
        ry_top, ry_low = 0.40, 0.37 + 0.05 * au["AU26"]
        head = _HEAD * (rx, 1.0) + (cx, cy)
        head[:, 1] = cy + _HEAD[:, 1] * np.where(_HEAD[:, 1] < 0, ry_top, ry_low)
        outline = pts(head)
        draw.polygon(outline, fill=s.skin)
        # the outline as a closed polyline: polygon(width > 1) builds a mask image per call
        draw.line(outline + outline[:4], fill=s.outline, width=lw)

        # ---- cheeks (AU6): flushed apples that rise -------------------------------------
        if au["AU6"] > 0.02:
            col = _mix(s.skin, s.cheek, 0.8 * au["AU6"])
            for side in (-1, 1):
                draw.ellipse(box(0.5 + side * 0.15, 0.565 - 0.04 * au["AU6"], 0.055, 0.035),
                             fill=col)

        # ---- brows (AU1 inner, AU2 outer, AU4 lower + together) -------------------------
        for side in (-1, 1):  # -1: viewer's left
            inner = (0.5 + side * (0.055 - 0.02 * au["AU4"]),
                     0.305 - 0.07 * au["AU1"] + 0.05 * au["AU4"])
            mid = (0.5 + side * 0.125,
                   0.285 - 0.025 * au["AU1"] - 0.035 * au["AU2"] + 0.035 * au["AU4"])
            outer = (0.5 + side * 0.195, 0.305 - 0.07 * au["AU2"] + 0.03 * au["AU4"])
            draw.line(pts(_curve(inner, mid, outer)), fill=s.brow, width=2 * lw)
        if au["AU4"] > 0.02:  # glabella furrows
            col = _mix(s.skin, s.wrinkle, au["AU4"])
            for dx in (-0.018, 0.018):
                draw.line([P(0.5 + dx, 0.31), P(0.5 + dx * 0.7, 0.375)], fill=col, width=thin)

        # ---- eyes (AU6 pushes the lower lid up, AU7 narrows both lids) ------------------
        up_h = 0.042 * (1.0 - 0.55 * au["AU7"])
        lo_h = 0.030 * (1.0 - 0.45 * au["AU7"] - 0.45 * au["AU6"])
        for side in (-1, 1):
            ex, ey, ew = 0.5 + side * 0.115, 0.40, 0.058
            left, right = (ex - ew, ey), (ex + ew, ey)
            top = _curve(left, (ex, ey - up_h), right)
            bot = _curve(right, (ex, ey + lo_h), left)
            draw.polygon(pts(np.concatenate([top, bot])), fill=s.eye_white)
            r = 0.024
            draw.ellipse(box(ex, ey + 0.5 * (lo_h - up_h), r, min(r, 0.5 * (up_h + lo_h))),
                         fill=s.iris)
            draw.line(pts(top), fill=s.outline, width=lw)
            draw.line(pts(bot), fill=_mix(s.skin, s.outline, 0.6 + 0.4 * au["AU7"]),
                      width=thin + (lw - thin) * int(au["AU7"] > 0.5))
            if au["AU6"] > 0.02:  # crow's feet at the outer corner
                col = _mix(s.skin, s.wrinkle, au["AU6"])
                ox = ex + side * (ew + 0.012)
                for dy in (-0.018, 0.0, 0.018):
                    draw.line([P(ox, ey + dy * 0.5), P(ox + side * 0.03, ey + dy * 1.3)],
                              fill=col, width=thin)

        # ---- nose (AU9 bridge wrinkles + raised wings) ----------------------------------
        draw.line([P(0.49, 0.43), P(0.478, 0.545)], fill=_mix(s.skin, s.outline, 0.5),
                  width=thin)
        wing_y = 0.565 - 0.03 * au["AU9"]
        wing_dx = 0.036 + 0.014 * au["AU9"]
        draw.line(pts(_curve((0.5 - wing_dx, wing_y - 0.008), (0.5, wing_y + 0.01),
                             (0.5 + wing_dx, wing_y - 0.008))),
                  fill=s.outline, width=thin)
        for side in (-1, 1):  # nostrils
            draw.ellipse(box(0.5 + side * 0.018, wing_y - 0.004, 0.009, 0.005),
                         fill=_mix(s.skin, s.outline, 0.7))
        if au["AU9"] > 0.02:
            col = _mix(s.skin, s.wrinkle, au["AU9"])
            for y in (0.455, 0.49, 0.525):
                draw.line([P(0.462, y), P(0.538, y)], fill=col, width=thin)

        # ---- nasolabial folds (AU10, a little with AU12) -------------------------------
        fold = max(au["AU10"], 0.6 * au["AU12"])
        if fold > 0.02:
            col = _mix(s.skin, s.wrinkle, fold)
            for side in (-1, 1):
                draw.line(pts(_curve((0.5 + side * 0.068, 0.585), (0.5 + side * 0.105, 0.645),
                                     (0.5 + side * 0.125, 0.705))), fill=col, width=thin)

        # ---- mouth ---------------------------------------------------------------------
        gap = 0.022 * au["AU25"] + 0.065 * au["AU26"]
        upper_inner = 0.695 - 0.03 * au["AU10"] - 0.022 * au["AU17"]
        lower_inner = upper_inner + gap
        thick = max(0.2, 1.0 - 0.35 * au["AU23"] - 0.6 * au["AU24"])
        up_t = 0.020 * thick + 0.008 * au["AU10"]
        lo_t = 0.026 * thick
        half_w = 0.095 + 0.03 * au["AU12"] - 0.014 * au["AU14"] - 0.032 * au["AU23"]
        corner_y = (0.695 - 0.045 * au["AU12"] + 0.045 * au["AU15"] - 0.012 * au["AU14"]
                    + 0.45 * gap)
        L, R = (0.5 - half_w, corner_y), (0.5 + half_w, corner_y)
        up_outer = _curve(L, (0.5, upper_inner - up_t), R)
        up_inner = _curve(L, (0.5, upper_inner), R)
        lo_inner = _curve(L, (0.5, lower_inner), R)
        lo_outer = _curve(L, (0.5, lower_inner + lo_t), R)
        if gap > 0.002:
            draw.polygon(pts(np.concatenate([up_inner, lo_inner[::-1]])), fill=s.mouth)
            teeth = up_inner.copy()
            teeth[1:-1, 1] += min(gap, 0.014)
            draw.polygon(pts(np.concatenate([up_inner, teeth[::-1]])), fill=s.teeth)
        draw.polygon(pts(np.concatenate([up_outer, up_inner[::-1]])), fill=s.lip)
        draw.polygon(pts(np.concatenate([lo_inner, lo_outer[::-1]])), fill=s.lip)
        draw.line(pts(up_inner if gap <= 0.002 else lo_inner),
                  fill=_mix(s.lip, s.mouth, 0.6 + 0.4 * au["AU24"]),
                  width=thin + int(au["AU24"] > 0.5) * (lw - thin))
        if au["AU24"] > 0.02:  # pressure lines above and below the pressed lips
            col = _mix(s.skin, s.wrinkle, au["AU24"])
            draw.line(pts(_curve((0.45, upper_inner - up_t - 0.02), (0.5, upper_inner - up_t
                                 - 0.026), (0.55, upper_inner - up_t - 0.02))),
                      fill=col, width=thin)
            draw.line(pts(_curve((0.45, lower_inner + lo_t + 0.02), (0.5, lower_inner + lo_t
                                 + 0.026), (0.55, lower_inner + lo_t + 0.02))),
                      fill=col, width=thin)
        if au["AU14"] > 0.02:  # dimples beside the corners
            col = _mix(s.skin, s.wrinkle, au["AU14"])
            for side in (-1, 1):
                x = 0.5 + side * (half_w + 0.022)
                draw.line([P(x, corner_y - 0.02), P(x + side * 0.006, corner_y + 0.012)],
                          fill=col, width=lw)

        # ---- chin (AU17 boss wrinkles, follows the jaw drop) ----------------------------
        chin_y = 0.795 + 0.05 * au["AU26"] - 0.025 * au["AU17"]
        if au["AU17"] > 0.02:
            col = _mix(s.skin, s.wrinkle, au["AU17"])
            draw.line(pts(_curve((0.45, chin_y + 0.012), (0.5, chin_y - 0.012),
                                 (0.55, chin_y + 0.012))), fill=col, width=thin)
            for dx in (-0.025, 0.0, 0.025):
                draw.ellipse(box(0.5 + dx, chin_y + 0.025, 0.006, 0.006), fill=col)

        # ---- valence / arousal gauge (top-right) -----------------------------------------
        gx, gy, gr = 0.895, 0.10, 0.085
        draw.rectangle(box(gx, gy, gr, gr), outline=s.gauge, width=thin)
        draw.line([P(gx - gr, gy), P(gx + gr, gy)], fill=s.gauge, width=thin)
        draw.line([P(gx, gy - gr), P(gx, gy + gr)], fill=s.gauge, width=thin)
        v = min(max(float(a[_VALENCE]), -1.0), 1.0)
        ar = min(max(float(a[_AROUSAL]), -1.0), 1.0)
        dot = _mix((150, 150, 150), (40, 160, 60) if v >= 0 else (210, 50, 40), 3 * abs(v))
        draw.ellipse(box(gx + v * gr * 0.85, gy - ar * gr * 0.85, 0.02, 0.02), fill=dot)

        # ---- expression probabilities (bars along the bottom) ----------------------------
        bx0, bx1, by_base, bh = 0.14, 0.86, 0.985, 0.075
        bw = (bx1 - bx0) / 8.0
        draw.line([P(bx0, by_base), P(bx1, by_base)], fill=s.gauge, width=thin)
        for k in range(8):
            p = min(max(float(a[_EXPR0 + k]), 0.0), 1.0)
            if p * bh * scale >= 0.5:
                draw.rectangle([P(bx0 + k * bw + 0.1 * bw, by_base - p * bh),
                                P(bx0 + (k + 1) * bw - 0.1 * bw, by_base)],
                               fill=EXPRESSION_COLOURS[k])


def _check_attrs(attrs: np.ndarray, ndim: int) -> np.ndarray:
    arr = np.asarray(attrs, dtype=np.float32)
    if arr.ndim != ndim or arr.shape[-1] != NUM_ATTRIBUTES:
        want = "(T, 25)" if ndim == 2 else "(25,)"
        raise ValueError(f"attributes must have shape {want}, got {arr.shape}")
    return arr


def neutral_attributes() -> np.ndarray:
    """A (25,) frame with no AU active, valence = arousal = 0 and P(Neutral) = 1."""
    a = np.zeros(NUM_ATTRIBUTES, dtype=np.float32)
    a[_EXPR0] = 1.0
    return a


def render_face(attrs: np.ndarray, size: int = 128, supersample: int = 2) -> np.ndarray:
    """Render one (25,) frame as a ``(size, size, 3)`` uint8 RGB image."""
    return FaceRenderer(size, supersample).render(_check_attrs(attrs, ndim=1))
