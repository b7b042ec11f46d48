"""Fixes for MMEngine 0.10.7 on today's packaging stack.

MMEngine finds installed packages through ``pkg_resources``, which
setuptools >= 81 no longer ships, and which also points editable installs at
the wrong folder. Pure-Python configs that inherit with an absolute import
(``from geopixel.configs._base_.default_runtime import *``) go through that
lookup, so without this fix they fail for every pip user. We answer the same
question with ``importlib``. Applied when ``geopixel.engine`` is imported
(tools/train.py and tools/test.py do so first).
"""
import importlib.util
import os.path as osp


def get_installed_path(package: str) -> str:
    """Folder of an importable package (editable installs included)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModuleNotFoundError(f'{package} is not installed')
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    if spec.origin is None:
        raise RuntimeError(f'cannot locate package {package}')
    return osp.dirname(spec.origin)


def is_installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def apply() -> None:
    """Route MMEngine's package lookups through :func:`get_installed_path`."""
    import mmengine.config.config as config_module
    import mmengine.utils as utils_module
    import mmengine.utils.package_utils as package_utils
    for module in (config_module, utils_module, package_utils):
        module.get_installed_path = get_installed_path
        module.is_installed = is_installed


apply()
