"""geopixel: pixel-grounded multimodal LLMs for remote sensing.

Importing the top-level package is deliberately cheap: it pulls in no torch,
mmengine, transformers, sam2 or deepspeed. Import the sub-packages you need
(``geopixel.registry``, ``geopixel.datasets``, ``geopixel.models``...).
"""
from .version import __version__

__all__ = ['__version__']
