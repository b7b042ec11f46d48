"""OpenAICompatibleAnnotator against a stub chat-completions server on
loopback: what is posted, the key header, retries and errors."""
import base64
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from geopixel.annotation.backends import (AnnotationRequest, AnnotatorError,
                                          OpenAICompatibleAnnotator)
from geopixel.registry import ANNOTATORS

MODEL = 'stub-vlm'


def completion(content):
    return json.dumps(
        dict(id='x', object='chat.completion', model=MODEL,
             choices=[
                 dict(index=0, finish_reason='stop',
                      message=dict(role='assistant', content=content))
             ])).encode()


class StubServer:
    """Answers POSTs with a queue of canned ``(status, body)`` replies
    (the last one repeats), or with ``replies(payload)`` when it is a
    function of the posted JSON, and records every request."""

    def __init__(self, replies):
        self.replies = replies if callable(replies) else list(replies)
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):

            def do_POST(self):
                length = int(self.headers.get('Content-Length', 0))
                stub.requests.append(
                    dict(path=self.path, headers=dict(self.headers),
                         body=self.rfile.read(length)))
                if callable(stub.replies):
                    status, body = stub.replies(
                        json.loads(stub.requests[-1]['body']))
                else:
                    status, body = (stub.replies.pop(0)
                                    if len(stub.replies) > 1 else
                                    stub.replies[0])
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.01, ), daemon=True)
        self.thread.start()
        self.base_url = 'http://127.0.0.1:%d/v1' % self.server.server_port

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def posted(self, index=-1):
        return json.loads(self.requests[index]['body'])


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Loopback must not go through a proxy from the environment."""
    for name in ('http_proxy', 'https_proxy', 'all_proxy', 'HTTP_PROXY',
                 'HTTPS_PROXY', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stub(request):
    server = StubServer(getattr(request, 'param', [(200, completion('ok'))]))
    yield server
    server.close()


def build(base_url, **kwargs):
    cfg = dict(type='OpenAICompatibleAnnotator', base_url=base_url,
               model=MODEL, retry_wait=0.001, timeout=5)
    cfg.update(kwargs)
    return ANNOTATORS.build(cfg)


def image_request(**kwargs):
    image = np.random.RandomState(0).randint(0, 256, (24, 32, 3),
                                             dtype=np.uint8)
    return AnnotationRequest(task='instance', image=image,
                             prompt='Describe object 3, a plane, top left.',
                             system='You describe aerial images.', **kwargs)


def test_payload_carries_model_prompt_system_and_exact_image(stub):
    stub.replies = [(200, completion('  A white plane.  '))]
    backend = build(stub.base_url)
    assert isinstance(backend, OpenAICompatibleAnnotator)
    request = image_request()
    assert backend.generate(request) == 'A white plane.'
    assert stub.requests[0]['path'] == '/v1/chat/completions'
    posted = stub.posted()
    assert posted['model'] == MODEL
    assert posted['temperature'] == pytest.approx(0.2)
    assert posted['max_tokens'] == 512
    system, user = posted['messages']
    assert system == dict(role='system', content=request.system)
    assert user['role'] == 'user'
    text, image = user['content']
    assert text == dict(type='text', text=request.prompt)
    assert image['type'] == 'image_url'
    prefix = 'data:image/png;base64,'
    assert image['image_url']['url'].startswith(prefix)
    png = base64.b64decode(image['image_url']['url'][len(prefix):])
    decoded = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'))
    np.testing.assert_array_equal(decoded, request.image)
    assert 'Authorization' not in stub.requests[0]['headers']


def test_text_only_request_has_no_image_part_or_system(stub):
    backend = build(stub.base_url, extra_body=dict(top_p=0.5))
    backend.generate(
        AnnotationRequest(task='paraphrase', prompt='Rewrite: a plane.'))
    posted = stub.posted()
    assert posted['messages'] == [
        dict(role='user',
             content=[dict(type='text', text='Rewrite: a plane.')])
    ]
    assert posted['top_p'] == 0.5


def test_api_key_header_and_never_recorded(stub, monkeypatch):
    backend = build(stub.base_url, api_key='sk-direct')
    backend.generate(image_request())
    assert stub.requests[-1]['headers']['Authorization'] == 'Bearer sk-direct'
    monkeypatch.setenv('STUB_API_KEY', 'sk-from-env')
    backend = build(stub.base_url, api_key_env='STUB_API_KEY')
    backend.generate(image_request())
    assert stub.requests[-1]['headers']['Authorization'] == \
        'Bearer sk-from-env'
    recorded = json.dumps(backend.settings()) + repr(backend)
    assert 'sk-from-env' not in recorded
    assert set(backend.settings()) >= {
        'type', 'base_url', 'model', 'temperature', 'max_tokens'
    }
    assert backend.settings()['type'] == 'OpenAICompatibleAnnotator'


def test_unset_key_variable_is_an_error(monkeypatch):
    monkeypatch.delenv('STUB_MISSING_KEY', raising=False)
    with pytest.raises(AnnotatorError, match='STUB_MISSING_KEY'):
        build('http://127.0.0.1:9/v1', api_key_env='STUB_MISSING_KEY')


def test_retry_attempt_raises_temperature_deterministically(stub):
    backend = build(stub.base_url)
    temperatures = []
    for attempt in (0, 1, 2, 1, 5):
        backend.generate(image_request(attempt=attempt))
        temperatures.append(stub.posted()['temperature'])
    assert temperatures == pytest.approx([0.2, 0.5, 0.8, 0.5, 1.0])


@pytest.mark.parametrize(
    'stub', [[(503, b'{"error": "loading"}'), (429, b'slow down'),
              (200, completion('A runway.'))]],
    indirect=True)
def test_503_and_429_are_retried(stub):
    backend = build(stub.base_url, max_retries=3)
    assert backend.generate(image_request()) == 'A runway.'
    assert len(stub.requests) == 3


@pytest.mark.parametrize('stub', [[(503, b'busy')]], indirect=True)
def test_persistent_5xx_gives_up_after_max_retries(stub):
    backend = build(stub.base_url, max_retries=2)
    with pytest.raises(AnnotatorError) as error:
        backend.generate(image_request())
    assert len(stub.requests) == 3
    message = str(error.value)
    assert stub.base_url + '/chat/completions' in message
    assert '503' in message and 'busy' in message and '3 tries' in message


@pytest.mark.parametrize(
    'stub', [[(400, b'{"error": {"message": "unknown model stub-vlm"}}')]],
    indirect=True)
def test_400_fails_at_once_naming_url_status_body_and_task(stub):
    backend = build(stub.base_url, max_retries=3)
    with pytest.raises(AnnotatorError) as error:
        backend.generate(image_request())
    assert len(stub.requests) == 1
    message = str(error.value)
    assert stub.base_url + '/chat/completions' in message
    assert 'HTTP 400' in message
    assert 'unknown model stub-vlm' in message
    assert message.startswith('instance request')


@pytest.mark.parametrize('stub', [[(401, b'bad key sk-secret-123')]],
                         indirect=True)
def test_key_is_redacted_from_error_bodies(stub):
    backend = build(stub.base_url, api_key='sk-secret-123')
    with pytest.raises(AnnotatorError) as error:
        backend.generate(image_request())
    assert 'sk-secret-123' not in str(error.value)
    assert 'HTTP 401' in str(error.value)


def test_connection_refused_fails_after_max_retries():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    url = 'http://127.0.0.1:%d/v1' % port
    backend = build(url, max_retries=2)
    with pytest.raises(AnnotatorError) as error:
        backend.generate(image_request())
    message = str(error.value)
    assert url + '/chat/completions' in message
    assert '3 tries' in message and 'Connection' in message


@pytest.mark.parametrize(
    'body, problem',
    [(b'<html>gateway</html>', 'not JSON'),
     (b'{"object": "error"}', 'no choices'),
     (b'{"choices": []}', 'no choices'),
     (completion(''), 'empty'),
     (completion(None), 'not text')])
def test_malformed_answers_are_clear_errors(stub, body, problem):
    stub.replies = [(200, body)]
    backend = build(stub.base_url)
    with pytest.raises(AnnotatorError, match=problem) as error:
        backend.generate(image_request())
    assert stub.base_url in str(error.value)
    assert len(stub.requests) == 1


def test_content_as_list_of_text_parts(stub):
    stub.replies = [(200,
                     completion([
                         dict(type='text', text='Two planes '),
                         dict(type='text', text='park.')
                     ]))]
    assert build(stub.base_url).generate(image_request()) == \
        'Two planes park.'


def test_config_errors():
    with pytest.raises(ValueError, match='http'):
        build('127.0.0.1:8000/v1')
    with pytest.raises(ValueError, match='model'):
        build('http://127.0.0.1:8000/v1', model='')
