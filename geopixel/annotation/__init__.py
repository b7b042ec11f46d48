"""The GeoPixelD annotation pipeline: instance-annotated aerial images to
grounded descriptions (docs/en/user_guides/annotation.md).

Stages: preprocessing into iSAID-devkit patches (:mod:`.patching`),
set-of-marks (:mod:`.marks`), spatial priors (:mod:`.spatial`), prompts
(:mod:`.prompts`) for the annotator backends (:mod:`.backends`), text
marking and filters (:mod:`.marking`), the per-patch pipeline
(:mod:`.pipeline`), the GeoPixelD writer (:mod:`.dataset_writer`) and the
report (:mod:`.report`).
"""
from .dataset_writer import (annotate_coco, records_name,
                             validate_output)
from .marking import (DEFAULT_FILTERS, PhraseCheck, TextFilter,
                      apply_filters, category_forms, check_phrases,
                      mark_phrase, tagged_phrases)
from .marks import (MARKER_SIZE, Marker, marker_position, place_markers,
                    render_markers, select_prominent)
from .patching import (
    CocoPatchSource,
    Patch,
    PatchInstance,
    PatchWindow,
    clip_polygon,
    clip_polygon_to_window,
    patch_name,
    patch_starts,
    patch_windows,
    polygon_area,
    split_coco_file,
    split_image,
)
from .pipeline import (AnnotationPipeline, GroundedPhrase, PatchAnnotation,
                       PatchObject, display_name, integer_polygons,
                       rasterise)
from .prompts import (group_request, holistic_request, instance_request,
                      paraphrase_request)
from .report import write_report
from .spatial import (
    CELL_PHRASES_3X3,
    GROUP_SCATTERED_PHRASE,
    HALF_PHRASES,
    QUADRANT_PHRASES,
    GroupPosition,
    category_counts,
    grid_counts,
    grid_shares,
    group_position,
    group_shares,
    instance_cell,
    instance_position,
    masks_by_category,
)
from .synthetic_source import write_synthetic_source

__all__ = [
    'annotate_coco', 'records_name', 'validate_output', 'DEFAULT_FILTERS',
    'PhraseCheck', 'TextFilter', 'apply_filters', 'category_forms',
    'check_phrases', 'mark_phrase', 'tagged_phrases', 'CocoPatchSource',
    'AnnotationPipeline', 'GroundedPhrase', 'PatchAnnotation', 'PatchObject',
    'display_name', 'integer_polygons', 'rasterise', 'group_request',
    'holistic_request', 'instance_request', 'paraphrase_request',
    'write_report', 'write_synthetic_source',
    'MARKER_SIZE', 'Marker', 'marker_position', 'place_markers',
    'render_markers', 'select_prominent',
    'Patch', 'PatchInstance', 'PatchWindow', 'clip_polygon',
    'clip_polygon_to_window',
    'patch_name', 'patch_starts', 'patch_windows', 'polygon_area',
    'split_coco_file', 'split_image', 'CELL_PHRASES_3X3',
    'GROUP_SCATTERED_PHRASE', 'HALF_PHRASES', 'QUADRANT_PHRASES',
    'GroupPosition', 'category_counts', 'grid_counts', 'grid_shares',
    'group_position', 'group_shares', 'instance_cell', 'instance_position',
    'masks_by_category'
]
