"""``stemforge train RECIPE --index ROOT --steps N --out DIR [--resume]``: train the mask
separator (stemforge.train) on mixtures drawn by a recipe; checkpoints in DIR."""
from __future__ import annotations

from ._common import (add_dataset_args, add_recipe_args, add_workers_arg, count, load_recipe,
                      open_index, workers)


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
    add_workers_arg(p, 1, "rendering training mixtures (DataLoader workers)",
                    "--loader-workers")
    p.add_argument("--hidden", type=int, default=64, help="model width (default 64)")
    p.add_argument("--n-fft", type=int, default=1024, help="STFT size (default 1024)")
    p.add_argument("--hop", type=int, default=256, help="STFT hop (default 256)")
    p.add_argument("--max-bin", type=int, default=None,
                   help="STFT bins the network sees (default: all; masks always cover all)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def train_config(args, valid_split):
    from ..train.loop import TrainConfig

    k = args.workers if args.workers is not None and args.workers > 0 else 1
    return TrainConfig(steps=args.steps, batch_size=args.batch_size,
                       batches_per_epoch=args.batches_per_epoch, lr=args.lr, seed=args.seed,
                       valid_every=args.valid_every, checkpoint_every=args.checkpoint_every,
                       valid_split=valid_split, num_workers=0 if k == 1 else k)


def model_kw(args) -> dict:
    return {"hidden": args.hidden, "n_fft": args.n_fft, "hop": args.hop, "max_bin": args.max_bin}


def set_threads(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def add_parser(sub):
    p = sub.add_parser("train", help="train a small mask-based separator on mixtures drawn by "
                       "a recipe (checkpoints, resume, validation on full-track excerpts)")
    add_recipe_args(p, required=False)
    p.add_argument("--recipe", dest="recipe_opt", metavar="RECIPE",
                   help="the recipe, as the positional RECIPE")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (checkpoint.pt, "
                   "best.pt, history.csv)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--valid-split", default="auto",
                   help="split to validate on and pick best.pt with, or 'none' (default: the "
                        "index's 'valid' split; an index without one needs a choice)")
    p.add_argument("--select-on-test", action="store_true",
                   help="allow --valid-split test: best.pt is then picked on the test set, so "
                        "scores on it are no longer a test")
    add_train_args(p)
    add_dataset_args(p, positional=False)
    return p


def valid_split(args, index) -> str | None:
    """The validation split of ``train``: ``--valid-split``, checked against the index."""
    from ..errors import StemforgeError
    from ..torch.validation import VALID_SPLITS

    have = sorted({str(t.split) for t in index.tracks})
    vs = args.valid_split
    if vs == "none":
        return None
    if vs == "auto":
        found = [v for v in VALID_SPLITS if v in have]
        if not found:
            raise StemforgeError(
                f"{index.root} has no 'valid' split (splits: {', '.join(have)}); choose what "
                "to validate on and pick best.pt with: --valid-split NAME, or --valid-split "
                "none (--valid-split test also needs --select-on-test)")
        return found[0]
    if vs == "test" and not args.select_on_test:
        raise StemforgeError("--valid-split test picks best.pt on the test set, so its test "
                             "scores are no longer held out; add --select-on-test to do it "
                             "anyway, or validate on another split (--valid-split NAME|none)")
    if vs != "all" and vs not in have:
        raise StemforgeError(f"--valid-split {vs}: {index.root} has no such split (splits: "
                             f"{', '.join(have)})")
    return vs


def run(args) -> int:
    from ..errors import StemforgeError
    from ..mixing.mixer import bind
    from ..train.loop import model_config_for, train

    if args.recipe and args.recipe_opt and args.recipe != args.recipe_opt:
        raise StemforgeError(f"two recipes given ({args.recipe} and --recipe {args.recipe_opt})")
    name = args.recipe or args.recipe_opt
    if not name:
        raise StemforgeError("no recipe given: stemforge train RECIPE --index ROOT ...")
    workers(args)
    set_threads(args)
    recipe = load_recipe(args, name)
    index = open_index(args)
    recipe = bind(recipe, index)
    res = train(recipe, index, args.out, train_config(args, valid_split(args, index)),
                model_config_for(recipe, **model_kw(args)), resume=args.resume,
                device=args.device, progress=not args.no_progress)
    last = res.history[-1] if res.history else {}
    vl = last.get("valid_loss")
    print(f"trained {res.step} steps ({res.model.n_parameters()} parameters); "
          f"train loss {last.get('train_loss', float('nan')):.4f}"
          + (f", valid loss {vl:.4f}" if vl is not None else "") + f" -> {args.out}")
    return 0
