"""Small, dependency-light helpers shared by datasets, models and tools."""
from .errors import BadRecordError, run_tool, unencodable_text
from .files import read_json
from .masks import (
                    decode_rle,
                    encode_rle,
                    polygons_to_mask,
                    validate_polygon,
)
from .paths import resolve_data_path
from .setup_env import load_plugins, register_all_modules

__all__ = [
    'BadRecordError', 'decode_rle', 'encode_rle',
    'polygons_to_mask', 'validate_polygon', 'resolve_data_path',
    'load_plugins', 'register_all_modules', 'unencodable_text', 'read_json',
    'run_tool'
]
