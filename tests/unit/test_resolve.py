"""Model resolution (local folder / Hugging Face cache, offline) and the pull error path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmretrieve.encoders.pull import pull_models
from mmretrieve.encoders.resolve import is_random_model, resolve_model
from mmretrieve.errors import ModelLoadError, ModelNotFoundError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the Hugging Face cache at an empty folder (HF_HUB_CACHE wins over HF_HOME)."""
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def _model_folder(path: Path, weights: bytes = b"w" * 10) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    (path / "model.safetensors").write_bytes(weights)
    return path


def _cached_snapshot(cache: Path, repo_id: str, *, config: bool = True) -> Path:
    """The on-disk layout huggingface_hub writes: refs/main -> snapshots/<commit>/..."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    if config:
        (snapshot / "config.json").write_text("{}", encoding="utf-8")
    return snapshot


def test_local_folder_is_used_as_is(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "my-model")
    resolved = resolve_model(str(folder), "text")
    assert resolved.path == folder.resolve()
    assert resolved.name == str(folder)
    assert not resolved.from_cache
    assert len(resolved.revision) == 12 and int(resolved.revision, 16) >= 0
    assert resolve_model(str(folder), "text").revision == resolved.revision  # stable


def test_local_fingerprint_changes_with_config_or_weights(tmp_path: Path) -> None:
    a = resolve_model(str(_model_folder(tmp_path / "a")), "text").revision
    b = resolve_model(str(_model_folder(tmp_path / "b", weights=b"w" * 11)), "text").revision
    assert a != b
    c_dir = _model_folder(tmp_path / "c")
    (c_dir / "config.json").write_text('{"model_type": "roberta"}', encoding="utf-8")
    assert resolve_model(str(c_dir), "text").revision != a


def test_folder_without_config_is_a_load_error(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="config.json"):
        resolve_model(str(folder), "text")


def test_a_file_is_a_load_error(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="folder"):
        resolve_model(str(file), "image")


@pytest.mark.parametrize(
    ("name", "role", "flag"),
    [
        ("BAAI/bge-small-en-v1.5", "text", "--text-model"),
        ("openai/clip-vit-base-patch32", "image", "--image-model"),
        ("/no/such/folder/model", "text", "--text-model"),  # not a valid repo id either
    ],
)
def test_missing_model_names_model_role_and_remedy(
    empty_hf_cache: Path, name: str, role: str, flag: str
) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(name, role)
    message = str(info.value)
    assert f"{role} model '{name}'" in message
    assert "not in the Hugging Face cache" in message
    assert "mmretrieve models pull" in message
    assert "HF_HOME" in message
    assert f"{flag} PATH" in message


def test_model_in_hf_cache_resolves_to_its_snapshot(empty_hf_cache: Path) -> None:
    snapshot = _cached_snapshot(empty_hf_cache, "org/some-model")
    resolved = resolve_model("org/some-model", "text")
    assert resolved.from_cache
    assert resolved.revision == COMMIT
    assert resolved.path.resolve() == snapshot.resolve()
    assert resolved.name == "org/some-model"


def test_hf_home_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    _cached_snapshot(tmp_path / "hf-home" / "hub", "org/other")
    assert resolve_model("org/other", "image").revision == COMMIT


def test_cached_snapshot_without_config_is_a_load_error(empty_hf_cache: Path) -> None:
    _cached_snapshot(empty_hf_cache, "org/partial", config=False)
    with pytest.raises(ModelLoadError, match="incomplete download"):
        resolve_model("org/partial", "text")


def test_random_flag(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m")
    assert not is_random_model(folder)
    (folder / "config.json").write_text('{"mmretrieve_random_weights": true}', encoding="utf-8")
    assert is_random_model(folder)


def test_pull_offline_raises_model_not_found(
    empty_hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    with pytest.raises(ModelNotFoundError, match="mmretrieve-test/no-such-model"):
        pull_models(["mmretrieve-test/no-such-model"], progress=False)


def test_pull_returns_local_folders_as_is(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "local")
    assert pull_models([str(folder)], progress=False) == [folder]
