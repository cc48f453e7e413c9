"""The crash-safe writers every saver shares (diffusers_led.serialization): what stays on disk when a step fails."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from diffusers_led.serialization import (
    atomic_write,
    commit_folder,
    process_alive,
    remove_stale_shards,
    replace_folder,
    staging_folder,
    write_text_atomically,
)


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_atomic_write_never_replaces_without_overwrite_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, lambda stream: stream.write(b"first"), overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write(target, lambda stream: stream.write(b"second"), overwrite=False)
    assert target.read_bytes() == b"first"

    def fails(stream):
        stream.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fails)
    assert target.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    atomic_write(target, lambda stream: stream.write(b"second"))
    assert target.read_bytes() == b"second"


def test_write_text_atomically_goes_through_name_tmp(tmp_path):
    target = tmp_path / "report.json"
    (tmp_path / "report.json.tmp").write_text("torn by a killed writer")
    write_text_atomically(target, "{}\n")
    assert _tree(tmp_path) == {"report.json": "{}\n"}


def test_commit_folder_merges_into_an_existing_folder_and_drops_stale_shards(tmp_path):
    final = tmp_path / "model"
    (final / "unet").mkdir(parents=True)
    (final / "unet" / "w-00001-of-00002.safetensors").write_text("old 1")
    (final / "unet" / "w-00002-of-00002.safetensors").write_text("old 2")
    (final / "checkpoint-10").mkdir()
    (final / "checkpoint-10" / "state.json").write_text("kept")
    with staging_folder(final, "saving") as staging:
        (staging / "unet").mkdir()
        (staging / "unet" / "w.safetensors").write_text("new")
        (staging / "model_index.json").write_text("{}")
        written = commit_folder(staging, final, last=("model_index.json",))
        assert written[-1].name == "model_index.json"
        remove_stale_shards(written)
    assert _tree(final) == {"checkpoint-10/state.json": "kept", "model_index.json": "{}", "unet/w.safetensors": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the staging folder is gone


def test_commit_folder_renames_into_a_new_place_and_refuses_a_file(tmp_path):
    with staging_folder(tmp_path / "new") as staging:
        (staging / "a.txt").write_text("a")
        commit_folder(staging, tmp_path / "new")
    assert _tree(tmp_path / "new") == {"a.txt": "a"}
    (tmp_path / "file").write_text("x")
    with staging_folder(tmp_path / "file") as staging, pytest.raises(NotADirectoryError):
        (staging / "a.txt").write_text("a")
        commit_folder(staging, tmp_path / "file")


def test_replace_folder_puts_the_old_folder_back_when_the_rename_fails(tmp_path):
    final = tmp_path / "encoder"
    final.mkdir()
    (final / "weights").write_text("old")
    with pytest.raises(FileNotFoundError):
        replace_folder(tmp_path / "missing", final)
    assert _tree(tmp_path) == {"encoder/weights": "old"}
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "weights").write_text("new")
    replace_folder(staged, final)
    assert _tree(tmp_path) == {"encoder/weights": "new"}


def test_staging_folders_of_dead_processes_are_removed(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(ended.stdout)
    assert process_alive(os.getpid()) and not process_alive(dead)
    left = tmp_path / f".model.saving-{dead}-0badcafe"
    alive = tmp_path / f".model.saving-{os.getpid()}-0000cafe"
    other = tmp_path / f".model.tmp-{dead}-0badcafe"  # another kind of staging folder is not touched
    for folder in (left, alive, other):
        folder.mkdir()
    with staging_folder(tmp_path / "model", "saving") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(f".model.saving-{os.getpid()}-")
    assert not left.exists() and alive.exists() and other.exists()
