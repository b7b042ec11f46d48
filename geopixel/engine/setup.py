"""One explicit call that makes MMEngine 0.10.7 work on today's stack.

:func:`setup_mmengine` (called by ``register_all_modules()``, by every tool
through ``load_config``, and by tools/train.py with the run's trusted
checkpoint paths) applies the three workarounds; importing geopixel changes
no MMEngine global.

1. **Package lookup.** MMEngine finds installed packages through
   ``pkg_resources``, which setuptools >= 81 no longer ships and which
   points editable installs at the wrong folder. Pure-Python configs that
   inherit with an absolute import (``from geopixel.configs._base_... import
   *``) go through that lookup; we answer it with ``importlib``.
2. **Checkpoint loading on torch>=2.6**: a weights-only local loader, with
   full unpickling only for the paths passed as ``trusted_checkpoints``
   (:class:`~geopixel.engine.checkpoint.SafeLocalCheckpointLoader`).
3. **Atomic checkpoint writes**: the ``geopixel_atomic_local`` file backend.

Every step is idempotent; a later call replaces the trusted paths.
"""
import importlib.util
import os.path as osp
from typing import Sequence


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


def _route_package_lookups() -> None:
    import mmengine.config.config as config_module
    import mmengine.utils as utils_module
    import mmengine.utils.package_utils as package_utils
    for module in (config_module, utils_module, package_utils):
        module.get_installed_path = get_installed_path
        module.is_installed = is_installed


def setup_mmengine(trusted_checkpoints: Sequence[str] = ()) -> None:
    """Apply geopixel's MMEngine workarounds (see the module docstring).

    Args:
        trusted_checkpoints: checkpoint files, or folders (a run's
            ``work_dir``), that MMEngine's loads may fully unpickle when a
            weights-only load refuses them. Only for files the user vouches
            for: unpickling runs whatever code a file carries.
    """
    from .checkpoint import SafeLocalCheckpointLoader, register_atomic_backend
    _route_package_lookups()
    register_atomic_backend()
    SafeLocalCheckpointLoader(trusted_checkpoints).install()
