"""``stemforge separate CHECKPOINT AUDIO --out DIR``: DIR/<target>.wav for any audio file."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("separate", help="separate an audio file with a trained checkpoint "
                       "(any sample rate; mono or the model's channel count)")
    p.add_argument("checkpoint", help="checkpoint.pt or best.pt written by `stemforge train`")
    p.add_argument("audio", help="audio file (wav, flac, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for <target>.wav")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--chunk", type=float, default=30.0,
                   help="seconds processed at once (cross-faded; default 30)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars and lines")
    return p


def run(args) -> int:
    from ..train.separate import separate_file

    files = separate_file(args.checkpoint, args.audio, args.out, device=args.device,
                          chunk=args.chunk, progress=not args.no_progress)
    print(f"separated {args.audio}: " + ", ".join(str(p) for p in files.values()))
    return 0
