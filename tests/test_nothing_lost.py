"""No user file is deleted, replaced or degraded, and no command ends in an abort or a traceback.

Each test reproduces one way a run used to lose a user's work (issue "nothing-lost") and checks the fixed behaviour.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diffusers_led import data
from diffusers_led.cli import prepare_data_main

from conftest import EXAMPLE_IMAGE, StubProcessor


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------------
# led-prepare-data deletes and replaces only what it wrote
# ---------------------------------------------------------------------------------------------------------------------


def _rafd_photos(folder: Path, subjects=("01", "02", "03", "04")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for subject in subjects:
        shutil.copy(EXAMPLE_IMAGE, folder / f"Rafd090_{subject}_Caucasian_female_happy_frontal.png")
    return folder


def _prepare(input_dir: Path, output_dir: Path, **kwargs) -> data.PrepareReport:
    kwargs = {"format": "rafd", "test_subjects": ["04"], "processor": StubProcessor(), "progress": False,
              "crop_size": 16, **kwargs}  # fmt: skip
    return data.prepare_dataset(input_dir, output_dir, **kwargs)


def test_prepare_data_refuses_an_output_folder_that_holds_the_input_photos(tmp_path, capsys):
    # The reproduction: the photos in D/train, the dataset asked for in D.
    photos = _rafd_photos(tmp_path / "D" / "train")
    before = _snapshot(tmp_path / "D")
    argv = ["--input_dir", str(photos), "--output_dir", str(tmp_path / "D"), "--format", "rafd", "--test_subjects",
            "04", "--quiet"]  # fmt: skip
    for extra in ([], ["--allow_other_files"]):  # crops among the photos: refused even when other files are allowed
        assert prepare_data_main(argv + extra) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is inside" in err and "where the crops are written" in err, err
        assert _snapshot(tmp_path / "D") == before, "nothing deleted, nothing written"

    # The photos elsewhere inside the output folder: refused unless allowed, and then left as they are.
    photos = _rafd_photos(tmp_path / "E" / "photos")
    before = _snapshot(photos)
    with pytest.raises(data.OutputFolderError, match="is inside --output_dir .* --allow_other_files"):
        _prepare(photos, tmp_path / "E")
    assert sorted(p.name for p in (tmp_path / "E").iterdir()) == ["photos"]
    for _ in range(2):  # the first run and a rerun
        report = _prepare(photos, tmp_path / "E", allow_other_files=True)
        assert _snapshot(photos) == before
    assert report.already_done == 4 and report.splits["train"]["crops"] == 6


def test_prepare_data_never_deletes_or_replaces_files_it_did_not_write(tmp_path):
    photos = _rafd_photos(tmp_path / "photos")
    out = tmp_path / "out"
    # The user's files, some named like what an interrupted run leaves behind (a crop without metadata, a .tmp).
    user_files = {"notes.txt": b"mine", "train/holiday.png": b"\x89PNG my photo", "train/face_eyes.png": b"crop?",
                  "train/half.png.tmp": b"", "test/keep.jpg": b"jpeg", "extra/a.png": b"nested"}  # fmt: skip
    for relative, content in user_files.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(content)
    with pytest.raises(data.OutputFolderError, match=r"did not write \(extra, notes.txt, test/keep.jpg, .* and 1 more\)"):
        _prepare(photos, out)
    assert _snapshot(out) == user_files, "a refused run writes nothing"
    assert prepare_data_main(["--input_dir", str(photos), "--output_dir", str(out), "--quiet"]) == 1

    first = _prepare(photos, out, allow_other_files=True)
    again = _prepare(photos, out, allow_other_files=True)
    assert first.processed == 4 and again.already_done == 4
    after = _snapshot(out)
    assert {k: after[k] for k in user_files} == user_files
    written = (out / data.WRITTEN_FILE).read_text().split()
    assert set(after) - set(user_files) == {*written, data.WRITTEN_FILE}, "everything else is recorded as written"
    assert not set(written) & set(user_files)

    # A user file where a crop or the metadata must go stops the run before it is touched.
    crop = data.crop_file_name("Rafd090_05_Caucasian_female_happy_frontal.png", "eyes")
    (out / "train" / crop).write_bytes(b"user's file")
    _rafd_photos(photos, ["05"])
    with pytest.raises(data.OutputFolderError, match=f"{crop} was not written by led-prepare-data"):
        _prepare(photos, out, allow_other_files=True)
    assert (out / "train" / crop).read_bytes() == b"user's file"
    imagefolder = tmp_path / "my-imagefolder"
    (imagefolder / "train").mkdir(parents=True)
    (imagefolder / "train" / "metadata.jsonl").write_text('{"file_name": "a.png", "label": 1}\n')
    with pytest.raises(data.OutputFolderError, match="metadata.jsonl was not written by led-prepare-data"):
        _prepare(photos, imagefolder, allow_other_files=True)
    assert (imagefolder / "train" / "metadata.jsonl").read_text() == '{"file_name": "a.png", "label": 1}\n'


def test_prepare_data_completes_a_dataset_made_before_the_record_of_written_files(tmp_path):
    photos = _rafd_photos(tmp_path / "photos", ["01", "02", "04"])
    out = tmp_path / "out"
    _prepare(photos, out)
    (out / data.WRITTEN_FILE).unlink()  # as an older version left it: the report and metadata only
    _rafd_photos(photos, ["03"])
    report = _prepare(photos, out)
    assert report.already_done == 3 and report.processed == 1
    records = [json.loads(line) for line in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        ["metadata.jsonl", *(r["file_name"] for r in records)]
    )
