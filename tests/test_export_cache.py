"""The export cache: one export per model, profile and code version; damaged entries rebuilt."""

from __future__ import annotations

import json

import pytest
import torch

from parakeet_nb.coreml import cache

ONLY = ["joint"]


@pytest.fixture
def entry(tiny_modules, tmp_path):
    """A fresh cache root with one entry of the tiny joint (an export of a few seconds)."""
    first = cache.cached_export(tiny_modules, precision="fp32", only=ONLY, root=tmp_path)
    return tmp_path, first


def test_second_call_reuses_the_entry(tiny_modules, entry):
    root, first = entry
    assert not first.hit
    again = cache.cached_export(tiny_modules, precision="fp32", only=ONLY, root=root)
    assert again.hit and again.out_dir == first.out_dir and again.key == first.key
    assert list(again.metadata["components"]) == ONLY
    assert [line.split()[0] for line in again.table().splitlines()] == ["component", "joint"]
    assert (again.out_dir / "parakeet_joint.mlpackage").is_dir()


def test_damaged_entry_is_rebuilt_not_trusted(tiny_modules, entry):
    root, first = entry
    weights = next(first.out_dir.rglob("weight.bin"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert not cache.valid_entry(first.out_dir.parent)
    rebuilt = cache.cached_export(tiny_modules, precision="fp32", only=ONLY, root=root)
    assert not rebuilt.hit and cache.valid_entry(rebuilt.out_dir.parent)


def test_half_written_entry_is_rebuilt(tiny_modules, entry):
    root, first = entry
    (first.out_dir.parent / cache.MANIFEST).unlink()
    assert not cache.cached_export(tiny_modules, precision="fp32", only=ONLY, root=root).hit


def test_key_follows_model_settings_and_code(tiny_modules, monkeypatch):
    key = cache.cache_key(tiny_modules, "fp32", ONLY, {})
    assert key == cache.cache_key(tiny_modules, "fp32", ONLY, {})
    assert key != cache.cache_key(tiny_modules, "fp16", ONLY, {})
    assert key != cache.cache_key(tiny_modules, "fp32", ["decoder"], {})
    assert key != cache.cache_key(tiny_modules, "fp32", ONLY, {"layout": "fluidaudio"})
    weight = tiny_modules.joint.joint_net[-1].weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight[0, 0] += 1.0
        assert key != cache.cache_key(tiny_modules, "fp32", ONLY, {})
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "another code version")
    assert key != cache.cache_key(tiny_modules, "fp32", ONLY, {})


def test_manifest_lists_every_file(entry):
    _, first = entry
    manifest = json.loads((first.out_dir.parent / cache.MANIFEST).read_text())
    files = {str(p.relative_to(first.out_dir)) for p in first.out_dir.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files and "metadata.json" in files
