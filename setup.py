"""geopixel: pixel-grounded multimodal LLMs for remote sensing."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    """Requirement lines of requirements/<name>.txt (no options, no -r)."""
    lines = []
    with open(osp.join(HERE, 'requirements', name), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                lines.append(line)
    return lines


def read_version():
    scope = {}
    with open(osp.join(HERE, 'geopixel', 'version.py'),
              encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='geopixel',
    version=read_version(),
    description='Pixel-grounded multimodal LLMs for remote sensing '
    '(GeoPixel), built on MMEngine',
    long_description=open(
        osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['geopixel', 'geopixel.*']),
    include_package_data=True,
    package_data={'geopixel': ['configs/**/*.py', 'configs/**/*.md']},
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        name: read_requirements(f'{name}.txt')
        for name in ('sam2', 'deepspeed', 'eval', 'gis', 'demo', 'tests')
    },
    entry_points={'console_scripts': []},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
        'Topic :: Scientific/Engineering :: GIS',
    ],
)
