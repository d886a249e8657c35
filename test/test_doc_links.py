"""Every Markdown file the repository cites exists in it, and the docs' relative links resolve.

* Citations: any ``*.md`` path named in the sources, tests, benchmarks, config, launch files,
  README.md or docs/ (``docs/algorithm.md``, ``parameters.md#per-env-presets``, a bare
  ``bags.md``) must be a file of this repository: relative to the citing file, to the repository
  root, or (a bare name) in docs/. Notes that live outside the repository cannot be read by
  its users; state the fact where it is used, or cite the repository's own docs.
* Links: every relative Markdown link (and image) in README.md and docs/*.md points to an
  existing file, and a ``#fragment`` on a Markdown target names one of its headings (GitHub's
  anchors).
"""
from __future__ import annotations

from pathlib import Path
import re

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ('loop_ros/**/*.py', 'bench/**/*.py', 'test/**/*.py', 'launch/*.py', 'config/*.yaml',
           'README.md', 'docs/**/*.md')
CITATION = re.compile(r'(?<![\w/.-])((?:\.{1,2}/)?[\w./-]*[\w-]\.md)(?:#([\w-]+))?\b')
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
EXTERNAL = re.compile(r'^[a-z][a-z0-9+.-]*:', re.I)   # http:, https:, mailto:, ...
WRITTEN = {'table.md', 'tune.md'}
"""Markdown files the code writes into an output folder (``loop-ros eval-offline``, bench/):
output names, not citations."""

PENDING: dict[str, set[str]] = {}
"""Scanned files allowed to cite a note outside the repository (none): an entry that no longer
occurs fails, so the list can only shrink."""


def scanned_files() -> list[Path]:
    files = {p for pattern in SCANNED for p in ROOT.glob(pattern)
             if p.is_file() and '__pycache__' not in p.parts}
    return sorted(files - {Path(__file__).resolve()})   # not this test's own examples


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def resolve(cited: str, citing: Path) -> Path | None:
    """The repository file a citation names, or None."""
    candidates = [citing.parent / cited, ROOT / cited]
    if '/' not in cited:
        candidates.append(ROOT / 'docs' / cited)
    for candidate in candidates:
        if candidate.resolve().is_file() and ROOT in candidate.resolve().parents:
            return candidate.resolve()
    return None


def citations(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, cited path, fragment)`` of every ``*.md`` path named in ``path``."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for match in CITATION.finditer(line):
            word = line[:match.start(1)].split()[-1:] or ['']
            if '://' in word[0] + match.group(1) or Path(match.group(1)).name in WRITTEN:
                continue   # part of a URL, or an output file's name
            found.append((number, match.group(1), match.group(2)))
    return found


def github_anchors(markdown: str) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to hyphens."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.lstrip().startswith('```'):
            in_code = not in_code
            continue
        heading = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if in_code or not heading:
            continue
        text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading.group(1))   # link text only
        slug = re.sub(r'[^\w\- ]', '', text.strip().lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f'{slug}-{count}')
    return anchors


def test_scans_the_repository() -> None:
    files = {_rel(p) for p in scanned_files()}
    assert {'README.md', 'docs/algorithm.md', 'loop_ros/core/ensemble.py', 'bench/planner.py',
            'test/conftest.py', 'config/rccar.yaml', 'launch/rccar.launch.py'} <= files
    cited = {c for p in scanned_files() for _, c, _ in citations(p)}
    assert {'docs/algorithm.md', 'docs/parameters.md', 'bags.md'} <= cited


def test_citation_and_anchor_rules(tmp_path: Path) -> None:
    sample = tmp_path / 'x.py'
    sample.write_text('"""See docs/algorithm.md, `bags.md` and parameters.md#per-env-presets;\n'
                      'https://example.org/docs/other.md is a URL, README.md. '
                      'no-such-note.md"""\n')
    assert [(c, f) for _, c, f in citations(sample)] == [
        ('docs/algorithm.md', None), ('bags.md', None), ('parameters.md', 'per-env-presets'),
        ('README.md', None), ('no-such-note.md', None)]
    assert resolve('docs/algorithm.md', sample) == ROOT / 'docs' / 'algorithm.md'
    assert resolve('bags.md', sample) == ROOT / 'docs' / 'bags.md'
    assert resolve('no-such-note.md', sample) is None
    assert github_anchors('# A b\n### InvertedPendulum-v5, 5000 steps (`bench/learning.py`)\n'
                          '```\n# not a heading\n```\n## A b\n') == {
        'a-b', 'invertedpendulum-v5-5000-steps-benchlearningpy', 'a-b-1'}


@pytest.mark.parametrize('path', scanned_files(), ids=_rel)
def test_cited_markdown_files_exist(path: Path) -> None:
    pending = PENDING.get(_rel(path), set())
    missing, pending_seen = [], set()
    for number, cited, fragment in citations(path):
        target = resolve(cited, path)
        if target is None:
            if Path(cited).name in pending:
                pending_seen.add(Path(cited).name)
                continue
            missing.append(f'{_rel(path)}:{number}: {cited} is not in the repository')
        elif fragment and target.suffix == '.md' and \
                fragment not in github_anchors(target.read_text()):
            missing.append(f'{_rel(path)}:{number}: {cited}#{fragment}: no such heading')
    assert not missing, '\n'.join(missing)
    assert pending_seen == pending, \
        f'fixed: delete {sorted(pending - pending_seen)} of {_rel(path)} from PENDING'


def test_pending_entries_are_scanned_files() -> None:
    files = {_rel(p) for p in scanned_files()}
    assert set(PENDING) <= files


MARKDOWN = sorted([ROOT / 'README.md', *(ROOT / 'docs').glob('**/*.md')])


@pytest.mark.parametrize('path', MARKDOWN, ids=_rel)
def test_relative_markdown_links_resolve(path: Path) -> None:
    text = path.read_text()
    bad = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in LINK.finditer(line):
            target = match.group(1)
            if EXTERNAL.match(target):
                continue
            file_part, _, fragment = target.partition('#')
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists() or ROOT not in dest.parents:
                bad.append(f'{_rel(path)}:{number}: {target}: no such file in the repository')
            elif fragment and dest.suffix == '.md' and \
                    fragment not in github_anchors(dest.read_text()):
                bad.append(f'{_rel(path)}:{number}: {target}: no heading #{fragment}')
    assert not bad, '\n'.join(bad)
