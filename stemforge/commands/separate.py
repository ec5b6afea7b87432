"""``stemforge separate``: one file with a checkpoint, or a whole dataset split with any
separator.

    stemforge separate CHECKPOINT AUDIO --out DIR           DIR/<target>.wav for one file
    stemforge separate --index ROOT [--split test] --out EST
        (--checkpoint run/best.pt | --model pkg.module:factory | --command "tool {input} ...")
                                                            EST/<track>/<target>.wav
"""
from __future__ import annotations

from ._common import add_dataset_args, add_workers_arg, open_index, workers


def add_parser(sub):
    p = sub.add_parser(
        "separate", help="separate an audio file with a trained checkpoint, or every track of a "
        "dataset split with a checkpoint, a Python callable or an external command (the "
        "estimates layout `evaluate` reads)")
    p.add_argument("checkpoint_file", nargs="?", metavar="CHECKPOINT",
                   help="single-file form: checkpoint.pt or best.pt written by `stemforge train`")
    p.add_argument("audio", nargs="?", metavar="AUDIO",
                   help="single-file form: audio file (wav, flac, ...)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (<target>.wav, or <track>/<target>.wav with --index)")
    p.add_argument("--checkpoint", metavar="CKPT", help="dataset form: a stemforge checkpoint")
    p.add_argument("--model", metavar="MODULE:FACTORY",
                   help="dataset form: pkg.module:factory or file.py:factory; factory() returns "
                        "f(mix (C, T) float32, sample_rate) -> {target: (C, T) array}")
    p.add_argument("--command", dest="command_template", metavar="TEMPLATE",
                   help="dataset form: shell command run per track, e.g. 'umx {input} --outdir "
                        "{outdir}' ({input}: the mixture WAV, {outdir}: an empty folder, "
                        "{track}, {sr})")
    p.add_argument("--pattern", default="{outdir}/{target}.wav",
                   help="with --command: where it writes each target (placeholders {outdir}, "
                        "{target}, {stem} = mixture, {track}; default {outdir}/{target}.wav)")
    p.add_argument("--timeout", type=float, default=None,
                   help="with --command: seconds allowed per track (default: no limit)")
    p.add_argument("--targets", nargs="+", default=None, metavar="TARGET",
                   help="targets to write (default: the checkpoint's, else the dataset's stems)")
    p.add_argument("--split", default=None,
                   help="split name or 'all' (default: test if present, else all)")
    p.add_argument("--mixture", default="real", choices=["real", "sum"],
                   help="separate the real mixture when the dataset has one (default) or the "
                        "stem sum")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on an existing Dask cluster; --workers K > 1 starts a local one")
    p.add_argument("--device", default=None, help="torch device for checkpoints (default: "
                   "cuda if available)")
    p.add_argument("--chunk", type=float, default=30.0,
                   help="checkpoints: seconds processed at once (cross-faded; default 30)")
    add_dataset_args(p, positional=False, required=False,
                     what="dataset form: dataset root (any layout) or its index.jsonl; writes "
                          "OUT/<track name>/<target>.wav")
    add_workers_arg(p, 1, "the tracks (K > 1: a local Dask cluster)")
    return p


def run(args) -> int:
    from ..errors import StemforgeError

    options = {"checkpoint": "checkpoint", "model": "model", "command_template": "command"}
    given = [o for o in options if getattr(args, o)]
    k = workers(args)
    if args.root is None:
        if not (args.checkpoint_file and args.audio) or given:
            raise StemforgeError("expected CHECKPOINT AUDIO --out DIR (one file), or --index ROOT "
                                 "--out DIR with one of --checkpoint, --model, --command")
        from ..train.separate import separate_file

        files = separate_file(args.checkpoint_file, args.audio, args.out, device=args.device,
                              chunk=args.chunk, progress=not args.no_progress)
        print(f"separated {args.audio}: " + ", ".join(str(p) for p in files.values()))
        return 0
    if args.checkpoint_file or args.audio:
        raise StemforgeError("--index separates a dataset: give the separator as --checkpoint, "
                             "--model or --command, not as a positional argument")
    if len(given) != 1:
        raise StemforgeError("--index needs exactly one separator: --checkpoint CKPT, --model "
                             "MODULE:FACTORY or --command TEMPLATE (got "
                             f"{', '.join('--' + options[o] for o in given) or 'none'})")
    from ..jobs.separate import SeparatorSpec, run as run_separate
    from .evaluate import select_split

    kind = {"checkpoint": "checkpoint", "model": "callable",
            "command_template": "command"}[given[0]]
    spec = SeparatorSpec(kind, getattr(args, given[0]), pattern=args.pattern, device=args.device,
                         chunk=args.chunk, timeout=args.timeout)
    index = select_split(open_index(args), args.split)
    res = run_separate(index, args.out, spec, targets=args.targets, mixture=args.mixture,
                       workers=k, scheduler=args.scheduler,
                       progress=not args.no_progress)
    if res.skipped:
        print(f"skipped {len(res.skipped)} track(s) already separated in {args.out}")
    print(f"separated {len(res.written)} track(s) into {args.out}/<track>/"
          f"{{{','.join(res.targets)}}}.wav")
    return 0
