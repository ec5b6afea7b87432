"""``import stemforge`` (and the mixing engine) must work without torch installed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HIDE_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTorch())
"""

CODE = HIDE_TORCH + """
import stemforge, stemforge.mixing.mixer, stemforge.mixing.render, stemforge.index
import stemforge.augment, stemforge.prepare, stemforge.cli
stemforge.Mixer, stemforge.Recipe, stemforge.Index
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
try:
    import stemforge.torch
except ImportError as e:
    print("ERR", e)
"""


def test_import_without_torch():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ERR stemforge.torch needs PyTorch (pip install torch); the rest of stemforge " \
           "works without it" in r.stdout
