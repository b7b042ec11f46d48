"""Shared fixtures: the ../shared reference data and a synthetic dataset."""
import os
import os.path as osp

import pytest

from geopixel.engine import setup_mmengine

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = os.environ.get('GEOPIXEL_SHARED', osp.join(osp.dirname(REPO),
                                                    'shared'))
PARITY = osp.join(SHARED, 'fixtures', 'official_parity')
GEOPIXELD_SAMPLE = osp.join(SHARED, 'data', 'geopixeld_sample')


def pytest_configure(config):
    config.addinivalue_line('markers',
                            'slow: takes more than a few seconds')
    setup_mmengine()  # what the tools do before loading a config


@pytest.fixture(scope='session')
def parity_dir():
    if not osp.isdir(PARITY):
        pytest.skip(f'official parity fixtures not found at {PARITY} '
                    '(set GEOPIXEL_SHARED)')
    return PARITY


@pytest.fixture(scope='session')
def geopixeld_sample_dir():
    if not osp.isdir(GEOPIXELD_SAMPLE):
        pytest.skip(f'GeoPixelD sample not found at {GEOPIXELD_SAMPLE}')
    return GEOPIXELD_SAMPLE


@pytest.fixture(scope='session')
def parity_tokenizer(parity_dir):
    from geopixel.tokenizers import InternLM2Tokenizer
    return InternLM2Tokenizer.from_pretrained(
        osp.join(parity_dir, 'checkpoint'))


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A small synthetic dataset in every layout (12 images of 256 px)."""
    from geopixel.testing import toy_dataset
    return toy_dataset(str(tmp_path_factory.mktemp('synthetic')),
                       num_images=12, size=256, seed=3)
