"""Rewrite the golden outputs (``tests/golden/<case>.json``) from the current code.

Run only for a deliberate change of what recipes produce, and record it in CHANGELOG.md::

    python tests/golden/regenerate.py [CASE ...]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden import CASES, EPOCH, SEED, build_indexes, golden_path, render_case  # noqa: E402


def main(argv: list[str]) -> int:
    names = argv or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("STEMFORGE_CACHE_DIR", str(Path(tmp) / "sfcache"))
        indexes = build_indexes(Path(tmp))
        for name in names:
            case = CASES[name]
            record = {"case": name, "recipe": case["recipe"],
                      "overrides": case.get("overrides") or {}, "seed": SEED, "epoch": EPOCH,
                      "items": render_case(case, indexes)}
            golden_path(name).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            print(f"wrote {golden_path(name)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
