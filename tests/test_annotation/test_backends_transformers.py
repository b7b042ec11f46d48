"""TransformersAnnotator on tiny random-weight models written to tmp
folders (nothing downloaded): a Llava-style vision-language model and a
text-only Llama."""
import shutil

import numpy as np
import pytest

from geopixel.annotation.backends import AnnotationRequest, AnnotatorError
from geopixel.registry import ANNOTATORS

transformers = pytest.importorskip('transformers')
torch = pytest.importorskip('torch')

WORDS = ('describe the image in four short sentences a plane on runway '
         'two ships harbour top left paraphrase text system you write '
         'aerial captions user assistant :')
# renders a system turn, text parts and {'type': 'image'} parts
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %} </s> {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}")
IMAGE_SIDE = 28  # 2 x 2 patches of 14 px


def tiny_tokenizer():
    """A word-level tokenizer trained on a few words, with a template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tokenizer = Tokenizer(models.WordLevel(unk_token='[UNK]'))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        [WORDS],
        trainers.WordLevelTrainer(
            special_tokens=['[UNK]', '[PAD]', '<s>', '</s>', '<image>']))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token='[UNK]', pad_token='[PAD]',
        bos_token='<s>', eos_token='</s>', chat_template=CHAT_TEMPLATE)


def tiny_llama_config(tokenizer):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=16,
                       intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=256,
                       bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


@pytest.fixture(scope='module')
def vlm_dir(tmp_path_factory):
    """A tiny Llava (CLIP vision tower + Llama) with its processor."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig,
                              LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)
    folder = tmp_path_factory.mktemp('tiny_llava')
    tokenizer = tiny_tokenizer()
    image_processor = CLIPImageProcessor(
        size=dict(shortest_edge=IMAGE_SIDE),
        crop_size=dict(height=IMAGE_SIDE, width=IMAGE_SIDE))
    # CLIP adds a CLS token that the 'default' strategy drops again
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer,
        patch_size=14, vision_feature_select_strategy='default',
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, image_size=IMAGE_SIDE, patch_size=14),
        text_config=tiny_llama_config(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids('<image>'),
        vision_feature_select_strategy='default', vision_feature_layer=-1)
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope='module')
def llm_dir(tmp_path_factory):
    """A tiny text-only Llama with its tokenizer."""
    from transformers import LlamaForCausalLM
    folder = tmp_path_factory.mktemp('tiny_llama')
    tokenizer = tiny_tokenizer()
    torch.manual_seed(1)
    LlamaForCausalLM(tiny_llama_config(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope='module')
def vlm(vlm_dir):
    return ANNOTATORS.build(
        dict(type='TransformersAnnotator', model_path=vlm_dir,
             max_new_tokens=6)).load()


def scene(seed):
    return np.random.RandomState(seed).randint(0, 256, (40, 52, 3),
                                               dtype=np.uint8)


def describe(image, **kwargs):
    return AnnotationRequest(task='holistic', image=image,
                             prompt='describe the image in four short '
                             'sentences', system='you write aerial captions',
                             **kwargs)


def paraphrase(**kwargs):
    return AnnotationRequest(task='paraphrase',
                             prompt='paraphrase the text : two ships',
                             **kwargs)


def test_building_is_cheap_and_settings(vlm_dir):
    backend = ANNOTATORS.build(
        dict(type='TransformersAnnotator', model_path=vlm_dir,
             dtype='float32'))
    assert backend.model is None  # weights load on the first request
    settings = backend.settings()
    assert settings['type'] == 'TransformersAnnotator'
    assert settings['model_path'] == vlm_dir
    assert settings['max_new_tokens'] == 256
    assert settings['do_sample'] is False
    assert settings['dtype'] == 'float32'


def test_vision_model_answers_greedily_and_deterministically(vlm):
    assert vlm.is_vision
    answer = vlm.generate(describe(scene(0)))
    assert isinstance(answer, str) and answer
    assert answer == answer.strip()
    assert vlm.generate(describe(scene(0))) == answer
    text_only = vlm.generate(paraphrase())
    assert isinstance(text_only, str) and text_only
    assert vlm.generate(paraphrase()) == text_only


def test_only_new_tokens_come_back(vlm):
    """The answer is the decoded continuation, not the prompt."""
    request = describe(scene(0))
    answer = vlm.generate(request)
    prompt = vlm.processor.apply_chat_template(
        vlm.messages(request), add_generation_prompt=True, tokenize=False)
    assert 'assistant :' in prompt and 'assistant :' not in answer
    assert not answer.startswith('user')


def test_the_request_image_reaches_the_vision_tower(vlm):
    from PIL import Image
    seen = []

    def record(module, args, kwargs):
        pixels = kwargs.get('pixel_values', args[0] if args else None)
        seen.append(pixels.detach().clone())

    towers = [m for name, m in vlm.model.named_modules()
              if name.endswith('vision_tower')]
    assert len(towers) == 1
    handle = towers[0].register_forward_pre_hook(record, with_kwargs=True)
    try:
        for seed in (0, 1):
            vlm.generate(describe(scene(seed)))
        vlm.generate(paraphrase())
    finally:
        handle.remove()
    assert len(seen) == 2  # once per image request, never for text-only
    for seed, pixels in zip((0, 1), seen):
        expected = vlm.processor.image_processor(
            Image.fromarray(scene(seed)), return_tensors='pt')['pixel_values']
        torch.testing.assert_close(pixels, expected)
    assert not torch.equal(seen[0], seen[1])


def test_different_images_give_different_first_logits(vlm):
    """The image changes what the language model reads, not only the
    pixels (the same inputs the backend builds, run once forward)."""
    from PIL import Image
    logits = []
    for seed in (0, 1):
        request = describe(scene(seed))
        text = vlm.processor.apply_chat_template(
            vlm.messages(request), add_generation_prompt=True,
            tokenize=False)
        inputs = vlm.processor(images=[Image.fromarray(request.image)],
                               text=text, add_special_tokens=False,
                               return_tensors='pt')
        with torch.no_grad():
            logits.append(vlm.model(**inputs).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1])


def test_retry_samples_reproducibly_and_keeps_the_global_rng(vlm):
    state = torch.get_rng_state()
    greedy = vlm.generate(paraphrase())
    retried = vlm.generate(paraphrase(attempt=1))
    assert vlm.generate(paraphrase(attempt=1)) == retried
    assert retried != greedy
    assert torch.equal(torch.get_rng_state(), state)


def test_text_only_model_paraphrases_and_refuses_images(llm_dir):
    backend = ANNOTATORS.build(
        dict(type='TransformersAnnotator', model_path=llm_dir,
             max_new_tokens=6))
    answer = backend.generate(paraphrase(system='you write aerial captions'))
    assert isinstance(answer, str) and answer
    assert backend.generate(paraphrase()) == backend.generate(paraphrase())
    assert not backend.is_vision
    with pytest.raises(AnnotatorError, match='text-only') as error:
        backend.generate(describe(scene(0)))
    assert llm_dir in str(error.value)


def test_missing_or_incomplete_folders_are_named(tmp_path, vlm_dir):
    missing = tmp_path / 'no_such_model'
    with pytest.raises(AnnotatorError, match='does not exist') as error:
        ANNOTATORS.build(
            dict(type='TransformersAnnotator', model_path=str(missing)))
    assert str(missing) in str(error.value)

    no_config = tmp_path / 'no_config'
    no_config.mkdir()
    (no_config / 'tokenizer.json').write_text('{}')
    with pytest.raises(AnnotatorError, match='config.json') as error:
        ANNOTATORS.build(
            dict(type='TransformersAnnotator', model_path=str(no_config)))
    assert str(no_config) in str(error.value)

    no_tokenizer = tmp_path / 'no_tokenizer'
    no_tokenizer.mkdir()
    shutil.copy(f'{vlm_dir}/config.json', no_tokenizer)
    with pytest.raises(AnnotatorError, match='no tokenizer or processor'):
        ANNOTATORS.build(
            dict(type='TransformersAnnotator', model_path=str(no_tokenizer)))

    # a vision-language config without its image processor
    no_processor = tmp_path / 'no_processor'
    shutil.copytree(vlm_dir, no_processor)
    (no_processor / 'processor_config.json').unlink()
    backend = ANNOTATORS.build(
        dict(type='TransformersAnnotator', model_path=str(no_processor)))
    with pytest.raises(AnnotatorError, match='image processor') as error:
        backend.generate(describe(scene(0)))
    assert str(no_processor) in str(error.value)


def test_bad_dtype_is_refused(vlm_dir):
    with pytest.raises(ValueError, match='dtype'):
        ANNOTATORS.build(
            dict(type='TransformersAnnotator', model_path=vlm_dir,
                 dtype='float33'))


def test_a_local_model_drives_the_pipeline_and_its_misses_are_counted(
        vlm_dir, llm_dir):
    """A random tiny model rarely names the category and never keeps the
    tags: every object still gets its phrase, and every miss is counted."""
    from geopixel.annotation import AnnotationPipeline
    from geopixel.annotation.preview import preview_synthetic_scene
    from geopixel.structures import grounded_phrases
    pipeline = AnnotationPipeline(
        dict(type='TransformersAnnotator', model_path=vlm_dir,
             max_new_tokens=6),
        dict(type='TransformersAnnotator', model_path=llm_dir,
             max_new_tokens=6),
        min_area=300, describe_attempts=2, paraphrase_attempts=2)
    ann = preview_synthetic_scene(5, size=256, pipeline=pipeline).annotation
    phrases = [p.phrase for p in ann.phrases]
    assert phrases and grounded_phrases(ann.description) == phrases
    assert ann.counts['objects'] == sum(p.num_instances
                                        for p in ann.phrases)
    fallbacks = ann.info['description_fallbacks']
    # each fallback took every attempt; each marked one at most all
    assert ann.info['describe_retries'] >= 2 * len(fallbacks)
    assert ann.info['paraphrase_attempts'] == 2
    if ann.info['paraphrase_fallback']:
        assert ann.texts['final'] == ann.texts['unified']
        assert len(ann.info['paraphrase_refusals']) == 2
