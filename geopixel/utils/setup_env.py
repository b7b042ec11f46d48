"""Register every geopixel module (and installed plugins) in one call."""
import importlib
import logging
from importlib import metadata

PLUGIN_GROUP = 'geopixel.plugins'


def load_plugins() -> list:
    """Import every package declared in the ``geopixel.plugins`` group."""
    loaded = []
    for entry in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
            loaded.append(entry.name)
        except Exception as exc:  # a broken plugin must not hide the others
            logging.getLogger('geopixel').warning(
                f'could not load geopixel plugin {entry.name!r}: {exc}')
    return loaded


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import all geopixel component modules so registries are filled.

    Also applies geopixel's MMEngine workarounds
    (:func:`geopixel.engine.setup_mmengine`), sets MMEngine's default scope
    to ``geopixel`` (for scripts that build components by name outside the
    Runner) and loads plugins.
    """
    for module in ('geopixel.models', 'geopixel.datasets',
                   'geopixel.evaluation', 'geopixel.engine',
                   'geopixel.visualization', 'geopixel.apis'):
        importlib.import_module(module)
    from geopixel.engine import setup_mmengine
    setup_mmengine()
    load_plugins()
    if init_default_scope:
        from mmengine.registry import init_default_scope as init_scope
        init_scope('geopixel')
