"""A browsable HTML report of a sample of annotated patches.

The report reads an annotation output folder (the layout of
``docs/en/user_guides/annotation.md``: ``GeoPixelD.json``, the per-image
JSONs and patches under ``GeoPixelD/<split>/``, optional ``marked/`` and
``summary.json``) and writes ``report/index.html`` with one PNG per sampled
patch. Each ``<p> phrase </p> [SEG]`` of a description is shown in the
colour of its mask in the image, with its kind (one instance or a group of
n), so a reader can check at a glance that text, masks and markers agree.

The page is self-contained (inline CSS, no script, no network) and its
images are referenced by relative paths: the ``report`` folder can be
copied or opened from anywhere.
"""
import html
import json
import os
import os.path as osp
import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from geopixel.structures.vocabulary import (PHRASE_AT_END, SEG_TOKEN,
                                            count_seg)
from geopixel.utils import (BadRecordError, polygons_to_mask, read_json,
                            resolve_data_path)
from geopixel.utils.files import atomic_write, write_png

from .marks import MARKER_SIZE, Marker, render_markers

# white columns between the overlay and the marked patch
SIDE_BY_SIDE_GAP = 8
# the raw texts, in the order the pipeline builds them
TEXT_ORDER = ('holistic', 'instances', 'groups', 'unified', 'final')


@dataclass
class _Patch:
    """What the report shows of one sampled record, checked."""
    label: str  # '#index (id N)', as errors name the record
    stem: str
    image_path: str
    json_path: str
    marked_path: Optional[str]
    height: int
    width: int
    description: str
    polygons: list
    kinds: List[str]
    phrase_info: List[dict]
    markers: List[Marker]
    texts: dict
    annotation: dict


def write_report(out_dir: str,
                 report_dir: Optional[str] = None,
                 num_samples: int = 12,
                 seed: int = 0,
                 split: str = 'train') -> str:
    """Write ``index.html`` and an overlay PNG per sampled patch.

    The sample is ``random.Random(seed).sample`` over the records sorted by
    image path (all of them when there are at most ``num_samples``), so the
    same folder and seed always give the same patches.

    Every record's image and per-image JSON must exist; the sampled ones
    are read in full and must agree with themselves (one polygon list per
    ``[SEG]``, the same answer in both files, phrase metadata aligned with
    the phrases). Any problem is a :class:`BadRecordError` naming the file
    and the record, raised before anything is written. The PNGs are written
    first and ``index.html`` last, each atomically.

    Args:
        out_dir: the annotation output folder (holds ``GeoPixelD.json``).
        report_dir: where to write; default ``out_dir/report`` for the
            train split, ``out_dir/report_{split}`` for others.
        num_samples: how many patches to show.
        seed: seed of the sample.
        split: the split whose records file is shown (``GeoPixelD.json``
            for train, ``GeoPixelD_{split}.json`` otherwise).

    Returns:
        The path of ``index.html``.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) \
            or num_samples < 1:
        raise ValueError(f'num_samples must be a positive integer, got '
                         f'{num_samples!r}')
    from .dataset_writer import records_name
    report_dir = report_dir or osp.join(
        out_dir, 'report' if split == 'train' else f'report_{split}')
    ann_file = osp.join(out_dir, records_name(split))
    records = _read_records(ann_file, out_dir)
    order = sorted(records, key=lambda r: (r['image_path'], r['index']))
    if len(order) > num_samples:
        chosen = random.Random(seed).sample(order, num_samples)
        # shown in sorted order, which is easier to browse
        chosen.sort(key=lambda r: (r['image_path'], r['index']))
    else:
        chosen = order
    patches = [_load_patch(r, out_dir, ann_file) for r in chosen]
    summary = _read_summary(osp.join(out_dir, 'summary.json'))
    if summary is not None and isinstance(summary.get(split), dict):
        summary = summary[split]  # the writer keeps one summary per split

    image_dir = osp.join(report_dir, 'images')
    os.makedirs(image_dir, exist_ok=True)
    names = _unique_names([p.stem for p in patches])
    for patch, name in zip(patches, names):
        write_png(render_patch(patch), osp.join(image_dir, name))
    page = _page(out_dir, len(records), patches, names, summary, seed)
    index = osp.join(report_dir, 'index.html')
    atomic_write(page, index)
    return index


def render_patch(patch: _Patch) -> np.ndarray:
    """The patch with each mask blended in its colour and outlined, the
    markers drawn on top; beside it the marked patch, when there is one."""
    from PIL import Image

    # importing geopixel.visualization loads the MMEngine visualizer, so
    # it waits until a report is drawn
    from geopixel.visualization import draw_grounded_masks, palette
    image = _read_rgb(patch.image_path)
    masks = [
        polygons_to_mask(polygons, patch.height, patch.width,
                         patch.json_path, patch.label, k)
        for k, polygons in enumerate(patch.polygons)
    ]
    # no legend panel: the page's coloured phrases are the legend
    overlay = draw_grounded_masks(image, masks, colours=palette(len(masks)),
                                  legend_width=0)
    overlay = render_markers(overlay[:patch.height, :patch.width],
                             patch.markers)
    if patch.marked_path is None:
        return overlay
    with Image.open(patch.marked_path) as marked_file:
        marked = np.asarray(marked_file.convert('RGB'))
    if marked.shape[:2] != (patch.height, patch.width):
        raise BadRecordError(
            f'the marked patch is {marked.shape[1]}x{marked.shape[0]}, the '
            f'patch {patch.width}x{patch.height}', patch.marked_path,
            patch.label)
    canvas = np.full(
        (patch.height, 2 * patch.width + SIDE_BY_SIDE_GAP, 3), 255, np.uint8)
    canvas[:, :patch.width] = overlay
    canvas[:, patch.width + SIDE_BY_SIDE_GAP:] = marked
    return canvas


def phrase_kind(info: Optional[dict], polygons: Sequence) -> str:
    """``instance`` or ``group of n`` from a phrase's metadata (its
    ``level`` and ``num_instances``); without metadata, the polygon count
    says only how many pieces the mask has."""
    if info:
        count = info.get('num_instances')
        if info.get('level') == 'instance':
            return 'instance'
        if info.get('level') == 'group':
            return f'group of {count}' if count is not None else 'group'
        if count is not None:
            return 'instance' if count == 1 else f'group of {count}'
    return f'{len(polygons)} polygon' + ('s' if len(polygons) != 1 else '')


# --------------------------------------------------------------- reading


def _read_records(ann_file: str, out_dir: str) -> List[dict]:
    """Each record's index, label, answer and resolved file paths; a
    missing image or per-image JSON is an error for any record, sampled or
    not."""
    from geopixel.datasets.chat import normalise_turns
    content = read_json(ann_file, 'annotation file')
    if not isinstance(content, list):
        raise BadRecordError('expected a JSON list of records', ann_file)
    if not content:
        raise BadRecordError('holds no records: nothing to report',
                             ann_file)
    records = []
    for index, record in enumerate(content):
        if not isinstance(record, dict):
            raise BadRecordError('record is not a JSON object', ann_file,
                                 f'#{index}')
        label = f'#{index} (id {record.get("id", "?")})'
        for key in ('image', 'polygons'):
            if not isinstance(record.get(key), str):
                raise BadRecordError(
                    f'"{key}" must be a path relative to {out_dir}',
                    ann_file, label)
        turns = normalise_turns(record.get('conversations'), ann_file, label)
        records.append(
            dict(
                index=index,
                label=label,
                answers=[text for role, text in turns if role != 'user'],
                image_path=resolve_data_path(record['image'], [out_dir],
                                             ann_file, label),
                json_path=resolve_data_path(record['polygons'], [out_dir],
                                            ann_file, label)))
    return records


def _load_patch(record: dict, out_dir: str, ann_file: str) -> _Patch:
    """Read and check one sampled record's per-image JSON and image."""
    from PIL import Image
    file, label = record['json_path'], record['label']
    content = read_json(file, 'per-image JSON', label)
    if not isinstance(content, dict):
        raise BadRecordError('expected a JSON object', file, label)
    polygons = content.get('polygons')
    if not isinstance(polygons, list) or not all(
            isinstance(p, list) for p in polygons):
        raise BadRecordError(
            '"polygons" must be a list of polygon lists, one per [SEG]',
            file, label)
    answer = '\n'.join(record['answers'])
    description = content.get('gcg_description', answer)
    if not isinstance(description, str):
        raise BadRecordError('"gcg_description" must be text', file, label)
    if description.strip() != answer.strip():
        raise BadRecordError(
            '"gcg_description" differs from the answer of the record in '
            f'{ann_file}', file, label)
    if count_seg(description) != len(polygons):
        raise BadRecordError(
            f'the description has {count_seg(description)} [SEG] token(s) '
            f'but "polygons" holds {len(polygons)} mask(s); the k-th [SEG] '
            'must own the k-th mask', file, label)
    with Image.open(record['image_path']) as image:
        width, height = image.size
    declared = (content.get('height'), content.get('width'))
    if declared != (None, None) and declared != (height, width):
        raise BadRecordError(
            f'declares height x width {declared[0]} x {declared[1]} but the '
            f'image {record["image_path"]} is {height} x {width}', file,
            label)
    phrase_info = _phrase_info(content, description, file, label)
    stem = osp.splitext(osp.basename(record['image_path']))[0]
    # the writer keeps marked patches per split, beside the split's name
    split_dir = osp.basename(osp.dirname(record['image_path']))
    marked = osp.join(out_dir, 'marked', split_dir, stem + '.png')
    if not osp.isfile(marked):
        marked = osp.join(out_dir, 'marked', stem + '.png')
    return _Patch(
        label=label,
        stem=stem,
        image_path=record['image_path'],
        json_path=file,
        marked_path=marked if osp.isfile(marked) else None,
        height=height,
        width=width,
        description=description,
        polygons=polygons,
        kinds=[
            phrase_kind(info, polys)
            for info, polys in zip(phrase_info, polygons)
        ],
        phrase_info=phrase_info,
        markers=_markers(content.get('markers', []), file, label),
        texts=_dict_field(content, 'texts', file, label),
        annotation=_dict_field(content, 'annotation', file, label))


def _phrase_info(content: dict, description: str, file: str,
                 label: str) -> List[dict]:
    """One metadata dict per [SEG] (empty where the JSON has none), from
    ``phrases`` or else ``num_instances``; each named phrase must be the
    one the description puts before that [SEG]."""
    num_segs = count_seg(description)
    phrases = content.get('phrases')
    counts = content.get('num_instances')
    for key, value in (('phrases', phrases), ('num_instances', counts)):
        if value is not None and (not isinstance(value, list)
                                  or len(value) != num_segs):
            raise BadRecordError(
                f'"{key}" must be a list with one entry per [SEG] '
                f'({num_segs})', file, label)
    if phrases is None:
        return [
            dict(num_instances=n) if counts else {}
            for n in (counts or [None] * num_segs)
        ]
    text_phrases = [phrase for _, phrase in _segments(description)[1]]
    for k, (info, said) in enumerate(zip(phrases, text_phrases)):
        if not isinstance(info, dict):
            raise BadRecordError(f'phrase {k} is not a JSON object', file,
                                 label)
        named = info.get('phrase')
        if named is not None and said is not None and \
                ' '.join(str(named).split()) != ' '.join(said.split()):
            raise BadRecordError(
                f'phrase {k} is {named!r} in "phrases" but {said!r} in the '
                'description', file, label)
    return phrases


def _markers(entries, file: str, label: str) -> List[Marker]:
    if not isinstance(entries, list):
        raise BadRecordError('"markers" must be a list', file, label)
    markers = []
    for k, entry in enumerate(entries):
        fields = [entry.get(key) for key in ('number', 'x', 'y')] \
            if isinstance(entry, dict) else None
        if fields is None or not all(
                isinstance(v, int) and not isinstance(v, bool)
                for v in fields):
            raise BadRecordError(
                f'marker {k} must have integer "number", "x" and "y"', file,
                label)
        size = MARKER_SIZE
        box = entry.get('box')
        if box is not None:
            if not (isinstance(box, list) and len(box) == 4):
                raise BadRecordError(
                    f'marker {k}: "box" must be [x0, y0, x1, y1]', file,
                    label)
            size = int(box[2]) - int(box[0])
        markers.append(
            Marker(fields[0], fields[1], fields[2],
                   bool(entry.get('small', False)), size))
    return markers


def _dict_field(content: dict, key: str, file: str, label: str) -> dict:
    value = content.get(key, {})
    if not isinstance(value, dict):
        raise BadRecordError(f'"{key}" must be a JSON object', file, label)
    return value


def _read_summary(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    summary = read_json(path, 'summary file')
    if not isinstance(summary, dict):
        raise BadRecordError('expected a JSON object', path)
    return summary


def _read_rgb(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))


def _unique_names(stems: Sequence[str]) -> List[str]:
    """``<stem>.png``, with ``-2``, ``-3`` ... for a stem seen before (two
    splits may hold the same patch name)."""
    seen: Dict[str, int] = {}
    names = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        suffix = f'-{seen[stem]}' if seen[stem] > 1 else ''
        names.append(f'{stem}{suffix}.png')
    return names


# ----------------------------------------------------------------- writing


def _segments(description: str) -> Tuple[List[str], List[Tuple[str, str]]]:
    """The description cut at each ``[SEG]``: the plain text around the
    grounded phrases, and per ``[SEG]`` (markup, phrase) where markup is
    ``<p> ... </p> [SEG]`` (just ``[SEG]`` without a phrase, phrase None).
    """
    pieces = description.split(SEG_TOKEN)
    plain, grounded = [], []
    for piece in pieces[:-1]:
        found = PHRASE_AT_END.search(piece)
        if found:
            plain.append(piece[:found.start()])
            grounded.append((piece[found.start():] + SEG_TOKEN,
                             found.group(1).strip()))
        else:
            plain.append(piece)
            grounded.append((SEG_TOKEN, None))
    plain.append(pieces[-1])
    return plain, grounded


def _hex(colour: Sequence[int]) -> str:
    return '#{:02x}{:02x}{:02x}'.format(*colour)


def description_html(description: str, kinds: Sequence[str],
                     colours: Sequence) -> str:
    """The description with each grounded phrase as a span in its mask's
    colour, showing its kind (the report's and the demo's)."""
    plain, grounded = _segments(description)
    parts = [html.escape(plain[0])]
    for k, (markup, phrase) in enumerate(grounded):
        shown = phrase if phrase is not None else SEG_TOKEN
        parts.append(
            f'<span class="phrase" style="background:{_hex(colours[k])}" '
            f'title="{html.escape(markup)}">'
            f'{html.escape(shown)} ({html.escape(kinds[k])})</span>')
        parts.append(html.escape(plain[k + 1]))
    return ''.join(parts)


def _phrase_table(patch: _Patch, colours: Sequence) -> str:
    """Per mask: colour, phrase, kind, category, position, marker."""
    if not patch.polygons:
        return '<p class="muted">No grounded phrase.</p>'
    text_phrases = [p for _, p in _segments(patch.description)[1]]
    rows = []
    for k, info in enumerate(patch.phrase_info):
        marker = info.get('marker')
        cells = [
            f'<span class="swatch" style="background:{_hex(colours[k])}">'
            '</span>',
            html.escape(text_phrases[k] or SEG_TOKEN),
            html.escape(patch.kinds[k]),
            html.escape(str(info.get('category', ''))),
            html.escape(str(info.get('position', ''))),
            html.escape(str(marker) if marker is not None else ''),
            str(len(patch.polygons[k])),
        ]
        rows.append('<tr>' + ''.join(f'<td>{c}</td>' for c in cells) +
                    '</tr>')
    head = ''.join(f'<th>{h}</th>' for h in ('', 'phrase', 'kind',
                                              'category', 'position',
                                              'marker', 'polygons'))
    return (f'<table class="phrases"><tr>{head}</tr>{"".join(rows)}'
            '</table>')


def _value_html(value) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return f'<code>{html.escape(text)}</code>'
    return html.escape(str(value))


def _details_html(patch: _Patch) -> str:
    """The raw texts and the annotation info, collapsed."""
    items = []
    keys = [k for k in TEXT_ORDER if k in patch.texts]
    keys += sorted(k for k in patch.texts if k not in TEXT_ORDER)
    for key in keys:
        value = patch.texts[key]
        if isinstance(value, list):
            body = '<ol>' + ''.join(f'<li>{html.escape(str(v))}</li>'
                                    for v in value) + '</ol>'
        else:
            body = f'<p>{html.escape(str(value))}</p>'
        items.append(f'<dt>texts.{html.escape(key)}</dt><dd>{body}</dd>')
    for key, value in patch.annotation.items():
        name = html.escape(str(key).replace('_', ' '))
        items.append(f'<dt>{name}</dt><dd>{_value_html(value)}</dd>')
    if not items:
        return ''
    return ('<details><summary>Raw texts and annotation info</summary>'
            f'<dl>{"".join(items)}</dl></details>')


def _card(patch: _Patch, name: str) -> str:
    from geopixel.visualization import palette
    colours = palette(len(patch.polygons))
    caption = ('left: masks and markers; right: the marked patch the '
               'annotator saw' if patch.marked_path else 'masks and markers')
    title = html.escape(patch.stem)
    anchor = html.escape(osp.splitext(name)[0])
    text = description_html(patch.description, patch.kinds, colours)
    return (f'<section class="card" id="{anchor}">'
            f'<h2>{title}</h2>'
            f'<p class="muted">record {html.escape(patch.label)}, '
            f'{patch.width} x {patch.height} px, '
            f'{len(patch.polygons)} grounded phrase(s), '
            f'{len(patch.markers)} marker(s)</p>'
            f'<figure><img src="images/{html.escape(name)}" '
            f'alt="{title}" loading="lazy">'
            f'<figcaption>{caption}</figcaption></figure>'
            f'<p class="description">{text}</p>'
            f'{_phrase_table(patch, colours)}{_details_html(patch)}'
            '</section>')


def _summary_html(summary: Optional[dict]) -> str:
    """Top-level numbers of ``summary.json`` (a nested dict of numbers,
    e.g. per-category counts, one row per entry)."""
    if summary is None:
        return '<p class="muted">No summary.json in the folder.</p>'

    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    rows = []
    for key, value in summary.items():
        if is_number(value):
            rows.append((str(key), value))
        elif isinstance(value, dict) and value and all(
                is_number(v) for v in value.values()):
            rows += [(f'{key} / {sub}', v) for sub, v in value.items()]
    if not rows:
        return '<p class="muted">summary.json holds no numbers.</p>'
    body = ''.join(f'<tr><th>{html.escape(k)}</th><td>{v}</td></tr>'
                   for k, v in rows)
    return f'<table class="summary">{body}</table>'


_CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1700px;
       padding: 0 1em; color: #222; }
.muted { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
.card { border: 1px solid #bbb; border-radius: 6px; margin: 1.5em 0;
        padding: 0.5em 1em 1em; }
.card h2 { font-size: 1.1em; margin: 0.3em 0; font-family: monospace; }
figure { margin: 0.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.description { line-height: 1.8; }
.phrase { border-radius: 3px; padding: 1px 4px; color: #000;
          box-shadow: inset 0 0 0 1px #0004; }
.swatch { display: inline-block; width: 1.2em; height: 1em;
          border: 1px solid #000; }
dt { font-weight: bold; margin-top: 0.4em; }
code { white-space: pre-wrap; word-break: break-word; }
"""


def _page(out_dir: str, num_records: int, patches: Sequence[_Patch],
          names: Sequence[str], summary: Optional[dict], seed: int) -> str:
    sample = (f'{len(patches)} of {num_records} patches, sampled with '
              f'seed {seed}' if len(patches) < num_records else
              f'all {num_records} patches')
    cards = ''.join(_card(p, n) for p, n in zip(patches, names))
    contents = ''.join(f'<li><a href="#{html.escape(osp.splitext(n)[0])}">'
                       f'{html.escape(p.stem)}</a></li>'
                       for p, n in zip(patches, names))
    folder = html.escape(osp.abspath(out_dir))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<title>GeoPixelD annotation report</title>'
        f'<style>{_CSS}</style></head><body>'
        '<h1>GeoPixelD annotation report</h1>'
        f'<p class="muted">{folder}: {sample}. Each coloured phrase is '
        'drawn in the colour of its mask; the kind says whether it grounds '
        'one instance or a group.</p>'
        f'<h2>Summary</h2>{_summary_html(summary)}'
        f'<h2>Sampled patches</h2><ol>{contents}</ol>{cards}'
        '</body></html>\n')
