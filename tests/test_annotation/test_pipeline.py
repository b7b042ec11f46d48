"""Prompts, text marking, filters, the phrase-preservation check and the
per-patch pipeline (geopixel/annotation/{prompts,marking,pipeline}.py)."""
import numpy as np
import pytest

from geopixel.annotation import (AnnotationPipeline, PatchObject,
                                 apply_filters, category_forms,
                                 check_phrases, group_request,
                                 holistic_request, instance_request,
                                 integer_polygons, mark_phrase,
                                 paraphrase_request, rasterise)
from geopixel.annotation.backends import (AnnotationRequest,
                                          AnnotatorBackend,
                                          TemplateAnnotator)
from geopixel.structures import grounded_phrases


class Scripted(AnnotatorBackend):
    """Answers from a function of the request; records every request."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    def generate(self, request):
        self.requests.append(request)
        return self.answer(request)


def square(x0, y0, side):
    return [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side],
            [x0, y0 + side]]


def obj(ann_id, category, *polygons, size=200):
    polys = integer_polygons(polygons, size, size)
    return PatchObject(ann_id, category, polys, rasterise(polys, size, size))


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    objects = [
        obj(1, 'ship', square(10, 10, 40)),        # prominent, top left
        obj(2, 'ship', square(150, 150, 30)),      # prominent, bottom right
        obj(3, 'small vehicle', square(100, 20, 5)),
        obj(4, 'small vehicle', square(120, 20, 5)),
        obj(5, 'small vehicle', square(140, 20, 5)),
        obj(6, 'plane', square(20, 150, 6)),
    ]
    return image, objects


# ------------------------------------------------------------- prompts


def test_prompts_carry_the_priors():
    image = np.zeros((50, 50, 3), np.uint8)
    inst = instance_request(image, 'storage tank', 3, 'top left')
    assert inst.task == 'instance' and inst.image is image
    for words in ('marked 3', 'storage tank', 'top left',
                  'Do not mention the marker'):
        assert words in inst.prompt
    group = group_request(image, 'small vehicle', 7, 'bottom')
    assert 'seven small vehicles in the bottom part' in group.prompt
    assert group.fields == dict(category='small vehicle', count=7,
                                position='bottom')
    one = group_request(image, 'harbor', 1, 'across the image')
    assert 'one harbor spread across the image' in one.prompt
    hol = holistic_request(image, num_sentences=4)
    assert hol.prompt.startswith('Describe the image in four short')
    para = paraphrase_request('The <p> ship-1 </p> is red.', ['ship-1'], 2)
    assert '<p> ship-1 </p>' in para.prompt and para.attempt == 2
    assert para.image is None
    with pytest.raises(ValueError, match='task must be'):
        AnnotationRequest('caption', 'x')
    with pytest.raises(ValueError, match='uint8'):
        AnnotationRequest('holistic', 'x', np.zeros((4, 4, 3)))


# ------------------------------------------------------------- marking


def test_mark_phrase_tags_the_first_mention_of_the_category():
    forms = category_forms('small vehicle', ['car'])
    text = 'Seven small vehicles park at the top; the cars are white.'
    marked, phrase = mark_phrase(text, forms, 4)
    assert phrase == 'small vehicles-4'
    assert marked == ('Seven <p> small vehicles-4 </p> park at the top; '
                      'the cars are white.')
    # an alias, capitalised, at the start
    marked, phrase = mark_phrase('Cars line the road.', forms, 2)
    assert (marked, phrase) == ('<p> cars-2 </p> line the road.', 'cars-2')
    # a mention inside an existing tag is not marked again; the next one is
    marked, phrase = mark_phrase('The <p> ship-1 </p> is near a ship.',
                                 category_forms('ship'), 2)
    assert marked == 'The <p> ship-1 </p> is near a <p> ship-2 </p>.'
    # whole words only, and None when the category is never named
    assert mark_phrase('The shipyard is empty.', category_forms('ship'),
                       1) is None
    assert category_forms('harbor')[:2] == ['harbors', 'harbor']


def test_check_phrases_finds_lost_repeated_and_added_tags():
    phrases = ['ship-1', 'small vehicles-2']
    good = 'Two tags: <p> small vehicles-2 </p> and <p> ship-1 </p>.'
    assert check_phrases(good, phrases).ok  # order may change
    lost = check_phrases('Only <p> ship-1 </p>.', phrases)
    assert not lost.ok and lost.missing == ('small vehicles-2', )
    assert 'lost: small vehicles-2' in lost.reason()
    changed = check_phrases('<p> ship-1 </p> and <p> small cars-2 </p>',
                            phrases)
    assert changed.missing == ('small vehicles-2', )
    assert changed.added == ('small cars-2', )
    twice = check_phrases(
        '<p> ship-1 </p> <p> ship-1 </p> <p> small vehicles-2 </p>',
        phrases)
    assert twice.repeated == ('ship-1', )
    assert not check_phrases(good + ' [SEG]', phrases).ok
    assert not check_phrases(good + ' <p> dangling', phrases).ok


@pytest.mark.parametrize('text, expected, counts', [
    ('The <p> ship-1 </p> marked 1 is white.',
     'The <p> ship-1 </p> is white.', {'marker_ids': 1}),
    ('The <p> ship-1 </p>, which is marked with the number 2, is white.',
     'The <p> ship-1 </p> is white.', {'marker_ids': 1}),
    ('The <p> plane-3 </p> (#3) sits beside label 5.',
     'The <p> plane-3 </p> sits beside.', {'marker_ids': 2}),
    ('Trees fill the background. The <p> ship-1 </p> is red.',
     'The <p> ship-1 </p> is red.', {'foreground_background:dropped': 1}),
    ('The <p> ship-1 </p> is in the foreground.',
     'The <p> ship-1 </p> is.', {'foreground_background': 1}),
    ('The <p> ship-1 </p> lies in the distance near a pier.',
     'The <p> ship-1 </p> lies near a pier.', {'distance': 1}),
    ('The sky is clear. The <p> plane-2 </p> near the horizon is gray.',
     'The <p> plane-2 </p> is gray.',
     {'not_overhead:dropped': 1, 'not_overhead': 1}),
    ('There are 3 ships and a number of cars.',
     'There are 3 ships and a number of cars.', {}),
])
def test_filters(text, expected, counts):
    assert apply_filters(text) == (expected, counts)


def test_integer_polygons_drop_parts_that_rounding_flattens():
    sliver = [[10.2, 10.1], [30.4, 10.3], [30.4, 10.45]]  # 0.35 px high
    kept = [[0.4, 0.4], [20.2, 0.4], [20.2, 20.2], [0.4, 20.2], [0.4, 0.4]]
    assert integer_polygons([sliver, kept], 100, 100) == [
        [[0, 0], [20, 0], [20, 20], [0, 20]]
    ]
    assert integer_polygons([sliver], 100, 100) == []
    # clipped coordinates at the exclusive end stay inside the image side
    assert integer_polygons([[[90, 90], [100.4, 90], [100.4, 100.2]]], 100,
                            100) == [[[90, 90], [100, 90], [100, 100]]]


# ------------------------------------------------------------- a patch


def test_a_patch_becomes_a_grounded_description(scene):
    image, objects = scene
    pipeline = AnnotationPipeline(TemplateAnnotator(), TemplateAnnotator(),
                                  min_area=500)
    ann = pipeline.annotate_patch(image, objects)
    phrases = [p.phrase for p in ann.phrases]
    # instances first (largest first), then groups (most members first)
    assert phrases == ['ship-1', 'ship-2', 'small vehicles-3', 'plane-4']
    assert grounded_phrases(ann.description) == phrases
    assert ann.description.count('[SEG]') == 4
    levels = [(p.level, p.num_instances, p.position) for p in ann.phrases]
    assert levels == [('instance', 1, 'top left'),
                      ('instance', 1, 'bottom right'),
                      ('group', 3, 'top center'),  # 2 of 3 there
                      ('group', 1, 'bottom left')]
    # a group's mask is the union of its members' polygons
    assert ann.phrases[2].polygons == [o.polygons[0] for o in objects[2:5]]
    assert [p.marker for p in ann.phrases] == [1, 2, None, None]
    assert [(m.number, m.small) for m in ann.markers] == [(1, False),
                                                          (2, False)]
    # the marked image differs from the patch at the markers only
    changed = np.any(ann.marked_image != image, axis=2)
    boxes = np.zeros_like(changed)
    for marker in ann.markers:
        x0, y0, x1, y1 = marker.box()
        boxes[y0:y1, x0:x1] = True
    assert changed.any() and not (changed & ~boxes).any()
    assert ann.counts == dict(holistic=1, instance=2, group=2, objects=6)
    assert ann.info['paraphrase_attempts'] == 1
    assert not ann.info['paraphrase_fallback']
    # the same input gives the same text
    again = AnnotationPipeline(TemplateAnnotator(), TemplateAnnotator(),
                               min_area=500).annotate_patch(image, objects)
    assert again.description == ann.description


def test_instance_requests_carry_marker_category_and_position(scene):
    image, objects = scene
    annotator = Scripted(
        lambda r: f"The {r.fields.get('category', 'area')} is here.")
    AnnotationPipeline(annotator, min_area=500,
                       max_instances=1).annotate_patch(image, objects)
    tasks = [r.task for r in annotator.requests]
    # max_instances=1: the second ship joins the ships' group
    assert tasks == ['holistic', 'instance', 'group', 'group', 'group']
    inst = annotator.requests[1]
    assert (inst.fields['marker'], inst.fields['category'],
            inst.fields['position']) == (1, 'ship', 'top left')
    # the model sees the marked patch; the plain one rides in the priors
    assert not np.array_equal(inst.image, image)
    assert inst.fields['patch'] is image
    assert inst.fields['mask'].sum() == 41 * 41  # filled as the reader does
    groups = {r.fields['category']: r.fields['count']
              for r in annotator.requests[2:]}
    assert groups == {'small vehicle': 3, 'ship': 1, 'plane': 1}


def test_a_paraphrase_that_drops_a_phrase_is_retried(scene):
    image, objects = scene

    def paraphrase(request):
        text = request.fields['text']
        if request.attempt == 0:  # loses the first marked phrase
            return text.replace('<p> ship-1 </p>', 'the ship')
        return 'In short: ' + text

    paraphraser = Scripted(paraphrase)
    ann = AnnotationPipeline(TemplateAnnotator(), paraphraser,
                             min_area=500).annotate_patch(image, objects)
    assert [r.attempt for r in paraphraser.requests] == [0, 1]
    assert ann.info['paraphrase_attempts'] == 2
    assert not ann.info['paraphrase_fallback']
    assert ann.info['paraphrase_refusals'] == ['lost: ship-1']
    assert ann.texts['final'].startswith('In short: ')
    assert len(grounded_phrases(ann.description)) == 4


def test_a_paraphrase_that_keeps_dropping_falls_back(scene):
    image, objects = scene
    paraphraser = Scripted(lambda r: r.fields['text'].replace(
        '<p> small vehicles-3 </p>', 'some cars'))
    ann = AnnotationPipeline(TemplateAnnotator(), paraphraser, min_area=500,
                             paraphrase_attempts=3).annotate_patch(
                                 image, objects)
    assert len(paraphraser.requests) == 3
    assert ann.info['paraphrase_fallback']
    assert ann.info['paraphrase_refusals'] == ['lost: small vehicles-3'] * 3
    assert ann.texts['final'] == ann.texts['unified']
    assert grounded_phrases(ann.description) == [
        'ship-1', 'ship-2', 'small vehicles-3', 'plane-4'
    ]


def test_a_description_without_its_category_is_asked_again(scene):
    image, objects = scene

    def describe(request):
        if request.task == 'holistic':
            return 'An aerial view.'
        if request.fields.get('category') == 'plane':
            return 'Something small sits there.'  # never names it
        if request.attempt == 0:
            return 'A red object.'
        return f'The {request.fields["category"]} is visible.'

    annotator = Scripted(describe)
    ann = AnnotationPipeline(annotator, min_area=500,
                             describe_attempts=2).annotate_patch(
                                 image, objects)
    # 3 descriptions needed a second try; the plane fell back to priors
    assert ann.info['describe_retries'] == 3 + 2
    assert ann.info['description_fallbacks'] == ['plane-4']
    assert ('The <p> plane-4 </p> [SEG] is in the bottom left of the '
            'image.') in ann.description
    assert len(grounded_phrases(ann.description)) == 4


def test_model_tags_in_answers_are_plain_text(scene):
    image, objects = scene
    annotator = Scripted(lambda r: (
        'A view with <p> trees </p> [SEG].' if r.task == 'holistic' else
        f'The {r.fields["category"]} is here.'))
    ann = AnnotationPipeline(annotator, min_area=500).annotate_patch(
        image, objects)
    assert ann.texts['holistic'] == 'A view with trees.'
    assert ann.description.count('[SEG]') == 4


def test_bad_backend_answers_and_masks_are_errors(scene):
    image, objects = scene
    with pytest.raises(TypeError, match='answered a holistic request'):
        AnnotationPipeline(Scripted(lambda r: None)).annotate_patch(
            image, objects)
    bad = PatchObject(9, 'ship', [], np.zeros((200, 200), bool))
    with pytest.raises(ValueError, match='object 9'):
        AnnotationPipeline(TemplateAnnotator()).annotate_patch(
            image, [bad])
    with pytest.raises(ValueError, match='attempts'):
        AnnotationPipeline(TemplateAnnotator(), paraphrase_attempts=0)


def test_backends_build_from_config_dicts():
    pipeline = AnnotationPipeline(dict(type='TemplateAnnotator'),
                                  dict(type='TemplateAnnotator'))
    assert isinstance(pipeline.paraphraser, TemplateAnnotator)
    assert pipeline.settings()['annotator'] == dict(type='TemplateAnnotator')
    with pytest.raises(KeyError):
        AnnotationPipeline(dict(type='NoSuchAnnotator'))


def test_masks_follow_the_phrases_of_a_reordered_paraphrase(scene):
    from geopixel.annotation.marking import split_sentences
    image, objects = scene
    paraphraser = Scripted(lambda r: ' '.join(
        reversed(split_sentences(r.fields['text']))))
    ann = AnnotationPipeline(TemplateAnnotator(), paraphraser,
                             min_area=500).annotate_patch(image, objects)
    assert not ann.info['paraphrase_fallback']
    order = [p.phrase for p in ann.phrases]
    assert order == ['plane-4', 'small vehicles-3', 'ship-2', 'ship-1']
    assert order == grounded_phrases(ann.description)
    # the k-th [SEG] still owns its own object's mask
    assert [o.ann_id for p in ann.phrases for o in p.objects] == [
        6, 3, 4, 5, 2, 1
    ]


def test_the_demo_preview_of_a_generated_scene():
    from geopixel.annotation.preview import preview_synthetic_scene
    preview = preview_synthetic_scene(3, size=400)
    ann = preview.annotation
    assert preview.overlay.shape == preview.marked.shape == (400, 400, 3)
    assert len(ann.phrases) == preview.html.count('class="phrase"') > 0
    for phrase, kind in zip(ann.phrases, preview.kinds):
        assert f'{phrase.phrase} ({kind})' in preview.html
    # the overlay differs from the scene inside the first mask
    mask = rasterise(ann.phrases[0].polygons, 400, 400)
    assert (preview.overlay[mask] != preview.image[mask]).any()
    assert preview_synthetic_scene(3, size=400).html == preview.html
