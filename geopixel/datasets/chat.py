"""Chat template, prompts and label masking for InternLM2-based GeoPixel.

The official sequence for one training sample is::

    [image tokens] <s> [UNUSED_TOKEN_146]user\\n{Q}[UNUSED_TOKEN_145]\\n
    [UNUSED_TOKEN_146]assistant\\n{A}[UNUSED_TOKEN_145]\\n ... </s>

(the image comes before BOS in training and after it at inference; see
``bos_before_image`` in :class:`geopixel.datasets.transforms.FormatChat`).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from geopixel.structures.vocabulary import IGNORE_INDEX, count_seg

GCG_QUESTION = ('Could you perform an in-depth analysis of this photo, '
                'including interleaved segmentation masks to map each part '
                'of your answer to specific image object?')
GCG_INFERENCE_QUESTION = (
    'Can you provide a thorough description of this image? Please output '
    'with interleaved segmentation masks for the corresponding phrases.')
RRSIS_QUESTION = ('Could you provide a segmentation mask for {ref_exp} in '
                  'this image?')
RRSIS_ANSWER = 'Sure, it is [SEG].'

USER_ROLES = ('human', 'user')


@dataclass(frozen=True)
class ChatTemplate:
    """How turns are rendered into one string."""
    user_prefix: str
    turn_suffix: str
    assistant_prefix: str
    end_of_conversation: str
    start_of_turn_token: str
    end_of_turn_token: str

    def render(self, turns: Sequence[Tuple[str, str]]) -> str:
        """Training text for ``(role, text)`` turns (values stripped)."""
        return self._turns(turns) + self.end_of_conversation

    def prompt(self, question: str) -> str:
        """Inference text: one user turn, then the assistant prefix."""
        return self.prompt_after((), question)

    def prompt_after(self, turns: Sequence[Tuple[str, str]],
                     question: str) -> str:
        """Inference text of a chat: the earlier ``(role, text)`` turns as
        :meth:`render` writes them (without the end of conversation), a new
        user turn, then the assistant prefix. Each chat turn's prompt thus
        starts with the previous one, so the model's cached prefix is
        reused."""
        return (f'{self._turns(turns)}{self.user_prefix}{question.strip()}'
                f'{self.turn_suffix}{self.assistant_prefix}')

    def _turns(self, turns: Sequence[Tuple[str, str]]) -> str:
        parts = []
        for role, text in turns:
            prefix = (self.user_prefix
                      if role in USER_ROLES else self.assistant_prefix)
            parts.append(f'{prefix}{text.strip()}{self.turn_suffix}')
        return ''.join(parts)


INTERNLM2_CHAT = ChatTemplate(
    user_prefix='[UNUSED_TOKEN_146]user\n',
    turn_suffix='[UNUSED_TOKEN_145]\n',
    assistant_prefix='[UNUSED_TOKEN_146]assistant\n',
    end_of_conversation='</s>',
    start_of_turn_token='[UNUSED_TOKEN_146]',
    end_of_turn_token='[UNUSED_TOKEN_145]')

CHAT_TEMPLATES = {'internlm2': INTERNLM2_CHAT}


def normalise_turns(conversations: Sequence[dict],
                    file: Optional[str] = None,
                    record: Optional[object] = None) -> List[Tuple[str, str]]:
    """``[{'from', 'value'}]`` -> ``[(role, text)]`` with clear errors."""
    from geopixel.utils import BadRecordError
    if not isinstance(conversations, (list, tuple)) or not conversations:
        raise BadRecordError('"conversations" must be a non-empty list', file,
                             record)
    turns = []
    for i, turn in enumerate(conversations):
        if (not isinstance(turn, dict) or 'from' not in turn
                or 'value' not in turn):
            raise BadRecordError(
                f'conversation turn {i} must have "from" and "value"', file,
                record)
        if not isinstance(turn['value'], str):
            raise BadRecordError(f'conversation turn {i} value is not text',
                                 file, record)
        check_text(turn['value'], f'conversation turn {i}', file, record)
        role = 'user' if turn['from'] in USER_ROLES else 'assistant'
        turns.append((role, turn['value']))
    if not any(r == 'assistant' for r, _ in turns):
        raise BadRecordError('conversation has no answer turn', file, record)
    return turns


def check_text(text: str,
               what: str,
               file: Optional[str] = None,
               record: Optional[object] = None) -> str:
    """``text``, refused at load time if it cannot be encoded (a lone
    surrogate): the tokenizer would fail on it mid-run."""
    from geopixel.utils import BadRecordError, unencodable_text
    problem = unencodable_text(text)
    if problem is not None:
        raise BadRecordError(f'{what}: {problem}', file, record)
    return text


def count_turn_segs(turns: Sequence[Tuple[str, str]]) -> int:
    """``[SEG]`` tokens (hence masks) of a whole conversation."""
    return sum(count_seg(text) for _, text in turns)


def official_labels(ids: Sequence[int], end_of_turn_id: int,
                    eos_id: int) -> List[int]:
    """Labels by the official rule (``mask_human_targets``).

    At every even end-of-turn token (the end of a user turn) everything from
    the previous answer's end through that token and the 5 tokens after it
    is ignored; with InternLM2's tokenizer those 5 are ``\\n [146] ass istant
    \\n``, and with smaller vocabularies they reach into the answer, which
    is why the first answer token is unsupervised in the official recipe.
    Everything after ``</s>`` is ignored; a sequence truncated before
    ``</s>`` ignores everything after the last finished answer.
    """
    labels = list(ids)
    last_end = 0
    seen = 0
    finished = False
    for i, token in enumerate(ids):
        if token == end_of_turn_id:
            if seen % 2 == 0:
                labels[last_end:i + 6] = [IGNORE_INDEX] * len(
                    labels[last_end:i + 6])
            else:
                last_end = i + 1
            seen += 1
        elif token == eos_id:
            labels[i + 1:] = [IGNORE_INDEX] * len(labels[i + 1:])
            finished = True
            break
    if not finished:
        labels[last_end:] = [IGNORE_INDEX] * len(labels[last_end:])
    return labels


def exact_labels(ids: Sequence[int], start_of_turn_id: int,
                 end_of_turn_id: int, eos_id: int,
                 assistant_prefix_ids: Sequence[int]) -> List[int]:
    """Labels that supervise exactly the answers, their end-of-turn and EOS.

    An alternative to :func:`official_labels` that does not depend on the
    tokenizer splitting the assistant prefix into 5 tokens.
    """
    labels = [IGNORE_INDEX] * len(ids)
    n_prefix = len(assistant_prefix_ids)
    i = 0
    while i < len(ids):
        if (ids[i] == start_of_turn_id
                and list(ids[i:i + n_prefix]) == list(assistant_prefix_ids)):
            j = i + n_prefix
            while j < len(ids) and ids[j] != end_of_turn_id:
                labels[j] = ids[j]
                j += 1
            if j < len(ids):
                labels[j] = ids[j]  # the end-of-turn token
            i = j + 1
            continue
        if ids[i] == eos_id:
            labels[i] = ids[i]
            break
        i += 1
    return labels
