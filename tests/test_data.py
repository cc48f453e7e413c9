"""Tests of the region-crop dataset preparation (data.py and `led-prepare-data`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import distinct_copy
from datasets import load_dataset
from PIL import Image

from diffusers_led import data
from diffusers_led.cli import prepare_data_main
from diffusers_led.faces.regions import FaceRegionProcessor
from diffusers_led.serialization import NAME_MAX

REPO = Path(__file__).resolve().parents[1]
ASTRONAUT = REPO / "examples" / "astronaut.png"


def _touch_image(destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8)).save(destination)
    return destination


@pytest.fixture(scope="module")
def processor() -> FaceRegionProcessor:
    return FaceRegionProcessor()


@pytest.fixture
def rafd_dir(tmp_path) -> Path:
    """Subjects 01-03 (angry, happy; subject 03 in grayscale), a non-frontal shot, a corrupt file, a face-less
    photo and a file that is not RaFD-named."""
    root = tmp_path / "rafd"
    for subject in ("01", "02", "03"):
        for expression in ("angry", "happy"):
            distinct_copy(root / f"Rafd090_{subject}_Caucasian_female_{expression}_frontal.png", gray=subject == "03")
    distinct_copy(root / "Rafd045_01_Caucasian_female_sad_frontal.png")  # another camera angle: not used
    (root / "Rafd090_04_Moroccan_male_sad_left.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    Image.new("RGB", (120, 90), (128, 128, 128)).save(root / "Rafd090_05_Kid_male_neutral_right.png")
    (root / "notes.txt").write_text("not an image")
    return root


def _records(split_dir: Path) -> list:
    return [json.loads(line) for line in (split_dir / "metadata.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------------------------
# Labels and layouts (no face detection)
# ---------------------------------------------------------------------------------------------------------------------


def test_rafd_names_and_subjects():
    fields = data.parse_rafd_name("Rafd090_01_Caucasian_female_angry_frontal.jpg")
    assert fields == {
        "angle": "090",
        "subject": "01",
        "ethnicity": "Caucasian",
        "gender": "female",
        "expression": "angry",
        "gaze": "frontal",
    }
    assert data.parse_rafd_name("IMG_0001.jpg") is None
    assert data.guess_subject("Rafd180_12_Moroccan_male_sad_left.png") == "12"
    assert data.guess_subject("s052_004_00000022.png") == "S052"
    assert data.guess_subject("portrait.png") == "portrait"


def test_ckplus_layout(tmp_path):
    root = tmp_path / "CK+"
    images, labels = root / "cohn-kanade-images", root / "Emotion"
    for frame in range(1, 5):
        _touch_image(images / "S005" / "001" / f"S005_001_{frame:08d}.png")
        _touch_image(images / "S010" / "002" / f"S010_002_{frame:08d}.png")  # unlabelled sequence
    (labels / "S005" / "001").mkdir(parents=True)
    (labels / "S005" / "001" / "S005_001_00000004_emotion.txt").write_text("   3.0000000e+00\n")
    assert data.detect_format(root) == "ckplus"
    _, listing = data.list_labelled_photos(root, ckplus_peak_frames=2)
    labelled = {Path(p.source).name: (p.expression, p.subject, p.attributes["frame"]) for p in listing.photos}
    assert labelled == {
        "S005_001_00000001.png": ("neutral", "S005", 1),
        "S005_001_00000003.png": ("disgusted", "S005", 3),
        "S005_001_00000004.png": ("disgusted", "S005", 4),
    }
    codes = {code: data.CKPLUS_EMOTION_CODES[code] for code in range(8)}
    assert codes == {
        0: "neutral",
        1: "angry",
        2: "contemptuous",
        3: "disgusted",
        4: "fearful",
        5: "happy",
        6: "sad",
        7: "surprised",
    }


def test_ckplus_sample_layout(tmp_path):
    """EmoPy's sample is labelled by the labels.csv of scripts/fetch_ckplus_sample.py, not by its folder names."""
    root = tmp_path / "EmoPy" / "examples" / "image_data"
    _touch_image(root / "sample_image_series_directory" / "disgust" / "S074_004" / "S074_004_00000001.png")
    _touch_image(root / "sample_image_directory" / "anger" / "S074_004_00000018.png")
    _touch_image(root / "sample_happy_image.png")
    assert data.detect_format(tmp_path / "EmoPy") == "ckplus_sample"
    with pytest.raises(data.DatasetFormatError, match="fetch_ckplus_sample.py"):
        data.list_labelled_photos(tmp_path / "EmoPy")
    with pytest.raises(data.DatasetFormatError, match="has no labels.csv"):
        data.ckplus_sample_rows(root)  # the calibration scripts' reader says how to get the labels too
    (root / "labels.csv").write_text(
        "file_name,subject,sequence,frame,folder_label,expression,kind,eyes_usable,note\n"
        "sample_happy_image.png,S074,S074_005,,happy,happy,peak,true,about frame 22\n"
        "sample_image_directory/anger/S074_004_00000018.png,S074,S074_004,18,anger,disgusted,peak,true,\n"
        "sample_image_series_directory/disgust/S074_004/S074_004_00000001.png,S074,S074_004,1,disgust,neutral,"
        "neutral,false,blink\n"
    )
    _, listing = data.list_labelled_photos(tmp_path / "EmoPy")
    labelled = {
        Path(p.source).name: (p.expression, p.subject, p.attributes["frame"], p.attributes["eyes_usable"])
        for p in listing.photos
    }
    assert labelled == {
        "sample_happy_image.png": ("happy", "S074", None, True),
        "S074_004_00000018.png": ("disgusted", "S074", 18, True),
        "S074_004_00000001.png": ("neutral", "S074", 1, False),
    }
    assert all(p.source.startswith("examples/image_data/") for p in listing.photos)
    rows = data.ckplus_sample_rows(root)
    assert [(row["subject"], row["kind"], row["frame"]) for row in rows] == [
        ("S074", "peak", ""),
        ("S074", "peak", "18"),
        ("S074", "neutral", "1"),
    ]


def test_metadata_and_folder_layouts(tmp_path):
    meta = tmp_path / "meta"
    _touch_image(meta / "a" / "x.png")
    _touch_image(meta / "y.png")
    (meta / "metadata.csv").write_text(
        "file_name,expression,subject\na/x.png,joy,p1\ny.png,smirk,p2\nmissing.png,sad,p3\n"
    )
    assert data.detect_format(meta) == "metadata"
    _, listing = data.list_labelled_photos(meta)
    assert [(p.source, p.expression, p.subject) for p in listing.photos] == [("a/x.png", "happy", "p1")]
    assert {s["source"]: s["reason"] for s in listing.skipped} == {
        "y.png": "unknown expression 'smirk'",
        "missing.png": "listed in metadata.csv but missing",
    }
    (meta / "metadata.csv").unlink()
    (meta / "metadata.jsonl").write_text(json.dumps({"file_name": "y.png", "label": "Surprise"}) + "\n")
    _, listing = data.list_labelled_photos(meta, format="metadata")
    assert [(p.expression, p.subject) for p in listing.photos] == [("surprised", "y")]

    folders = tmp_path / "folders"
    _touch_image(folders / "Anger" / "S011_002_00000009.png")
    _touch_image(folders / "happy" / "deep" / "me.png")
    _touch_image(folders / "misc" / "z.png")
    assert data.detect_format(folders) == "folders"
    _, listing = data.list_labelled_photos(folders)
    assert [(p.expression, p.subject) for p in listing.photos] == [("angry", "S011"), ("happy", "me")]
    assert listing.skipped[0]["source"] == "misc/z.png"
    with pytest.raises(data.DatasetFormatError, match="Cannot tell the layout"):
        data.detect_format(folders / "misc")


def test_subject_split():
    subjects = [f"S{i:03d}" for i in range(20)]
    test = data.split_subjects(subjects, test_fraction=0.1, seed=3)
    assert len(test) == 2 and test == data.split_subjects(reversed(subjects), test_fraction=0.1, seed=3)
    assert data.split_subjects(subjects, test_fraction=0.1, seed=4) != test
    assert data.split_subjects(["a", "b"], test_fraction=0.9) in ({"a"}, {"b"})  # never every subject
    assert data.split_subjects(["a"], test_fraction=0.5) == set()
    assert data.split_subjects(subjects, test_subjects=["S001"]) == {"S001"}
    with pytest.raises(ValueError, match="not among the subjects"):
        data.split_subjects(subjects, test_subjects=["S999"])


# ---------------------------------------------------------------------------------------------------------------------
# Preparing crops (real face detection on the example portrait)
# ---------------------------------------------------------------------------------------------------------------------


def test_prepare_rafd_folder_with_the_cli(rafd_dir, tmp_path, capsys):
    out = tmp_path / "crops"
    assert (
        prepare_data_main(
            [
                "--input_dir",
                str(rafd_dir),
                "--output_dir",
                str(out),
                "--test_subjects",
                "02",
                "--quiet",
                "--region_anchor",
                "template",
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert "rafd: 8 labelled photos; 6 cropped now" in printed.out
    assert "Rafd090_04_Moroccan_male_sad_left.jpg: unreadable" in printed.err

    train, test = _records(out / "train"), _records(out / "test")
    assert {r["subject"] for r in train} == {"01", "03"} and {r["subject"] for r in test} == {"02"}
    assert len(train) == 8 and len(test) == 4  # 2 expressions x 2 regions per subject
    for record in train + test:
        fields = data.parse_rafd_name(record["source"])
        assert record["expression"] == fields["expression"] and record["subject"] == fields["subject"]
        assert record["region"] in ("eyes", "mouth") and record["source_format"] == "rafd"
        assert record["gaze"] == "frontal" and record["angle"] == "090"
        crop = np.asarray(Image.open(out / ("train" if record in train else "test") / record["file_name"]))
        assert crop.shape == (64, 64, 3)
        gray = np.array_equal(crop[..., 0], crop[..., 1]) and np.array_equal(crop[..., 1], crop[..., 2])
        assert gray == record["grayscale"] == (record["subject"] == "03")

    report = json.loads((out / data.REPORT_FILE).read_text())
    reasons = {item["source"]: item["reason"] for item in report["skipped"]}
    assert reasons["Rafd090_05_Kid_male_neutral_right.png"] == "no face detected"
    assert reasons["Rafd090_04_Moroccan_male_sad_left.jpg"].startswith("unreadable")
    assert report["splits"]["test"]["subjects"] == ["02"] and report["splits"]["train"]["crops"] == 8
    assert report["processor"]["geometry"]["region_anchor"] == "template"

    loaded = load_dataset("imagefolder", data_dir=str(out))
    assert loaded["train"].num_rows == 8 and loaded["test"].num_rows == 4
    assert {"image", "expression", "region", "subject", "source"} <= set(loaded["train"].column_names)


def test_rerun_is_idempotent_and_resumes_an_interrupted_run(rafd_dir, tmp_path, processor, monkeypatch):
    out = tmp_path / "crops"
    calls = {"n": 0}
    append_lines = data.writer._append_lines

    def crash_before_the_fourth_metadata(path, records):
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th photo's crops are written, its metadata lines are not
            raise KeyboardInterrupt("simulated crash")
        append_lines(path, records)

    monkeypatch.setattr(data.writer, "_append_lines", crash_before_the_fourth_metadata)
    with pytest.raises(KeyboardInterrupt):
        data.prepare_dataset(rafd_dir, out, test_fraction=0.0, processor=processor, progress=False)
    monkeypatch.setattr(data.writer, "_append_lines", append_lines)
    done = _records(out / "train")
    assert len(done) == 6  # the 3 photos finished before the crash, 2 crops each
    # What a crash can leave: a torn last line, crops without metadata, a temporary file.
    with open(out / "train" / "metadata.jsonl", "a") as handle:
        handle.write('{"file_name": "torn')
    orphans = [p for p in (out / "train").glob("*.png") if p.name not in {r["file_name"] for r in done}]
    assert len(orphans) == 2
    (out / "train" / (orphans[0].name + ".tmp")).write_bytes(b"")

    resumed = data.prepare_dataset(rafd_dir, out, test_fraction=0.0, processor=processor, progress=False)
    assert resumed.already_done == 3 and resumed.processed == 3
    fresh = data.prepare_dataset(rafd_dir, tmp_path / "fresh", test_fraction=0.0, processor=processor, progress=False)
    lines = (out / "train" / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 12
    assert sorted(lines) == sorted((tmp_path / "fresh" / "train" / "metadata.jsonl").read_text().splitlines())
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        p.name for p in (tmp_path / "fresh" / "train").iterdir()
    )
    assert fresh.skipped == resumed.skipped

    before = (out / "train" / "metadata.jsonl").read_bytes()
    again = data.prepare_dataset(rafd_dir, out, test_fraction=0.0, processor=processor, progress=False)
    assert again.processed == 0 and again.already_done == 6
    assert (out / "train" / "metadata.jsonl").read_bytes() == before

    with pytest.raises(ValueError, match="use the same --test_subjects"):
        data.prepare_dataset(rafd_dir, out, test_subjects=["01"], processor=processor, progress=False)


def test_crop_geometry_is_recorded_and_never_mixed(rafd_dir, tmp_path, processor):
    out = tmp_path / "crops"
    template = FaceRegionProcessor(region_anchor="template")
    data.prepare_dataset(rafd_dir, out, test_fraction=0.0, processor=template, progress=False)
    assert data.read_crop_geometry(out) == template.geometry
    first = _records(out / "train")[0]
    (regions,) = template.extract(np.asarray(Image.open(rafd_dir / first["source"]).convert("RGB")))
    assert first["region_box"] == pytest.approx(list(regions.boxes[first["region"]]), abs=0.01)
    with pytest.raises(ValueError, match="must not mix crop geometries"):
        data.prepare_dataset(rafd_dir, out, test_fraction=0.0, processor=processor, progress=False)
    assert data.read_crop_geometry(out) == template.geometry  # the refused run wrote nothing
    # A report from before the geometry was recorded describes the paper's boxes; no report, no geometry.
    report = json.loads((out / data.REPORT_FILE).read_text())
    del report["processor"]["geometry"]
    (out / data.REPORT_FILE).write_text(json.dumps(report))
    assert data.read_crop_geometry(out) == processor.geometry and processor.geometry["region_anchor"] == "landmarks"
    assert data.read_crop_geometry(tmp_path) is None


def test_photos_with_the_longest_file_names_are_cropped(tmp_path, processor):
    """A 255-byte photo name (the file systems' limit) gives crop names that fit too, and distinct ones."""
    photos = tmp_path / "photos"
    names = ["a" * 251 + ".png", "a" * 250 + "b.png"]  # the same first 240 characters
    for name in names:
        distinct_copy(photos / "happy" / name)
    report = data.prepare_dataset(photos, tmp_path / "crops", format="folders", test_fraction=0.0, processor=processor)
    assert report.processed == 2 and report.skipped == []
    records = _records(tmp_path / "crops" / "train")
    file_names = {record["file_name"] for record in records}
    assert len(file_names) == 4 and all(len(name) + len(".tmp") <= NAME_MAX for name in file_names)
    assert all((tmp_path / "crops" / "train" / name).is_file() for name in file_names)
    assert data.crop_file_name("happy/short.png", "eyes").startswith("short-")  # short names are as before


def test_prepare_errors(tmp_path, rafd_dir):
    with pytest.raises(data.DatasetFormatError, match="not a folder"):
        data.prepare_dataset(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ValueError, match="must not be inside"):
        data.prepare_dataset(rafd_dir, rafd_dir / "crops")
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    with pytest.raises(data.DatasetFormatError, match="No labelled photos"):
        data.prepare_dataset(tmp_path / "empty", tmp_path / "out", format="folders")
    assert prepare_data_main(["--input_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "o")]) == 1
