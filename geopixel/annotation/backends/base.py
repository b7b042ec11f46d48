"""What every annotator backend takes and gives.

The pipeline asks a backend for text: a holistic caption, an instance or
group description, or a paraphrase. Each question is an
:class:`AnnotationRequest` holding the prompt a model reads, the image it
sees (the marked patch for instances) and the priors the prompt was built
from, so that a backend without a model (the template backend) can answer
from the priors alone.
"""
import base64
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from geopixel.utils.files import encode_png

TASKS = ('holistic', 'instance', 'group', 'paraphrase')


class AnnotatorError(RuntimeError):
    """A backend could not answer (unreachable server, missing model...)."""


@dataclass
class AnnotationRequest:
    """One question to an annotator.

    Attributes:
        task: one of :data:`TASKS`.
        prompt: the user text a model reads.
        image: the RGB ``uint8`` image it sees (``None`` for text-only
            tasks such as paraphrasing).
        fields: the priors behind the prompt (category, count, position,
            marker number, the text to paraphrase and its marked phrases).
        system: an optional system message.
        attempt: 0 for the first try, counting up on retries, so that a
            backend can vary its answer when the last one was refused.
    """
    task: str
    prompt: str
    image: Optional[np.ndarray] = None
    fields: dict = field(default_factory=dict)
    system: Optional[str] = None
    attempt: int = 0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f'task must be one of {TASKS}, got '
                             f'{self.task!r}')
        if self.image is not None:
            image = np.asarray(self.image)
            if image.ndim != 3 or image.shape[2] != 3 \
                    or image.dtype != np.uint8:
                raise ValueError('a request image must be H x W x 3 uint8 '
                                 f'RGB, got {image.dtype} {image.shape}')


class AnnotatorBackend:
    """Answers :class:`AnnotationRequest` s with text.

    Subclasses implement :meth:`generate`; :meth:`generate_batch` may be
    overridden where a model batches. :meth:`settings` is recorded in the
    output so that a dataset says what wrote it.
    """

    def generate(self, request: AnnotationRequest) -> str:
        raise NotImplementedError

    def generate_batch(self,
                       requests: Sequence[AnnotationRequest]) -> List[str]:
        return [self.generate(r) for r in requests]

    def settings(self) -> dict:
        return dict(type=type(self).__name__)


def image_data_url(image: np.ndarray) -> str:
    """``data:image/png;base64,...`` for chat APIs that take images
    inline."""
    return 'data:image/png;base64,' + base64.b64encode(
        encode_png(image)).decode('ascii')
