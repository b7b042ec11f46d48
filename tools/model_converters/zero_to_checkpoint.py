"""Turn a DeepSpeed ZeRO checkpoint folder into one checkpoint file.

    python tools/model_converters/zero_to_checkpoint.py ZERO_FOLDER OUT_FILE

ZERO_FOLDER is what a FlexibleRunner run with a DeepSpeed strategy saves
(``work_dirs/NAME/iter_N.pth/``, a folder: DeepSpeed's model-state and
per-rank optimizer-state files), or the work dir itself (its
``last_checkpoint`` or DeepSpeed ``latest`` names the folder). DeepSpeed's
own consolidation (``deepspeed.utils.zero_to_fp32``) gathers the fp32
weights of every rank; OUT_FILE is a ``.pth`` holding ``state_dict`` and
the run's ``meta`` (config text, iteration, seed), or a ``.safetensors``
file, which ``tools/test.py`` reads. It is written atomically: an
interrupted conversion leaves no OUT_FILE and an older one untouched.

The optimizer state and the message hub stay in the folder (resume from
it). DeepSpeed reads the folder with full unpickling: convert only folders
you trust. Exit status: 0 written, 1 error.
"""
import argparse
import glob
import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

MODEL_STATES = '*model_states.pt'
OPTIM_STATES = '*optim_states.pt'


class NotAZeroCheckpoint(ValueError):
    """The input is not a DeepSpeed ZeRO checkpoint folder."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('zero_folder', help='the DeepSpeed checkpoint folder '
                        '(work_dirs/NAME/iter_N.pth) or its work dir')
    parser.add_argument('out_file', help='the file to write (.pth, .pt or '
                        '.safetensors)')
    return parser.parse_args(argv)


def find_tag_folder(path: str) -> str:
    """The folder holding the ZeRO files: ``path`` itself, or the one its
    ``last_checkpoint`` (MMEngine) or ``latest`` (DeepSpeed) names.

    Raises:
        NotAZeroCheckpoint: naming ``path`` and what is missing.
    """
    if not osp.exists(path):
        raise NotAZeroCheckpoint(f'{path} does not exist')
    if not osp.isdir(path):
        raise NotAZeroCheckpoint(
            f'{path} is a file, not a DeepSpeed ZeRO checkpoint folder (a '
            'single-file checkpoint needs no conversion: tools/test.py '
            'reads it)')
    if glob.glob(osp.join(path, MODEL_STATES)):
        return path
    for pointer in ('last_checkpoint', 'latest'):
        file = osp.join(path, pointer)
        if osp.isfile(file):
            with open(file) as f:
                named = f.read().strip()
            # last_checkpoint holds a path, latest a tag inside ``path``
            target = named if osp.isabs(named) else osp.join(path, named)
            if not osp.isdir(target):
                target = osp.join(path, osp.basename(named))
            if osp.isdir(target) and glob.glob(osp.join(target,
                                                        MODEL_STATES)):
                return target
    raise NotAZeroCheckpoint(
        f'{path} is not a DeepSpeed ZeRO checkpoint folder: it holds no '
        f'{MODEL_STATES} file (DeepSpeed writes mp_rank_00_model_states.pt '
        'under ZeRO-1/2, zero_pp_rank_<r>_mp_rank_00_model_states.pt under '
        'ZeRO-3) and no last_checkpoint or latest file naming such a '
        'folder')


def check_zero_folder(folder: str) -> dict:
    """What the folder's first model-state file says: ZeRO stage, world
    size, whether frozen weights were saved, and the run's ``meta``.

    Raises:
        NotAZeroCheckpoint: naming ``folder`` and what is missing.
    """
    import torch
    model_files = sorted(glob.glob(osp.join(folder, MODEL_STATES)))
    optim_files = sorted(glob.glob(osp.join(folder, OPTIM_STATES)))
    if not model_files:
        raise NotAZeroCheckpoint(f'{folder} holds no {MODEL_STATES} file')
    if not optim_files:
        raise NotAZeroCheckpoint(
            f'{folder} holds {osp.basename(model_files[0])} but no '
            f'{OPTIM_STATES} file: the fp32 weights of a ZeRO checkpoint are '
            'in the per-rank optimizer states (a folder saved with '
            'save_optimizer=False holds 16-bit weights only)')
    try:
        states = torch.load(model_files[0], map_location='cpu',
                            weights_only=False)
    except Exception as exc:
        raise NotAZeroCheckpoint(
            f'{model_files[0]} is unreadable ({type(exc).__name__}: '
            f'{exc})') from None
    if not isinstance(states, dict) or 'ds_config' not in states:
        raise NotAZeroCheckpoint(
            f'{model_files[0]} is not a DeepSpeed model-state file (no '
            'ds_config)')
    zero = (states['ds_config'].get('zero_optimization') or {})
    stage = int(zero.get('stage', 0))
    world = int(states.get('dp_world_size', len(optim_files)))
    if stage not in (1, 2, 3):
        raise NotAZeroCheckpoint(
            f'{folder} was saved without ZeRO (stage {stage}); its '
            f'{osp.basename(model_files[0])} holds the model already')
    if len(optim_files) != world:
        raise NotAZeroCheckpoint(
            f'{folder} holds {len(optim_files)} {OPTIM_STATES} file(s) but '
            f'was saved by {world} ranks: a copy is incomplete')
    info = dict(
        folder=folder,
        stage=stage,
        world_size=world,
        frozen_saved=states.get('frozen_param_shapes') is not None,
        ds_version=str(states.get('ds_version')),
        meta=dict(states.get('meta') or {}))
    return info


def consolidate(folder: str) -> dict:
    """fp32 state dict of the model saved in ``folder``, gathered from
    every rank by DeepSpeed's ``zero_to_fp32``."""
    from deepspeed.utils.zero_to_fp32 import \
        get_fp32_state_dict_from_zero_checkpoint
    parent, tag = osp.split(osp.abspath(folder))
    try:
        state = get_fp32_state_dict_from_zero_checkpoint(
            parent, tag=tag)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise NotAZeroCheckpoint(
            f'{folder}: DeepSpeed could not consolidate it '
            f'({type(exc).__name__}: {exc})') from None
    # plain tensors: some come back still requiring grad
    return {k: v.detach() for k, v in state.items()}


def write_checkpoint(state: dict, meta: dict, path: str) -> None:
    """``{'state_dict', 'meta'}`` (``.pth``/``.pt``) or a safetensors file,
    written to a hidden sibling and renamed onto ``path``."""
    import torch

    from geopixel.utils.files import replacing
    with replacing(path) as tmp:
        if path.endswith('.safetensors'):
            from safetensors.torch import save_file

            # zero_to_fp32 may return views of one flat buffer; safetensors
            # wants one storage per tensor
            save_file({k: v.clone().contiguous()
                       for k, v in state.items()}, tmp,
                      metadata={k: str(v) for k, v in meta.items()
                                if k != 'cfg'})
        else:
            torch.save(dict(state_dict=state, meta=meta), tmp)


def convert(zero_folder: str, out_file: str) -> dict:
    """Consolidate ``zero_folder`` into ``out_file``; returns the summary
    (folder, stage, world size, tensors, parameters, frozen weights)."""
    if not out_file.endswith(('.pth', '.pt', '.safetensors')):
        raise NotAZeroCheckpoint(
            f'{out_file}: the output must end in .pth, .pt or .safetensors')
    folder = find_tag_folder(zero_folder)
    info = check_zero_folder(folder)
    state = consolidate(folder)
    meta = info.pop('meta')
    meta.update(converted_from=osp.abspath(folder),
                zero_stage=info['stage'], ds_version=info['ds_version'],
                frozen_weights_saved=info['frozen_saved'])
    write_checkpoint(state, meta, out_file)
    info.update(tensors=len(state),
                parameters=sum(v.numel() for v in state.values()))
    return info


def main(argv=None):
    args = parse_args(argv)
    info = convert(args.zero_folder, args.out_file)
    print(f'{info["folder"]}: ZeRO-{info["stage"]}, {info["world_size"]} '
          f'rank(s) -> {args.out_file}: {info["tensors"]} tensors, '
          f'{info["parameters"]:,} values (fp32)')
    if not info['frozen_saved']:
        print('note: the run saved no frozen weights '
              '(exclude_frozen_parameters=True): the file holds the weights '
              'that trained. tools/test.py names the missing frozen keys; '
              'when they all come from files the config loads (CLIP, SAM2, '
              'the LLM base), evaluate with --non-strict', file=sys.stderr)


if __name__ == '__main__':
    from geopixel.utils import run_tool
    run_tool(main, (NotAZeroCheckpoint, ))
