"""Reading checkpoints safely and mapping released checkpoints' keys onto
geopixel."""
from .io import (CheckpointError, check_finite, checkpoint_problem,
                 describe_fit, load_model_weights, model_state_of,
                 read_checkpoint, read_state_dict)
from .lora import (lora_delta, lora_scaling, merge_unmerged_lora,
                   read_lora_config)
from .official import convert_official_state_dict, load_official_checkpoint

__all__ = [
    'CheckpointError', 'check_finite', 'checkpoint_problem', 'describe_fit',
    'load_model_weights', 'model_state_of', 'read_checkpoint',
    'read_state_dict', 'convert_official_state_dict',
    'load_official_checkpoint', 'merge_unmerged_lora', 'lora_delta',
    'lora_scaling', 'read_lora_config'
]
