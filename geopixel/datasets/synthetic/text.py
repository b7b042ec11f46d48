"""GeoPixelD-style descriptions and RRSIS-D-style referring expressions."""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..isaid import ISAID_PHRASES
from .scene import BIOMES, Instance, Scene

PURPOSES = (
    ('ship', 'This could be a harbor or a busy coastal area.'),
    ('plane', 'This could be part of an airport apron.'),
    ('storage_tank', 'This could be an industrial storage facility.'),
    ('tennis_court', 'This could be a recreational sports facility.'),
    ('basketball_court', 'This could be a recreational sports facility.'),
    ('Swimming_pool', 'This could be a residential neighbourhood.'),
)

POSITION_PHRASES = {
    'top left': 'at top left',
    'top': 'at the top',
    'top right': 'at top right',
    'left': 'on the left',
    'center': 'in the center',
    'right': 'on the right',
    'bottom left': 'at bottom left',
    'bottom': 'at the bottom',
    'bottom right': 'at bottom right',
}


def _plural(name: str) -> str:
    return name + ('es' if name.endswith(('s', 'sh', 'ch')) else 's')


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f'{items[0]} and {items[1]}'
    return ', '.join(items[:-1]) + f', and {items[-1]}'


def gcg_description(scene: Scene,
                    rng: np.random.Generator) -> Tuple[str, List[List[int]]]:
    """A grounded description and, per ``[SEG]``, the instances it covers.

    Mentions are instance phrases (``<p> ship-1 </p> [SEG]``, one instance)
    and group phrases (``<p> small vehicles </p> [SEG]``, the union of
    several instances), in the official ``<p> phrase </p> [SEG]`` markup.
    """
    sentences = []
    biome = BIOMES[scene.biome][1]
    article = 'an' if biome[0] in 'aeiou' else 'a'
    intro = f'The image is an aerial view of {article} {biome} area'
    clauses = []
    if scene.has_water == 'coast':
        clauses.append('bordered by water along one side')
    elif scene.has_water == 'lake':
        clauses.append('with a lake')
    if scene.num_roads:
        roads = ('a road' if scene.num_roads == 1 else
                 f'{scene.num_roads} roads')
        clauses.append(f'crossed by {roads}')
    if clauses:
        intro += ' ' + ' and '.join(clauses)
    sentences.append(intro + '.')

    by_cat = {}
    for idx, inst in enumerate(scene.instances):
        by_cat.setdefault(inst.category, []).append(idx)
    seg_groups: List[List[int]] = []
    for cat, members in sorted(by_cat.items(),
                               key=lambda kv: (-len(kv[1]), kv[0])):
        name = ISAID_PHRASES[cat]
        insts = [scene.instances[i] for i in members]
        if len(members) == 1:
            inst = insts[0]
            pos = POSITION_PHRASES[scene.position_of(inst)]
            sentences.append(f'A {inst.colour} <p> {name}-1 </p> [SEG] is '
                             f'located {pos} of the image.')
            seg_groups.append([members[0]])
        elif len(members) <= 3 and rng.random() < 0.6:
            phrases = [
                f'<p> {name}-{k + 1} </p> [SEG]' for k in range(len(members))
            ]
            places = [scene.position_of(i) for i in insts]
            if len(set(places)) == 1:
                where = POSITION_PHRASES[places[0]]
            else:
                where = 'at ' + _join(['the ' + p for p in places])
                where += ' respectively'
            sentences.append(f'The {_join(phrases)} are located {where}.')
            seg_groups.extend([[m] for m in members])
        else:
            colours = sorted({i.colour for i in insts})
            colour = (f'{colours[0]} ' if len(colours) == 1 else '')
            verb = ('parked along the road' if 'Vehicle' in cat else
                    'spread across the scene')
            sentences.append(f'A group of {len(members)} {colour}<p> '
                             f'{_plural(name)} </p> [SEG] is {verb}.')
            seg_groups.append(list(members))
    for cat, sentence in PURPOSES:
        if cat in by_cat:
            sentences.append(sentence)
            break
    else:
        sentences.append('The area appears calm, with no people visible.')
    return ' '.join(sentences), seg_groups


def _matches(inst: Instance, pos: str, desc: dict, scene: Scene) -> bool:
    if inst.category != desc['category']:
        return False
    if 'colour' in desc and inst.colour != desc['colour']:
        return False
    if 'size' in desc and inst.size_word != desc['size']:
        return False
    if 'position' in desc and pos != desc['position']:
        return False
    return True


_SIZE_SYNONYMS = {'large': 'big', 'small': 'tiny'}


def _render(desc: dict) -> str:
    words = ['the']
    name = ISAID_PHRASES[desc['category']]
    if 'size' in desc:
        size = desc['size']
        # avoid "the small small vehicle"
        words.append(_SIZE_SYNONYMS[size] if name.startswith(
            ('large', 'small')) else size)
    if 'colour' in desc:
        words.append(desc['colour'])
    words.append(name)
    text = ' '.join(words)
    if 'position' in desc:
        text += ' ' + POSITION_PHRASES[desc['position']]
    return text


_ATTRIBUTE_ORDERS = (
    (),
    ('colour', ),
    ('size', ),
    ('position', ),
    ('colour', 'position'),
    ('size', 'colour'),
    ('size', 'position'),
    ('size', 'colour', 'position'),
)


# attribute words in the order a sentence says them
ATTRIBUTES = ('size', 'colour', 'position')


def referring_sentences(scene: Scene, index: int) -> Optional[List[dict]]:
    """Up to two expressions that pick out instance ``index`` alone, each
    with the attributes it says.

    The first uses the fewest attributes (category, colour, size, position)
    that make the description unique; the second uses all of them, e.g.
    ``the large white plane at top left``. Each item is
    ``dict(text=..., attributes=[...], unique_by=[...])``: ``attributes``
    are the words beside the category that the sentence says, ``unique_by``
    those of the first (shortest unique) description, in ``ATTRIBUTES``
    order. None if no description is unique.
    """
    target = scene.instances[index]
    positions = [scene.position_of(i) for i in scene.instances]
    attrs = dict(
        category=target.category,
        colour=target.colour,
        position=positions[index])
    if target.size_word:
        attrs['size'] = target.size_word
    unique = []
    for order in _ATTRIBUTE_ORDERS:
        if any(a not in attrs for a in order):
            continue
        desc = {'category': target.category, **{a: attrs[a] for a in order}}
        hits = [
            j for j, inst in enumerate(scene.instances)
            if _matches(inst, positions[j], desc, scene)
        ]
        if hits == [index]:
            unique.append(desc)
    if not unique:
        return None
    full = {'category': target.category,
            **{a: v for a, v in attrs.items() if a != 'category'}}
    unique_by = [a for a in ATTRIBUTES if a in unique[0]]
    sentences = [
        dict(text=_render(desc),
             attributes=[a for a in ATTRIBUTES if a in desc],
             unique_by=unique_by) for desc in (unique[0], full)
    ]
    if sentences[1]['text'] == sentences[0]['text']:
        return sentences[:1]
    return sentences


def referring_expressions(scene: Scene, index: int) -> Optional[List[str]]:
    """The texts of :func:`referring_sentences` (None if none is unique)."""
    sentences = referring_sentences(scene, index)
    return None if sentences is None else [s['text'] for s in sentences]
