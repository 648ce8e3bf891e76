"""The model summary: the README's table is what it prints, and a wrong folder is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolserve.repository.summary import main, markdown_table
from tests.service.conftest import REPOSITORY, ROOT


def test_the_readme_table_is_the_summary_of_the_committed_manifests() -> None:
    assert markdown_table(REPOSITORY) in (ROOT / "README.md").read_text()


def test_a_folder_that_is_not_a_repository_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nowhere")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "is not a directory" in line and "python -m poolserve.repository.summary PATH" in line
