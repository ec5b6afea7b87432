"""Run benchmarks on this tree and on another commit, interleaved, and compare their tables.

    python benchmarks/compare_commits.py REV [--bench mixing loader eval] [--rounds 2]
                                             [-- extra args for every benchmark]

REV is checked out (``git worktree``) into a temporary folder; each round runs every benchmark
once per tree, alternating which tree goes first, each in a fresh process with that tree on
``PYTHONPATH`` and its own ``benchmarks/<name>.py`` (each commit measured with its own API).
Every markdown table row the benchmarks print is parsed (first cell = row label, numeric
cells kept); a row label found in both trees' output gets its per-column median over rounds,
and the ratio this tree / REV. For throughput columns (per second, ``x`` factors) higher is
better; for times (``s``, ``ms``, ``us``) lower is. Raw outputs are kept under ``--log``.

Default arguments per benchmark keep a run short and peer-free: mixing ``--no-peer --repeat 3``,
loader ``--no-peer --no-memory``, eval ``--museval-runs 1 --repeat 3``.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
DEFAULTS = {"mixing": ["--no-peer", "--repeat", "3"],
            "loader": ["--no-peer", "--no-memory"],
            "eval": ["--museval-runs", "1", "--repeat", "3"]}
NUMBER = re.compile(r"^[~≈]?\s*(-?[0-9][0-9,]*\.?[0-9]*(?:e-?[0-9]+)?)\s*([a-zA-Zµ×%/]*)$")


def run(tree: Path, bench: str, extra: list[str], log: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(tree / "benchmarks" / f"{bench}.py"), *DEFAULTS.get(bench, []),
           *extra]
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    log.write_text(f"$ {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    if out.returncode:
        raise SystemExit(f"{bench} failed in {tree} (exit {out.returncode}); see {log}")
    return out.stdout


def rows(text: str) -> dict[str, dict[str, float]]:
    """Markdown table rows: label -> {column header: number} (non-numeric cells dropped)."""
    out, header = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):
            continue
        if header is None:
            header = cells
            continue
        values = {}
        for h, c in zip(header[1:], cells[1:]):
            m = NUMBER.match(c.replace(" ", ""))
            if m:
                values[f"{h} [{m.group(2)}]" if m.group(2) else h] = \
                    float(m.group(1).replace(",", ""))
        if values:
            out[cells[0]] = values
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the commit to compare with (e.g. the pre-refactor one)")
    ap.add_argument("--bench", nargs="+", default=["mixing", "loader", "eval"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "compare-commits")
    a = ap.parse_args(argv)
    a.log.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(old), a.rev],
                       check=True, capture_output=True)
        try:
            trees = {"this": HERE, a.rev[:10]: old}
            got: dict = {b: {t: [] for t in trees} for b in a.bench}
            for r in range(a.rounds):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for b in a.bench:
                    for t in order:
                        print(f"round {r + 1}: {b} on {t} ...", file=sys.stderr, flush=True)
                        got[b][t].append(rows(run(trees[t], b, extra,
                                                  a.log / f"{b}-{t}-{r + 1}.txt")))
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(old)],
                           capture_output=True)
    this, that = list(trees)
    for b in a.bench:
        print(f"\n## {b}: this tree vs {that} (median of {a.rounds} rounds; ratio this/{that})\n")
        print(f"| row | column | this | {that} | ratio |")
        print("|---|---|---:|---:|---:|")
        labels = [k for k in got[b][this][0] if all(k in run_ for run_ in got[b][that])]
        for label in labels:
            for col in got[b][this][0][label]:
                mine = [run_[label].get(col) for run_ in got[b][this]]
                theirs = [run_[label].get(col) for run_ in got[b][that]]
                if None in mine or None in theirs:
                    continue
                m, t = statistics.median(mine), statistics.median(theirs)
                ratio = f"{m / t:.3f}" if t else "–"
                print(f"| {label} | {col} | {m:g} | {t:g} | {ratio} |")
    print(f"\nraw outputs: {a.log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
