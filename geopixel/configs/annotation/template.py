# The annotation pipeline with the offline template backend (no model):
# deterministic text from the priors and the pixels. Used by the tests, the
# demo and `tools/annotate/annotate.py --synthetic`; swap `annotator` and
# `paraphraser` for a model (openai_endpoint.py, local_vlm.py).
#   python tools/annotate/annotate.py configs/annotation/template.py \
#       --ann-file iSAID/train.json --image-dir iSAID/train/images \
#       --out data/annotated
annotator = dict(type='TemplateAnnotator')
paraphraser = dict(type='TemplateAnnotator')

# geopixel.annotation.AnnotationPipeline
pipeline = dict(
    min_area=1600,  # mask pixels from which an object gets a marker
    max_instances=6,
    num_sentences=4,
    describe_attempts=3,
    paraphrase_attempts=3,
    aliases={
        'small vehicle': ['car', 'vehicle'],
        'large vehicle': ['truck', 'bus', 'vehicle'],
        'plane': ['airplane', 'aircraft'],
        'ship': ['boat', 'vessel'],
        'storage tank': ['tank'],
        'swimming pool': ['pool'],
        'harbor': ['harbour', 'dock', 'pier'],
        'ground track field': ['track field', 'running track'],
        'soccer ball field': ['soccer field', 'football field'],
    })

# geopixel.annotation.CocoPatchSource: the iSAID devkit's rules
patching = dict(patch_size=800, stride=600, min_area=10,
                small_images='whole')

# patches without any instance left are not annotated (counted)
skip_empty = True
