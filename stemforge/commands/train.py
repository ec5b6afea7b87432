"""``stemforge train --index ROOT --recipe R.yaml --steps N --out DIR [--resume]``: train the
mask separator (stemforge.train) on mixtures drawn by a recipe; checkpoints in DIR."""
from __future__ import annotations

from ._common import add_dataset_args, count, open_index


def add_train_args(p) -> None:
    """Training options shared by ``train`` and ``experiment``."""
    p.add_argument("--steps", type=int, required=True, help="optimisation steps")
    p.add_argument("--batch-size", type=int, default=8, help="mixtures per step (default 8)")
    p.add_argument("--batches-per-epoch", type=int, default=64,
                   help="steps per epoch; item i of epoch e is a fresh mixture (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--seed", type=count, default=0, help="model init and data seed (default 0)")
    p.add_argument("--valid-every", type=int, default=100,
                   help="validate every N steps (default 100; also at the end)")
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="write checkpoint.pt every N steps (default 100; also at the end)")
    p.add_argument("--loader-workers", type=int, default=0,
                   help="DataLoader worker processes (default 0: render in the main process)")
    p.add_argument("--hidden", type=int, default=64, help="model width (default 64)")
    p.add_argument("--n-fft", type=int, default=1024, help="STFT size (default 1024)")
    p.add_argument("--hop", type=int, default=256, help="STFT hop (default 256)")
    p.add_argument("--max-bin", type=int, default=None,
                   help="STFT bins the network sees (default: all; masks always cover all)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def train_config(args, valid_split):
    from ..train.loop import TrainConfig

    return TrainConfig(steps=args.steps, batch_size=args.batch_size,
                       batches_per_epoch=args.batches_per_epoch, lr=args.lr, seed=args.seed,
                       valid_every=args.valid_every, checkpoint_every=args.checkpoint_every,
                       valid_split=valid_split, num_workers=args.loader_workers)


def model_kw(args) -> dict:
    return {"hidden": args.hidden, "n_fft": args.n_fft, "hop": args.hop, "max_bin": args.max_bin}


def set_threads(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_parser(sub):
    p = sub.add_parser("train", help="train a small mask-based separator on mixtures drawn by "
                       "a recipe (checkpoints, resume, validation on full-track excerpts)")
    p.add_argument("--index", required=True, metavar="ROOT", dest="root",
                   help="dataset root or its index.jsonl")
    p.add_argument("--recipe", required=True, metavar="RECIPE.yaml", help="training recipe")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (checkpoint.pt, "
                   "best.pt, history.csv)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--valid-split", default="test",
                   help="split for validation, or 'none' (default: test)")
    add_train_args(p)
    add_dataset_args(p, positional=False)
    return p


def run(args) -> int:
    from ..mixing.recipe import Recipe
    from ..train.loop import model_config_for, train

    set_threads(args)
    recipe = Recipe.load(args.recipe)
    index = open_index(args)
    valid = None if args.valid_split == "none" else args.valid_split
    res = train(recipe, index, args.out, train_config(args, valid),
                model_config_for(recipe, **model_kw(args)), resume=args.resume,
                device=args.device, progress=not args.no_progress)
    last = res.history[-1] if res.history else {}
    vl = last.get("valid_loss")
    print(f"trained {res.step} steps ({res.model.n_parameters()} parameters); "
          f"train loss {last.get('train_loss', float('nan')):.4f}"
          + (f", valid loss {vl:.4f}" if vl is not None else "") + f" -> {args.out}")
    return 0
