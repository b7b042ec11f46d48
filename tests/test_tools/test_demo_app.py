"""The web demo end to end: tools/demo/app.py served on a free loopback
port with the tiny model, driven in headless Chromium (Debian's chromium
and chromium-driver, with selenium; no browser download).

Skipped, with the reason, where gradio, selenium or Chromium is missing;
.ci/run installs them. GEOPIXEL_DEMO_SCREENSHOT=PATH keeps the screenshot
of the answered page (docs/en/user_guides/demo.md shows one).
"""
import glob
import importlib.util
import os
import os.path as osp
import shutil
import socket
import sys

import pytest

from geopixel.apis import GeoPixelInferencer
from geopixel.apis.demo import DemoBackend, DemoLimits
from geopixel.testing import demo_data, get_config, tiny_model
from tests.test_apis.test_inferencer import GCG_CONFIG, REPO, seg_prone

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
DRIVER = shutil.which('chromedriver')


def _require_browser():
    for module in ('gradio', 'selenium'):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'{module} is not installed (pip install -r '
                        'requirements/demo.txt)')
    if not (CHROMIUM and DRIVER):
        pytest.skip('no Chromium: apt-get install chromium chromium-driver '
                    '(.ci/run does)')


def _load_app():
    spec = importlib.util.spec_from_file_location(
        'geopixel_demo_app', osp.join(REPO, 'tools', 'demo', 'app.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _chromium(window: str):
    """Debian's Chromium, headless, through its chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', f'--window-size={window}'):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def page(synthetic_root, tmp_path_factory):
    """The demo served on loopback and a headless Chromium on it."""
    _require_browser()
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    app = _load_app()
    cfg = get_config(GCG_CONFIG, synthetic_root)
    model = tiny_model(cfg, generation_cfg=dict(max_new_tokens=24))
    model = seg_prone(model.eval(), demo_data(cfg, 'test', 2))
    inferencer = GeoPixelInferencer(model, cfg=cfg, device='cpu',
                                    show_progress=False)
    work = tmp_path_factory.mktemp('demo')
    backend = DemoBackend(inferencer, DemoLimits(max_upload_mb=5),
                          out_dir=str(work / 'answers'))
    examples = app.make_examples(str(work / 'examples'))
    demo = app.build_demo(backend, examples)
    port = _free_port()
    app.launch(demo, backend, '127.0.0.1', port, block=False)

    driver = _chromium('1400,1300')
    driver.get(f'http://127.0.0.1:{port}/')
    try:
        yield driver, work
    finally:
        driver.quit()
        demo.close()
        backend.close()


def _wait(driver, condition, seconds=120):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, seconds, poll_frequency=0.3).until(
        condition)


def _upload(driver, path):
    """Put ``path`` into the upload field, clearing a previous upload."""
    from selenium.webdriver.common.by import By
    for button in driver.find_elements(
            By.CSS_SELECTOR, '#gp-upload button[aria-label="Clear"]'):
        button.click()
    field = _wait(driver, lambda d: d.find_element(
        By.CSS_SELECTOR, '#gp-upload input[type=file]'))
    field.send_keys(path)


def _text(driver, selector):
    from selenium.webdriver.common.by import By
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0].text if found else ''


@pytest.mark.slow
def test_upload_ask_and_see_the_grounded_answer(page, synthetic_root):
    from selenium.webdriver.common.by import By
    driver, work = page
    # a synthetic test scene, on which the [SEG]-prone model grounds
    _upload(driver, sorted(glob.glob(osp.join(
        synthetic_root, 'geopixeld/GeoPixelD/test/*.png')))[0])
    # the preview shows the decoded image
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                                            '#gp-preview img'))
    driver.find_element(By.ID, 'gp-ask').click()
    answer = _wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#gp-answer .gp-answer'))[0]
    assert answer.text.strip()
    chips = driver.find_elements(By.CSS_SELECTOR, '#gp-answer .gp-seg')
    assert chips, 'the answer shows no mask chip'
    overlay = _wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#gp-overlay img'))[0]
    assert overlay.get_attribute('src')
    _wait(driver, lambda d: 's in all' in _text(d, '#gp-status'))
    # one toggle per mask, all on
    boxes = driver.find_elements(By.CSS_SELECTOR,
                                 '#gp-masks input[type=checkbox]')
    assert len(boxes) == len(chips)
    assert all(b.is_selected() for b in boxes)
    # downloads: the JSON and the mask PNGs
    _wait(driver, lambda d: '.json' in _text(d, '#gp-files'))
    files = _text(driver, '#gp-files')
    assert '_masks' in files and '.zip' in files
    shot = os.environ.get('GEOPIXEL_DEMO_SCREENSHOT') or str(
        work / 'demo.png')
    driver.save_screenshot(shot)
    assert osp.getsize(shot) > 10000


@pytest.mark.slow
def test_non_image_gets_a_message(page):
    from selenium.webdriver.common.by import By
    driver, work = page
    bad = work / 'report.png'
    bad.write_text('this is a text file, not a picture')
    _upload(driver, str(bad))
    _wait(driver, lambda d: 'report.png cannot be used' in _text(
        d, '#gp-info'))
    driver.find_element(By.ID, 'gp-ask').click()
    _wait(driver, lambda d: 'cannot be used' in _text(d, '#gp-status'))
    page_text = driver.find_element(By.TAG_NAME, 'body').text
    assert 'Traceback' not in page_text
    assert 'PNG, JPEG and GeoTIFF' in _text(driver, '#gp-status')


@pytest.mark.slow
def test_annotation_tab_annotates_a_generated_scene(page):
    from selenium.webdriver.common.by import By
    driver, _ = page

    def tab(name):
        for button in driver.find_elements(By.CSS_SELECTOR,
                                           'button[role=tab]'):
            if button.text.strip() == name:
                return button
        raise AssertionError(f'no tab {name!r}')

    tab('Annotation pipeline').click()
    _wait(driver,
          lambda d: d.find_element(By.ID, 'gp-ann-run').is_displayed())
    driver.find_element(By.ID, 'gp-ann-run').click()
    phrases = _wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, '#gp-ann-text .phrase'))
    assert all(p.text.strip() for p in phrases)
    assert any('(instance)' in p.text for p in phrases)
    _wait(driver, lambda d: 'group phrase(s)' in _text(d, '#gp-ann-status'))
    for image in ('#gp-ann-marked img', '#gp-ann-overlay img'):
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, image))
    assert 'Traceback' not in driver.find_element(By.TAG_NAME, 'body').text
    tab('Ask the model').click()


@pytest.mark.slow
def test_command_line_on_a_trained_model(tmp_path):
    """``python tools/demo/app.py CONFIG CHECKPOINT`` as a user starts it,
    asked to segment one expression of a new synthetic scene. Needs a
    trained model: runs only with GEOPIXEL_DEMO_CONFIG and
    GEOPIXEL_DEMO_CHECKPOINT set (e.g. the quick start's); the screenshot
    in docs/en/user_guides/demo.md comes from it."""
    config = os.environ.get('GEOPIXEL_DEMO_CONFIG')
    checkpoint = os.environ.get('GEOPIXEL_DEMO_CHECKPOINT')
    if not (config and checkpoint):
        pytest.skip('set GEOPIXEL_DEMO_CONFIG and GEOPIXEL_DEMO_CHECKPOINT '
                    'to a trained model')
    _require_browser()
    import subprocess
    import time
    import urllib.request

    from selenium.webdriver.common.by import By

    from geopixel.datasets.synthetic import write_scene
    write_scene(str(tmp_path / 'scene'), 5151, 256)
    with open(tmp_path / 'scene' / 'expressions.txt') as f:
        expression = f.readline().strip()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools/demo/app.py'), config,
         checkpoint, '--port', str(port), '--no-examples'],
        cwd=os.environ.get('GEOPIXEL_DEMO_CWD', REPO))
    driver = None
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=1)
                break
            except OSError:
                assert server.poll() is None, 'the demo exited'
                time.sleep(0.5)
        driver = _chromium('1400,1000')
        driver.get(f'http://127.0.0.1:{port}/')
        _upload(driver, str(tmp_path / 'scene' / 'scene.png'))
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                '#gp-preview img'))
        driver.find_element(
            By.XPATH, '//*[@id="gp-task"]//label[contains(., '
            '"Referring segmentation")]').click()
        driver.find_element(By.CSS_SELECTOR,
                            '#gp-question textarea').send_keys(expression)
        driver.find_element(By.ID, 'gp-ask').click()
        _wait(driver, lambda d: 's in all' in _text(d, '#gp-status'))
        assert expression in _text(driver, '#gp-answer')
        _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                '#gp-overlay img'))
        time.sleep(1)  # let the overlay image paint
        shot = os.environ.get('GEOPIXEL_DEMO_SCREENSHOT') or str(
            tmp_path / 'demo.png')
        driver.save_screenshot(shot)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(30)


def test_arguments_and_the_quick_start_default(tmp_path):
    app = _load_app()
    args = app.parse_args([])
    assert (args.config, args.checkpoint, args.host) == (None, None,
                                                         '127.0.0.1')
    with pytest.raises(SystemExit):
        app.parse_args(['only_a_config.py'])
    with pytest.raises(SystemExit, match='run `bash tools/quickstart.sh` '
                       'first'):
        app.quickstart_model(str(tmp_path))
    work = tmp_path / 'work_dirs' / 'quickstart'
    work.mkdir(parents=True)
    (work / 'last_checkpoint').write_text('/elsewhere/iter_600.pth')
    with pytest.raises(SystemExit, match='iter_600.pth, which is missing'):
        app.quickstart_model(str(tmp_path))
    (work / 'iter_600.pth').write_bytes(b'')
    config, checkpoint = app.quickstart_model(str(tmp_path))
    assert checkpoint == str(work / 'iter_600.pth')
    assert config.endswith('configs/geopixel/rrsis_tiny.py')
