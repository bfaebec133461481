"""The cartoon face: each AU visibly changes its own region, and only that region."""

from __future__ import annotations

import numpy as np
import pytest

from regnn.render.face import FaceRenderer, neutral_attributes, render_face
from regnn.schema import AU_NAMES, index_of

SIZE = 160

# Where each AU must act, in unit coordinates of the face tile (x0, y0, x1, y1), from the
# anatomy of the action: brows, eyes/cheeks, nose, mouth, chin/jaw.
BROWS = (0.25, 0.17, 0.75, 0.40)
REGIONS = {
    "AU1": BROWS, "AU2": BROWS, "AU4": BROWS,
    "AU6": (0.20, 0.33, 0.80, 0.62),  # lower lids, crow's feet, cheeks
    "AU7": (0.25, 0.33, 0.75, 0.46),  # eye openings only
    "AU9": (0.40, 0.40, 0.60, 0.60),  # nose
    "AU10": (0.33, 0.55, 0.67, 0.76), "AU12": (0.30, 0.55, 0.70, 0.76),
    "AU14": (0.30, 0.60, 0.70, 0.76), "AU15": (0.30, 0.60, 0.70, 0.78),
    "AU17": (0.35, 0.60, 0.65, 0.88),  # lower lip and chin
    "AU23": (0.33, 0.62, 0.67, 0.76), "AU24": (0.33, 0.60, 0.67, 0.78),
    "AU25": (0.35, 0.62, 0.65, 0.78),
    "AU26": (0.15, 0.46, 0.85, 0.92),  # mouth, chin and the jaw line from the ears down
}  # fmt: skip
GAUGE = (0.78, 0.0, 1.0, 0.22)
BARS = (0.10, 0.90, 0.90, 1.0)


@pytest.fixture(scope="module")
def renderer() -> FaceRenderer:
    return FaceRenderer(SIZE, supersample=2)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 24


def inside(mask: np.ndarray, region: tuple[float, float, float, float]) -> int:
    x0, y0, x1, y1 = (int(round(v * SIZE)) for v in region)
    return int(mask[y0:y1, x0:x1].sum())


def test_every_au_has_a_region() -> None:
    assert set(REGIONS) == set(AU_NAMES)


@pytest.mark.parametrize("au", AU_NAMES)
def test_single_au_changes_its_region_only(renderer: FaceRenderer, au: str) -> None:
    neutral = renderer.render(neutral_attributes())
    a = neutral_attributes()
    a[index_of(au)] = 1.0
    img = renderer.render(a)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    diff = changed(neutral, img)
    total = int(diff.sum())
    assert total >= 25, f"{au} at 1.0 changes only {total} pixels"
    share = inside(diff, REGIONS[au]) / total
    assert share >= 0.95, f"{au}: only {share:.0%} of the change lies in its region"
    assert inside(diff, GAUGE) == 0 and inside(diff, BARS) == 0


@pytest.mark.parametrize("au", ["AU2", "AU12", "AU26"])
def test_au_intensity_is_graded(renderer: FaceRenderer, au: str) -> None:
    neutral = renderer.render(neutral_attributes())
    counts = []
    for v in (0.5, 1.0):
        a = neutral_attributes()
        a[index_of(au)] = v
        counts.append(int(changed(neutral, renderer.render(a)).sum()))
    assert 0 < counts[0] < counts[1]


def test_aus_are_distinguishable(renderer: FaceRenderer) -> None:
    imgs = {}
    for au in AU_NAMES:
        a = neutral_attributes()
        a[index_of(au)] = 1.0
        imgs[au] = renderer.render(a)
    names = list(imgs)
    for i, p in enumerate(names):
        for q in names[i + 1:]:
            assert changed(imgs[p], imgs[q]).sum() > 10, f"{p} and {q} look the same"


def test_affect_and_expressions_drive_gauge_and_bars(renderer: FaceRenderer) -> None:
    neutral = renderer.render(neutral_attributes())
    a = neutral_attributes()
    a[index_of("valence")], a[index_of("arousal")] = 0.9, -0.8
    d = changed(neutral, renderer.render(a))
    assert inside(d, GAUGE) == d.sum() > 0
    e = neutral_attributes()
    e[index_of("Neutral")], e[index_of("Happy")] = 0.2, 0.8
    d = changed(neutral, renderer.render(e))
    assert inside(d, BARS) == d.sum() > 0


def test_render_face_is_deterministic_and_checks_shape() -> None:
    a = np.random.default_rng(3).uniform(0, 1, 25).astype(np.float32)
    assert np.array_equal(render_face(a, 64), render_face(a, 64))
    with pytest.raises(ValueError, match=r"\(25,\)"):
        render_face(np.zeros(24), 64)
    with pytest.raises(ValueError, match="at least 32"):
        FaceRenderer(8)


def test_render_sequence_shape_and_nan_tolerance(renderer: FaceRenderer) -> None:
    seq = np.tile(neutral_attributes(), (3, 1))
    seq[1, index_of("AU12")] = np.nan  # treated as 0, not a crash
    out = renderer.render_sequence(seq)
    assert out.shape == (3, SIZE, SIZE, 3)
    assert np.array_equal(out[0], out[1])
