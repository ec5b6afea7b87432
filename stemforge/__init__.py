"""stemforge: reproducible training and evaluation data for music source separation.

Public API (imported lazily so that ``import stemforge`` stays light and never needs torch)::

    index = stemforge.Index.build("path/to/musdb18")
    recipe = stemforge.Recipe.load("recipes/musdb_vocals.yaml")
    mixer = stemforge.Mixer(recipe, index)
    m = mixer.mixture(0, epoch=0)          # Mixture(mix, targets, spec)
    again = stemforge.render(m.spec, index)
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Index": ("stemforge.index", "Index"),
    "Track": ("stemforge.index", "Track"),
    "Stem": ("stemforge.index", "Stem"),
    "Recipe": ("stemforge.mixing.recipe", "Recipe"),
    "Mixer": ("stemforge.mixing.mixer", "Mixer"),
    "Mixture": ("stemforge.mixing.mixer", "Mixture"),
    "MixSpec": ("stemforge.mixing.spec", "MixSpec"),
    "render": ("stemforge.mixing.mixer", "render"),
    "StemforgeError": ("stemforge.errors", "StemforgeError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'stemforge' has no attribute {name!r}")
