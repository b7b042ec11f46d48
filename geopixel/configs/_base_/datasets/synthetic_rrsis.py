# The bundled synthetic data in the RRSIS-D (REFER) layout.
from mmengine.config import read_base

with read_base():
    # order matters: the synthetic pipelines override the real ones
    from .rrsisd import *  # noqa: F401,F403
    from .synthetic_pipelines import *  # noqa: F401,F403

train_dataloader.update(num_workers=2)
val_dataloader.update(num_workers=2)
test_dataloader.update(num_workers=2)
train_dataloader.dataset.update(
    data_root=synthetic_root + '/rrsisd', pipeline=train_pipeline)
val_dataloader.dataset.update(
    data_root=synthetic_root + '/rrsisd',
    pipeline=teacher_forced_test_pipeline)
test_dataloader.dataset.update(
    data_root=synthetic_root + '/rrsisd',
    pipeline=teacher_forced_test_pipeline)
