"""`backdrop demo --out DIR` clears its own earlier results and nothing else of DIR."""

from __future__ import annotations

from pathlib import Path

from backdrop.demo.run import _clear_earlier_results


def test_an_earlier_run_is_cleared_but_the_users_own_files_stay(tmp_path: Path):
    (tmp_path / "outputs" / "shop").mkdir(parents=True)
    (tmp_path / "outputs" / "shop" / "old.png").write_bytes(b"old")
    (tmp_path / "as-stored" / "shop").mkdir(parents=True)
    (tmp_path / "as-stored" / "shop" / "old.jpg.png").write_bytes(b"old")
    (tmp_path / "index.html").write_text("old sheet")
    (tmp_path / "function.log").write_text("old log")
    (tmp_path / "notes.txt").write_text("the user's own")
    (tmp_path / "src").mkdir()
    _clear_earlier_results(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", "src"]


def test_a_folder_that_does_not_exist_yet_is_fine(tmp_path: Path):
    _clear_earlier_results(tmp_path / "new")
    assert not (tmp_path / "new").exists()
