"""One sample as the model sees it."""
from mmengine.structures import BaseDataElement


class GeoPixelDataSample(BaseDataElement):
    """Text, ground-truth masks and (after prediction) outputs of one sample.

    Data fields (tensors, set by the pipeline):
        input_ids: [L] int64 text ids (BOS, chat template, answer, EOS).
        labels: [L] int64 CE targets aligned with ``input_ids`` (-100 =
            ignored); absent for generation prompts.
        gt_masks: [N, H, W] uint8 at the original image size; the k-th
            ``[SEG]`` of ``input_ids`` owns ``gt_masks[k]``.

    Meta fields (set by the pipeline): ``img_path``, ``ori_shape``,
    ``hd_grid``, ``num_image_tokens``, ``image_token_index`` (where the image
    tokens go in ``input_ids``), ``phrases``, ``conversation_text``, ``task``,
    plus dataset-specific ids (``record_id``, ``ref_id``, ``sent_id``...).

    Prediction fields (set by the model): ``pred_text``, ``pred_phrases``,
    ``pred_masks``.
    """
