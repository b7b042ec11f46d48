# The bundled synthetic data in the GeoPixelD layout.
from mmengine.config import read_base

with read_base():
    # order matters: the synthetic pipelines override the real ones
    from .geopixeld_gcg import *  # noqa: F401,F403
    from .synthetic_pipelines import *  # noqa: F401,F403

train_dataloader.update(num_workers=2)
test_dataloader.update(num_workers=2)
train_dataloader.dataset.update(
    data_root=synthetic_root + '/geopixeld', pipeline=train_pipeline)
test_dataloader.dataset.update(
    data_root=synthetic_root + '/geopixeld', pipeline=test_pipeline)
val_dataloader = test_dataloader
