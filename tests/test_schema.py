import numpy as np
import pytest

from regnn import schema


def test_names_groups_and_order():
    assert schema.NUM_ATTRIBUTES == 25
    assert schema.ATTRIBUTE_NAMES[:3] == ("AU1", "AU2", "AU4")
    assert schema.ATTRIBUTE_NAMES[15:17] == ("valence", "arousal")
    assert schema.ATTRIBUTE_NAMES[-1] == "Contempt"
    assert sum(g.size for g in schema.GROUPS) == 25
    assert schema.index_of("au12") == 7
    with pytest.raises(KeyError, match="unknown attribute"):
        schema.index_of("AU99")


def test_clip_to_ranges_respects_ranges_and_simplex():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, size=(4, 10, 25))
    y = schema.clip_to_ranges(x)
    assert y.dtype == np.float32
    assert (y >= schema.LOW).all() and (y <= schema.HIGH).all()
    np.testing.assert_allclose(y[..., schema.EXPRESSION_SLICE].sum(-1), 1.0, atol=1e-5)
    z = np.full((3, 25), -5.0)
    np.testing.assert_allclose(schema.clip_to_ranges(z)[:, 17:], 1 / 8)


def test_binarize_aus_only_touches_aus():
    x = np.full((2, 25), 0.6, dtype=np.float32)
    y = schema.binarize_aus(x)
    assert (y[:, :15] == 1).all() and (y[:, 15:] == np.float32(0.6)).all()
