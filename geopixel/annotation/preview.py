"""One synthetic scene through the whole pipeline, in memory: what the web
demo's annotation tab shows (tools/demo/app.py), without files or a
model."""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .marks import render_markers
from .pipeline import (AnnotationPipeline, PatchAnnotation, PatchObject,
                       display_name, integer_polygons, rasterise)


@dataclass
class ScenePreview:
    """A scene, its annotation and the pictures of it."""
    image: np.ndarray
    marked: np.ndarray   # what the instance annotator sees
    overlay: np.ndarray  # every grounded mask in its colour, markers on top
    annotation: PatchAnnotation
    html: str            # the description, phrases in their masks' colours

    @property
    def kinds(self) -> List[str]:
        return [
            'instance' if p.level == 'instance' else
            f'group of {p.num_instances}' for p in self.annotation.phrases
        ]


def scene_objects(scene) -> List[PatchObject]:
    """A synthetic scene's instances as pipeline objects."""
    height, width = scene.image.shape[:2]
    objects = []
    for k, inst in enumerate(scene.instances):
        polygons = integer_polygons([inst.polygon], height, width)
        if polygons:
            objects.append(
                PatchObject(k + 1, display_name(inst.category), polygons,
                            rasterise(polygons, height, width)))
    return objects


def preview_synthetic_scene(seed: int = 0,
                            size: int = 800,
                            pipeline: Optional[AnnotationPipeline] = None
                            ) -> ScenePreview:
    """Generate scene ``seed`` (``size`` px) and annotate it; the default
    pipeline is the template one of ``configs/annotation/
    template_synthetic.py``."""
    from geopixel.datasets.synthetic.scene import SceneGenerator
    from geopixel.visualization import draw_grounded_masks, palette

    from .backends import TemplateAnnotator
    from .report import description_html
    if pipeline is None:
        pipeline = AnnotationPipeline(TemplateAnnotator(),
                                      TemplateAnnotator(), min_area=600)
    scene = SceneGenerator(size, size)(np.random.default_rng([seed]))
    image = np.ascontiguousarray(scene.image[..., :3])
    annotation = pipeline.annotate_patch(image, scene_objects(scene))
    masks = [
        rasterise(p.polygons, size, size).astype(np.uint8)
        for p in annotation.phrases
    ]
    colours = palette(len(masks))
    overlay = draw_grounded_masks(image, masks, colours=colours,
                                  legend_width=0)[:size, :size]
    overlay = render_markers(overlay, annotation.markers)
    preview = ScenePreview(image, annotation.marked_image, overlay,
                           annotation, '')
    preview.html = description_html(annotation.description, preview.kinds,
                                    colours)
    return preview
