"""An annotator behind an OpenAI-compatible chat-completions endpoint.

vLLM, LMDeploy, llama.cpp's server, Ollama (``/v1``), LM Studio and OpenAI
itself all accept ``POST {base_url}/chat/completions`` with the same JSON,
images inline as ``data:`` URLs. Only the standard library is used, so the
backend adds no dependency.
"""
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from typing import Optional

from geopixel.registry import ANNOTATORS

from .base import (AnnotationRequest, AnnotatorBackend, AnnotatorError,
                   image_data_url)

BODY_EXCERPT_CHARS = 300
MAX_RETRY_AFTER_S = 60.0


def _retryable_status(status: int) -> bool:
    """Rate limits and server faults pass; other client errors repeat."""
    return status == 429 or status >= 500


@ANNOTATORS.register_module()
class OpenAICompatibleAnnotator(AnnotatorBackend):
    """Asks a chat-completions server.

    Args:
        base_url: the API root, e.g. ``'http://127.0.0.1:8000/v1'``; the
            request goes to ``{base_url}/chat/completions``.
        model: the model name the server knows.
        api_key: a bearer token, for servers that want one.
        api_key_env: the environment variable to read the key from, so
            that configs need not hold it. The key is sent in the
            ``Authorization`` header only: never recorded or logged.
        temperature: sampling temperature of the first try.
        retry_temperature_step: added to ``temperature`` per pipeline
            retry (``request.attempt``), capped at ``max_temperature``, so
            that a refused paraphrase is not repeated word for word. The
            temperature is a function of the attempt alone: the same
            request asks the same way.
        max_temperature: the cap of that increase.
        max_tokens: the answer length limit.
        timeout: seconds per HTTP request.
        max_retries: further tries after a connection error, a timeout,
            HTTP 429 or 5xx; other HTTP errors fail at once.
        retry_wait: seconds before the first retry, doubled each time (a
            numeric ``Retry-After`` of a 429, up to 60 s, is waited out
            when it is longer).
        extra_body: more JSON fields for the server (e.g. ``top_p``,
            ``seed``, vLLM's ``repetition_penalty``); they override ours.
    """

    def __init__(self,
                 base_url: str,
                 model: str,
                 api_key: Optional[str] = None,
                 api_key_env: Optional[str] = None,
                 temperature: float = 0.2,
                 retry_temperature_step: float = 0.3,
                 max_temperature: float = 1.0,
                 max_tokens: int = 512,
                 timeout: float = 120,
                 max_retries: int = 3,
                 retry_wait: float = 1.0,
                 extra_body: Optional[dict] = None):
        if not base_url or not isinstance(base_url, str):
            raise ValueError('base_url must be the API root, e.g. '
                             "'http://127.0.0.1:8000/v1'")
        if not base_url.startswith(('http://', 'https://')):
            raise ValueError(f'base_url must start with http:// or '
                             f'https://, got {base_url!r}')
        if not model:
            raise ValueError('model must name the served model')
        if max_retries < 0 or retry_wait < 0 or timeout <= 0:
            raise ValueError('max_retries and retry_wait must be >= 0 and '
                             'timeout > 0')
        if api_key is None and api_key_env is not None:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise AnnotatorError(
                    f'api_key_env={api_key_env!r} names an environment '
                    'variable that is not set (or empty)')
        self.base_url = base_url.rstrip('/')
        self.url = self.base_url + '/chat/completions'
        self.model = model
        self._api_key = api_key
        self.api_key_env = api_key_env
        self.temperature = float(temperature)
        self.retry_temperature_step = float(retry_temperature_step)
        self.max_temperature = float(max_temperature)
        self.max_tokens = int(max_tokens)
        self.timeout = timeout
        self.max_retries = int(max_retries)
        self.retry_wait = float(retry_wait)
        self.extra_body = dict(extra_body or {})

    def __repr__(self):
        # the key stays out of reprs, logs and tracebacks
        return (f'{type(self).__name__}(url={self.url!r}, '
                f'model={self.model!r})')

    def settings(self) -> dict:
        return dict(type=type(self).__name__, base_url=self.base_url,
                    model=self.model, temperature=self.temperature,
                    retry_temperature_step=self.retry_temperature_step,
                    max_tokens=self.max_tokens)

    def temperature_for(self, attempt: int) -> float:
        """The temperature of a pipeline retry: raised step by step."""
        if attempt <= 0:
            return self.temperature
        return min(self.temperature + attempt * self.retry_temperature_step,
                   max(self.max_temperature, self.temperature))

    def payload(self, request: AnnotationRequest) -> dict:
        """The JSON body for one request."""
        content = [dict(type='text', text=request.prompt)]
        if request.image is not None:
            content.append(
                dict(type='image_url',
                     image_url=dict(url=image_data_url(request.image))))
        messages = []
        if request.system:
            messages.append(dict(role='system', content=request.system))
        messages.append(dict(role='user', content=content))
        body = dict(model=self.model, messages=messages,
                    temperature=self.temperature_for(request.attempt),
                    max_tokens=self.max_tokens)
        body.update(self.extra_body)
        return body

    def generate(self, request: AnnotationRequest) -> str:
        data = json.dumps(self.payload(request)).encode('utf-8')
        answer = self._post(data, request.task)
        return self._content(answer, request.task)

    # HTTP

    def _headers(self) -> dict:
        headers = {'Content-Type': 'application/json',
                   'Accept': 'application/json'}
        if self._api_key:
            headers['Authorization'] = 'Bearer ' + self._api_key
        return headers

    def _excerpt(self, raw: bytes) -> str:
        text = raw.decode('utf-8', errors='replace').strip()
        if self._api_key:
            text = text.replace(self._api_key, '***')
        text = ' '.join(text.split())
        if len(text) > BODY_EXCERPT_CHARS:
            text = text[:BODY_EXCERPT_CHARS] + '...'
        return text or '(empty body)'

    def _post(self, data: bytes, task: str) -> bytes:
        """The response body, after retries on transient failures."""
        tries = self.max_retries + 1
        last = ''
        for index in range(tries):
            wait = self.retry_wait * 2**index
            http_request = urllib.request.Request(
                self.url, data=data, headers=self._headers(), method='POST')
            try:
                # a fresh opener picks up the current proxy settings
                opener = urllib.request.build_opener()
                with opener.open(http_request, timeout=self.timeout) as resp:
                    return resp.read()
            except urllib.error.HTTPError as error:
                body = self._excerpt(error.read() or b'')
                last = f'HTTP {error.code}: {body}'
                if not _retryable_status(error.code):
                    raise AnnotatorError(
                        f'{task} request to {self.url} failed with {last}'
                    ) from None
                if error.code == 429:
                    wait = max(wait, _retry_after(error.headers))
            except (urllib.error.URLError, http.client.HTTPException,
                    OSError) as error:
                reason = getattr(error, 'reason', error)
                last = f'{type(reason).__name__}: {reason}'
            if index + 1 < tries:
                time.sleep(wait)
        raise AnnotatorError(f'{task} request to {self.url} failed after '
                             f'{tries} tries; last: {last}')

    def _content(self, raw: bytes, task: str) -> str:
        """``choices[0].message.content`` as text, or a clear error."""
        where = f'{task} request to {self.url}'
        try:
            answer = json.loads(raw.decode('utf-8'))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AnnotatorError(f'{where}: the response is not JSON '
                                 f'({error}): {self._excerpt(raw)}') from None
        try:
            content = answer['choices'][0]['message']['content']
        except (KeyError, IndexError, TypeError):
            raise AnnotatorError(
                f'{where}: the response has no choices[0].message.content: '
                f'{self._excerpt(raw)}') from None
        if isinstance(content, list):  # a list of content parts
            content = ''.join(
                part.get('text', '') for part in content
                if isinstance(part, dict) and part.get('type') == 'text')
        if not isinstance(content, str):
            raise AnnotatorError(
                f'{where}: message content is a {type(content).__name__}, '
                f'not text: {self._excerpt(raw)}')
        content = content.strip()
        if not content:
            raise AnnotatorError(f'{where}: the answer is empty: '
                                 f'{self._excerpt(raw)}')
        return content


def _retry_after(headers) -> float:
    """A numeric ``Retry-After`` in seconds (capped), else 0."""
    value = headers.get('Retry-After') if headers is not None else None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError):
        return 0.0
