"""stemforge.atomic: the one temp-file + rename writer behind every file stemforge writes."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from stemforge.atomic import atomic_file, write_bytes_atomic
from stemforge.audio.cache import StemCache
from stemforge.metrics import museval_json


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_writes_whole_file_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_bytes_atomic(tmp_path / "new" / "a.bin", b"abc")  # folder created
        with atomic_file(tmp_path / "b.txt", "w", fsync=False) as fh:
            fh.write("text")
        # the writers that used to hand-roll this left mkstemp's 0600 on their files
        cache = StemCache(tmp_path / "cache")
        npy = cache.put("k", np.zeros((2, 8), np.float32))
        js = museval_json.save(tmp_path / "r" / "t.json", {"targets": []})
    finally:
        os.umask(old)
    assert p.read_bytes() == b"abc" and (tmp_path / "b.txt").read_text() == "text"
    for f in (p, tmp_path / "b.txt", npy, js):
        assert _mode(f) == 0o644, f
    assert [f.name for f in tmp_path.rglob(".*.part")] == []


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_file(target, "w") as fh:
            fh.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_file(target, "ab"):
            pass
    assert target.read_text() == "old"
