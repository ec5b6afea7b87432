"""docs/tutorial.md runs: every fenced block is executed, in order, in an empty folder.

Block kinds (the fence's info string):
* ``bash``: each line (``\\`` continuations joined, ``#`` comments dropped) must be a
  ``stemforge ...`` command; it runs through :func:`stemforge.cli.main` and must exit 0;
* ``python``: executed in one namespace shared by all python blocks;
* ``yaml file=PATH``: written to PATH;
* ``text``: sample output, not executed.
Any other block fails the test, so nothing in the tutorial is silently left unchecked.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from stemforge.cli import main
from test_report import Page

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(.*)$")


@dataclass
class Block:
    info: str
    code: str
    line: int     # 1-based line of the opening fence

    @property
    def kind(self) -> str:
        return self.info.split()[0] if self.info.strip() else ""

    def option(self, name: str) -> str | None:
        for word in self.info.split()[1:]:
            k, _, v = word.partition("=")
            if k == name:
                return v
        return None


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced code block of a markdown text, in order."""
    blocks, cur, start, lines = [], None, 0, []
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if cur is None and m:
            cur, start, lines = m.group(1).strip(), n, []
        elif cur is not None and line.strip() == "```":
            blocks.append(Block(cur, "\n".join(lines) + "\n", start))
            cur = None
        elif cur is not None:
            lines.append(line)
    assert cur is None, f"{TUTORIAL}:{start}: unclosed code fence"
    return blocks


def shell_commands(code: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", code)
    return [ln.strip() for ln in joined.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def run_tutorial(path: Path, cwd: Path) -> dict:
    """Execute every block of ``path`` with ``cwd`` as working directory; return the python
    namespace. Raises AssertionError naming the tutorial line of the failing block."""
    ns: dict = {"__name__": "tutorial"}
    for b in fenced_blocks(path.read_text()):
        where = f"{path.name}:{b.line}"
        if b.kind == "text":
            continue
        if b.kind == "yaml":
            target = b.option("file")
            assert target, f"{where}: a yaml block needs file=PATH (or make it a text block)"
            (cwd / target).parent.mkdir(parents=True, exist_ok=True)
            (cwd / target).write_text(b.code)
        elif b.kind == "python":
            exec(compile(b.code, where, "exec"), ns)
        elif b.kind == "bash":
            for cmd in shell_commands(b.code):
                argv = shlex.split(cmd)
                assert argv[0] == "stemforge", f"{where}: not a stemforge command: {cmd}"
                rc = main(argv[1:])
                assert rc == 0, f"{where}: `{cmd}` exited {rc}"
        else:
            raise AssertionError(f"{where}: unknown block kind {b.info!r} (use bash, python, "
                                 "'yaml file=PATH' or text)")
    return ns


def test_tutorial_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns = run_tutorial(TUTORIAL, tmp_path)
    out = capsys.readouterr().out
    # what the reader is told to open exists and rendered without problems
    for rep, players in [("tutorial/report", 5 + 2 * 3),
                         ("tutorial/report-dataset", 5),
                         ("tutorial/report-modes", 2 * 2 * 3),
                         ("tutorial/report-augmented", 3 * 3)]:
        page = Page(tmp_path / rep / "index.html")
        assert page.problems == [], (rep, page.problems)
        assert len(page.audio) == players, rep
        assert f"report: {Path(rep) / 'index.html'}" in out
    assert "tutorial/augmented: all 3 items re-render byte-identically" in out
    assert ns["fired"] > 0


def test_tutorial_covers_the_chapter():
    """The chapter's steps are all there, as executed blocks."""
    blocks = fenced_blocks(TUTORIAL.read_text())
    kinds = {b.kind for b in blocks}
    assert kinds <= {"bash", "python", "yaml", "text"}
    commands = [c.split()[1] for b in blocks if b.kind == "bash" for c in shell_commands(b.code)]
    for c in ("demo", "info", "report", "generate", "regenerate"):
        assert c in commands, c
    python = "".join(b.code for b in blocks if b.kind == "python")
    for api in ("Index.open", "Mixer(", "render(", "MixSpec.load", "dataset_figures"):
        assert api in python, api
    yaml_files = [b.option("file") for b in blocks if b.kind == "yaml"]
    assert len(yaml_files) == len(set(yaml_files)) >= 3


def test_runner_reports_the_failing_line(tmp_path):
    """A broken block fails with the tutorial's file and line, not silently."""
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n\n```python\nx = 1\n```\n\n```bash\nstemforge info nowhere\n```\n")
    with pytest.raises(AssertionError, match=r"doc.md:7: `stemforge info nowhere` exited 2"):
        run_tutorial(doc, tmp_path)
    doc.write_text("```sh\nls\n```\n")
    with pytest.raises(AssertionError, match=r"doc.md:1: unknown block kind 'sh'"):
        run_tutorial(doc, tmp_path)
    doc.write_text("```bash\nls -l\n```\n")
    with pytest.raises(AssertionError, match=r"doc.md:1: not a stemforge command: ls -l"):
        run_tutorial(doc, tmp_path)
