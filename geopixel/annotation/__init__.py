"""The GeoPixelD annotation pipeline: instance-annotated aerial images to
grounded descriptions (docs/en/user_guides/annotation.md).

Stages so far: preprocessing into iSAID-devkit patches
(:mod:`.patching`), set-of-marks (:mod:`.marks`) and spatial priors
(:mod:`.spatial`).
"""
from .marks import (MARKER_SIZE, Marker, marker_position, place_markers,
                    render_markers, select_prominent)
from .patching import (
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

__all__ = [
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
