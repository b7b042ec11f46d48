"""Reading released checkpoints and mapping their keys onto geopixel."""
from .io import read_state_dict
from .official import (convert_official_state_dict, load_official_checkpoint,
                       merge_unmerged_lora)

__all__ = [
    'read_state_dict', 'convert_official_state_dict',
    'load_official_checkpoint', 'merge_unmerged_lora'
]
