"""One walk of a local project: the symlink check's listings serve the reads after it.

`reader._file_paths` walks as os.walk does (checked here against os.walk itself), and a
shared `Listings` makes the symlink check, the stage folders and the yaml file paths list
each folder once.
"""

from __future__ import annotations

import os
from pathlib import Path

from bodywork.core.config import reader
from bodywork.engine import confinement

SKIPPED = reader._SKIP_WALKING


def os_walk_paths(top: str) -> set[str]:
    """The reference: what the walk found with os.walk before it had its own."""
    found = set()
    for directory, subdirs, filenames in os.walk(top):
        subdirs[:] = [d for d in subdirs if d not in SKIPPED]
        relative = os.path.relpath(directory, top).replace(os.sep, "/")
        found |= {name if relative == "." else f"{relative}/{name}" for name in filenames}
    return found


def make_project(root: Path) -> Path:
    root.mkdir()
    (root / "bodywork.yaml").write_text('version: "1.1"\n')
    for folder in ("train", "serve", "lib/deep/er", ".git/objects", "__pycache__", "data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "main.py").write_text("print(1)\n")
    (root / "lib" / "deep" / "er" / "notes.txt").write_text("x")
    (root / "linked-folder").symlink_to("lib")  # listed as a folder, not entered
    (root / "linked-file.py").symlink_to("train/main.py")
    (root / "dangling").symlink_to("nowhere")
    return root


def test_the_walk_finds_what_os_walk_finds(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    paths, too_many = reader._file_paths(str(root))
    assert paths == os_walk_paths(str(root))
    assert not too_many
    assert "lib/deep/er/notes.txt" in paths and "linked-file.py" in paths and "dangling" in paths
    assert not any(p.startswith(("linked-folder/", ".git/", "__pycache__/")) for p in paths)


def test_the_walk_stops_at_the_file_cap_in_os_walk_order(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    every = sorted(os_walk_paths(str(root)))
    paths, too_many = reader._file_paths(str(root), max_files=3)
    assert too_many and len(paths) == 3
    # os.walk, topdown with folders in name order: the root's own files come first.
    assert paths == {"bodywork.yaml", "dangling", "linked-file.py"}
    assert paths < set(every)


def test_the_reads_go_by_the_listings_the_symlink_check_made(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    alone = reader.read_project_files(root)
    listings: reader.Listings = {}
    confinement.refuse_links_leaving(root, root, listings)
    listed = set(listings)
    assert str(root) in listed and str(root / "lib" / "deep") in listed
    assert str(root / "linked-folder") not in listed  # a link is not entered
    shared = reader.read_project_files(root, listings=listings)
    assert shared == alone
    # Every folder the reads needed was listed already, but for the linked top-level folder
    # (the stage folders' reading follows a link, as Path.is_dir does; the check does not).
    assert set(listings) - listed == {str(root / "linked-folder")}
    # And the reads use the listing, not the disk: a file removed since is still listed.
    (root / "lib" / "deep" / "er" / "notes.txt").unlink()
    again = reader.read_project_files(root, listings=listings)
    assert "lib/deep/er/notes.txt" in again.paths
    assert "lib/deep/er/notes.txt" not in reader.read_project_files(root).paths
