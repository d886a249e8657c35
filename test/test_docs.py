"""Documentation that is generated from code stays in sync with it."""
from __future__ import annotations

from pathlib import Path

from loop_ros.cli import parameters_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_parameter_reference_is_up_to_date():
    expected = parameters_markdown()
    actual = (ROOT / 'docs' / 'parameters.md').read_text()
    assert actual == expected, 'regenerate with: loop-ros params > docs/parameters.md'


def test_readme_links_exist():
    import re
    readme = (ROOT / 'README.md').read_text()
    assert readme.index('make demo') < readme.index('make test') < 600
    for link in re.findall(r'\]\(([^)#]+)\)', readme):
        if not link.startswith('http'):
            assert (ROOT / link).exists(), link
