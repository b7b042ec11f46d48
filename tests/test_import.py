import subprocess
import sys

HEAVY = ('torch', 'mmengine', 'transformers', 'sam2', 'deepspeed', 'cv2',
         'peft')


def test_import_geopixel_is_light():
    code = ('import sys, time; t = time.perf_counter(); import geopixel; '
            'dt = time.perf_counter() - t; '
            f'print([m for m in {HEAVY!r} if m in sys.modules]); print(dt)')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True, text=True, check=True)
    loaded, seconds = out.stdout.strip().splitlines()
    assert loaded == '[]', f'import geopixel pulled in {loaded}'
    assert float(seconds) < 1.0


def test_version():
    import geopixel
    assert geopixel.__version__.count('.') == 2
