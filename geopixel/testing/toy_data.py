"""Toy data: a small synthetic dataset and configs pointed at it.

The shipped synthetic configs read ``data/synthetic`` (where
``tools/dataset_converters/make_synthetic.py`` writes by default); a test
writes a small dataset elsewhere and relocates the config there.
"""

SYNTHETIC_ROOT = 'data/synthetic'


def toy_dataset(root: str,
                num_images: int = 12,
                size: int = 256,
                seed: int = 3) -> str:
    """Write a small synthetic dataset in every layout (GeoPixelD, RRSIS-D,
    iSAID, tokenizer) under ``root`` and return ``root``.

    The defaults take about a second on a CPU and give every split at least
    one image; the same arguments give the same files.
    """
    from geopixel.datasets.synthetic import generate_synthetic_dataset
    generate_synthetic_dataset(root, num_images=num_images, size=size,
                               seed=seed)
    return root


def relocate(cfg, data_root: str):
    """Point a config (or config dict) written for ``data/synthetic`` at
    ``data_root``: data roots, annotation files, the tokenizer folder."""
    from geopixel.engine.runner_setup import relocate_paths
    return relocate_paths(cfg, SYNTHETIC_ROOT, data_root)
