# The template pipeline sized for the synthetic scenes, whose objects are
# smaller than iSAID's (most under 2,500 px): a lower prominence threshold.
#   python tools/annotate/annotate.py \
#       configs/annotation/template_synthetic.py \
#       --synthetic 40 --out data/annotated
from mmengine.config import read_base

with read_base():
    from .template import *  # noqa: F401,F403

pipeline.update(min_area=600)
