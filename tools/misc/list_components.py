"""Print what every geopixel registry holds.

    python tools/misc/list_components.py [--registry TILERS] [--json]
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)


def collect(names=None) -> dict:
    """``{registry: {name: 'module.Class'}}`` after importing every
    location."""
    from geopixel.registry import ALL_REGISTRIES
    out = {}
    for reg_name, registry in ALL_REGISTRIES.items():
        if names and reg_name not in names:
            continue
        registry.import_from_location()
        out[reg_name] = {
            name: f'{obj.__module__}.{obj.__qualname__}'
            for name, obj in sorted(registry.module_dict.items())
        }
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--registry', nargs='*', help='only these registries')
    parser.add_argument('--json', action='store_true', help='print JSON')
    args = parser.parse_args(argv)
    table = collect(args.registry)
    if args.json:
        print(json.dumps(table, indent=2))
        return
    for reg_name, entries in table.items():
        print(f'{reg_name} ({len(entries)})')
        if not entries:
            print('    (empty)')
        for name, where in entries.items():
            print(f'    {name:<28} {where}')


if __name__ == '__main__':
    main()
