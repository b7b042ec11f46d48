"""RLE checks: run lengths read like pycocotools, malformed counts caught
(pycocotools decodes short counts from uninitialised memory)."""
import numpy as np
import pytest

from geopixel.evaluation.functional.rle import (check_rle,
                                                decode_checked_rle, rle_runs)
from geopixel.utils import BadRecordError, encode_rle


def test_runs_match_pycocotools_on_random_masks():
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        rle = encode_rle(mask)
        runs = rle_runs(rle['counts'])
        assert sum(runs) == h * w
        assert check_rle(rle, h, w) == int(mask.sum())
        assert (decode_checked_rle(rle, h, w) == mask).all()
        # the same runs, uncompressed, describe the same mask
        raw = mask_utils.frPyObjects(dict(size=[h, w], counts=runs), h, w)
        assert (mask_utils.decode(raw) == mask).all()


@pytest.mark.parametrize('counts, problem', [
    ('', 'cover 0 pixels'),
    ('5220', 'cover 11 pixels'),
    ('522035', 'cover 23 pixels'),
    ('abc', 'end in the middle of a number'),
    ('52~03', 'alphabet'),
    ('52é03', 'non-ASCII'),
    ([5, 2, 2, 2], 'cover 11 pixels'),
    ([5, -2, 13], 'negative'),
    ([5.0, 11], 'non-integer'),
    (None, 'string or a list'),
])
def test_malformed_counts_are_named(counts, problem):
    with pytest.raises(BadRecordError) as err:
        check_rle(dict(size=[4, 4], counts=counts), 4, 4, 'p.json',
                  'image_id x', 3)
    message = str(err.value)
    assert 'p.json' in message and 'image_id x' in message
    assert 'mask 3: malformed RLE counts' in message and problem in message
