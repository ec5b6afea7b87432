"""Item generators at a fraction of ``SeedSequence``'s cost, drawing the same numbers.

Every item's generator is ``default_rng(SeedSequence([seed, epoch, item]))`` (see
:func:`stemforge.mixing.sample.item_rng`). Building one is slow for a hot loop: SeedSequence
hashes its entropy in Python-level numpy calls, and PCG64 asks it for its state through more of
them. This module computes the same PCG64 state directly:

1. ``SeedSequence``'s entropy pool for the three 32-bit words ``[seed, epoch, item]`` (pool
   size 4, no spawn key): each word and a zero hashed in, then every pool word mixed into
   every other. From the pool, ``generate_state(4, uint64)`` makes eight output words. These
   are M. O'Neill's ``seed_seq`` hash constants as numpy uses them. :func:`_pool_words` does
   this for many items in one compiled call.
2. PCG64's seeding from those four 64-bit words: ``initstate = w0:w1``, ``inc = (w2:w3 << 1)
   | 1``; ``state = ((inc + initstate) * MULT + inc) mod 2**128``. This is two LCG steps from
   state 0, with ``initstate`` added after the first.
3. That state is set on a reused ``PCG64``/``Generator`` pair, one per thread.

Only triples whose three values fit in 32 bits take this path (SeedSequence turns larger ints
into several words). Others, and any platform where the check below fails, build the
generator the ordinary way. ``tests/test_seeding.py`` compares the states and the draws with
numpy's, for edge and random triples.
"""
from __future__ import annotations

import threading

import numpy as np

_M32 = 0xFFFFFFFF
_M128 = (1 << 128) - 1
_U32 = 1 << 32
#: PCG64's 128-bit LCG multiplier (``PCG_DEFAULT_MULTIPLIER_128``)
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341

# seed_seq constants: hashing into the pool (A), and out of it (B); mixing pool words (L, R)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715


def _hash_steps(init: int, mult: int, n: int) -> np.ndarray:
    """The (xor, multiply) constant pairs of ``n`` successive hash calls, uint64 ``(n, 2)``.

    The hash constant evolves the same way whatever is hashed (``h ^= c; c *= mult; h *= c``),
    so the pairs can be computed once."""
    out, c = [], init
    for _ in range(n):
        nxt = (c * mult) & _M32
        out.append((c, nxt))
        c = nxt
    return np.array(out, dtype=np.uint64)


_HASH_IN = _hash_steps(_INIT_A, _MULT_A, 16)   # 4 words hashed in + 12 cross-mixes
_HASH_OUT = _hash_steps(_INIT_B, _MULT_B, 8)   # 8 output words (4 x uint64)

_kernel = None


def _compile():
    from .._jit import njit

    hash_in, hash_out = _HASH_IN, _HASH_OUT  # frozen into the machine code as constants
    mix_l, mix_r = np.uint64(_MIX_L), np.uint64(_MIX_R)

    @njit
    def pool_words(entropy):
        """uint64 ``(N, 4)``: each row's ``generate_state(4, uint64)`` from its 3 words."""
        n = entropy.shape[0]
        out = np.empty((n, 4), np.uint64)
        m32 = np.uint64(0xFFFFFFFF)
        s16 = np.uint64(16)
        pool = np.empty(4, np.uint64)
        for r in range(n):
            for i in range(4):
                v = np.uint64(entropy[r, i]) if i < 3 else np.uint64(0)
                v = ((v ^ hash_in[i, 0]) * hash_in[i, 1]) & m32
                pool[i] = v ^ (v >> s16)
            k = 4
            for src in range(4):
                for dst in range(4):
                    if src != dst:
                        v = ((pool[src] ^ hash_in[k, 0]) * hash_in[k, 1]) & m32
                        v ^= v >> s16
                        k += 1
                        # (L * x - R * y) mod 2**32: uint64 arithmetic wraps mod 2**64
                        x = (mix_l * pool[dst] - mix_r * v) & m32
                        pool[dst] = x ^ (x >> s16)
            for j in range(4):
                lo = ((pool[(2 * j) & 3] ^ hash_out[2 * j, 0]) * hash_out[2 * j, 1]) & m32
                lo ^= lo >> s16
                hi = ((pool[(2 * j + 1) & 3] ^ hash_out[2 * j + 1, 0])
                      * hash_out[2 * j + 1, 1]) & m32
                hi ^= hi >> s16
                out[r, j] = lo | (hi << np.uint64(32))
        return out

    return pool_words


def _pool_words(entropy: np.ndarray) -> np.ndarray:
    """uint64 ``(N, 4)`` seed words for uint32 ``(N, 3)`` entropy rows (one compiled call)."""
    global _kernel
    if _kernel is None:
        _kernel = _compile()
    return _kernel(entropy)


def _states(seed: int, epoch: int, items: list) -> list[tuple[int, int]]:
    ent = np.array([(seed, epoch, i) for i in items], np.uint32).reshape(-1, 3)
    out = []
    for a, b, c, d in _pool_words(ent).tolist():
        inc = ((((c << 64) | d) << 1) | 1) & _M128
        out.append(((((inc + ((a << 64) | b)) & _M128) * _PCG_MULT + inc) & _M128, inc))
    return out


_agrees: bool | None = None


def _check() -> bool:
    """Once per process: this module's states equal numpy's own for two triples (guards
    against a numpy that seeds differently; the ordinary path is used then)."""
    global _agrees
    if _agrees is None:
        triples = [(0, 0, 0), (_M32, 7, 123456789)]
        want = []
        for t in triples:
            st = np.random.PCG64(np.random.SeedSequence(list(t))).state
            want.append((st["state"]["state"], st["state"]["inc"]))
        _agrees = [_states(a, b, [c])[0] for a, b, c in triples] == want
    return _agrees


def pcg64_states(seed: int, epoch: int, items) -> list[tuple[int, int]] | None:
    """PCG64 ``(state, inc)`` of ``default_rng(SeedSequence([seed, epoch, i]))`` for each
    ``i`` of ``items``; None when a value does not fit in 32 bits (use SeedSequence then) or
    this numpy seeds differently."""
    items = [int(i) for i in items]
    seed, epoch = int(seed), int(epoch)
    if not (0 <= seed < _U32 and 0 <= epoch < _U32 and
            (not items or (0 <= min(items) and max(items) < _U32))) or not _check():
        return None
    return _states(seed, epoch, items)


class ItemGenerators:
    """Hands out item generators: one ``PCG64``/``Generator`` pair per thread, re-seeded per
    item (``get(state)``). The generator handed out is valid until the same thread asks for
    the next one: callers draw an item completely before asking again."""

    def __init__(self):
        self._local = threading.local()

    def __getstate__(self):  # pickled (spawned workers): nothing to carry, a fresh pair there
        return {}

    def __setstate__(self, state):
        self._local = threading.local()

    def get(self, state: tuple[int, int]) -> np.random.Generator:
        pair = getattr(self._local, "pair", None)
        if pair is None:
            bg = np.random.PCG64(0)
            pair = self._local.pair = (bg, np.random.Generator(bg))
        pair[0].state = {"bit_generator": "PCG64", "state": {"state": state[0], "inc": state[1]},
                         "has_uint32": 0, "uinteger": 0}
        return pair[1]
