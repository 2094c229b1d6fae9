"""``.nemo`` checkpoints (``parakeet_nb.model.checkpoint``): build, load, refuse, export with ``--nemo``."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from parakeet_nb import cli
from parakeet_nb.model.checkpoint import CheckpointError, load_nemo, sha256, tdt_config
from parakeet_nb.model.presets import PRESETS
from parakeet_nb.mlprogram.load import load_program

_TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def loaded(tiny_nemo):
    return load_nemo(tiny_nemo)


def test_roundtrip_keeps_the_tdt_shapes(loaded, tiny_nemo):
    assert loaded.durations == (0, 1, 2, 3, 4)
    assert loaded.vocab_size == _TINY.vocab_size
    assert loaded.blank_id == _TINY.vocab_size
    assert loaded.d_model == _TINY.d_model
    assert loaded.pred_hidden == _TINY.pred_hidden
    assert loaded.pred_rnn_layers == _TINY.pred_rnn_layers
    assert loaded.source == f"checkpoint:{tiny_nemo.name}"
    assert loaded.preset is None
    assert int(loaded.joint.num_extra_outputs) == len(loaded.durations)
    for module in (loaded.preprocessor, loaded.encoder, loaded.decoder, loaded.joint):
        assert not module.training


def test_roundtrip_sha256_is_the_files_hash(loaded, tiny_nemo):
    expected = hashlib.sha256(tiny_nemo.read_bytes()).hexdigest()
    assert loaded.sha256 == expected
    assert sha256(tiny_nemo) == expected


def test_roundtrip_tokenizer_is_inside_the_archive(loaded):
    tok = loaded.tokenizer
    assert tok is not None
    assert tok.vocab_size == loaded.vocab_size
    ids = tok.text_to_ids("parakeet listens")
    assert ids and all(0 <= i < loaded.vocab_size for i in ids)
    assert tok.ids_to_text(ids) == "parakeet listens"


def test_the_archive_is_a_tar_with_config_and_weights(tiny_nemo):
    with tarfile.open(tiny_nemo) as tf:
        names = {Path(n).name for n in tf.getnames()}
    assert "model_config.yaml" in names
    assert "model_weights.ckpt" in names
    assert any(n.endswith("tokenizer.model") for n in names)


def test_tdt_config_carries_the_preset():
    cfg = tdt_config(_TINY, "/tok")
    assert cfg["preprocessor"]["features"] == 128 and cfg["preprocessor"]["n_fft"] == 512
    assert cfg["encoder"]["d_model"] == _TINY.d_model
    assert cfg["model_defaults"]["tdt_durations"] == [0, 1, 2, 3, 4]
    assert cfg["joint"]["num_extra_outputs"] == 5
    assert cfg["tokenizer"] == {"dir": "/tok", "type": "bpe"}


def test_nemo_export_of_encoder_and_decoder(tiny_nemo, tmp_path, capsys):
    out = tmp_path / "from_nemo"
    code = cli.main(["export", "--nemo", str(tiny_nemo), "--only", "encoder,decoder", "--out", str(out), "--quiet"])
    assert code == 0
    assert "wrote 2 packages and metadata.json" in capsys.readouterr().out
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["model"]["source"] == f"checkpoint:{tiny_nemo.name}"
    assert meta["model"]["checkpoint_sha256"] == hashlib.sha256(tiny_nemo.read_bytes()).hexdigest()
    assert "preset" not in meta["model"]
    assert list(meta["components"]) == ["encoder", "decoder"]
    assert sorted(p.name for p in out.iterdir()) == ["compile.sh", "metadata.json", "parakeet_decoder.mlpackage", "parakeet_encoder.mlpackage"]
    enc = meta["components"]["encoder"]
    assert [(i["name"], i["shape"]) for i in enc["outputs"]] == [("encoder", [1, _TINY.d_model, 188]), ("encoder_length", [1])]
    assert enc["audit"]["clean"] and enc["compute_units"]["compute_units"] == "CPU_AND_NE"
    dec = meta["components"]["decoder"]
    assert [(i["name"], i["shape"]) for i in dec["inputs"]] == [
        ("targets", [1, 1]), ("target_length", [1]), ("h_in", [1, 1, _TINY.pred_hidden]), ("c_in", [1, 1, _TINY.pred_hidden]),
    ]
    loaded = load_program(out / "parakeet_decoder.mlpackage")
    assert [v.name for v in loaded.main.outputs] == ["decoder", "h_out", "c_out"]


@pytest.fixture(scope="module")
def mel80_nemo(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """A TDT checkpoint whose preprocessor makes 80 mel features (not Parakeet's 128)."""
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    from parakeet_nb.model.checkpoint import _nemo_quiet

    cfg = tdt_config(_TINY, str(tiny_tokenizer_dir))
    cfg["preprocessor"]["features"] = 80
    cfg["encoder"]["feat_in"] = 80
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mel80") / "mel80.nemo"
    with _nemo_quiet():
        EncDecRNNTBPEModel(cfg=OmegaConf.create(cfg)).save_to(str(path))
    return path


def test_a_preprocessor_that_is_not_parakeets_is_refused(mel80_nemo):
    with pytest.raises(CheckpointError, match=r"preprocessor is not Parakeet's: features 80 \(expected 128\)"):
        load_nemo(mel80_nemo)


def test_a_preprocessor_that_is_not_parakeets_exits_2(mel80_nemo, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["export", "--nemo", str(mel80_nemo), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("parakeet-nb export: error: ")
    assert "features 80 (expected 128)" in err[0]
    assert not out.exists()


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_nemo(tmp_path / "missing.nemo")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_nemo(tmp_path)


def test_non_tar_checkpoint(tmp_path):
    bogus = tmp_path / "model.nemo"
    bogus.write_bytes(b"PK\x03\x04 definitely not a tar archive" * 20)
    with pytest.raises(CheckpointError, match=r"not a \.nemo checkpoint \(a \.nemo file is a tar archive\)"):
        load_nemo(bogus)


def test_a_tar_that_is_not_a_nemo_model(tmp_path):
    wrong = tmp_path / "wrong.nemo"
    with tarfile.open(wrong, "w") as tf:
        data = b"hello"
        info = tarfile.TarInfo("readme.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(CheckpointError, match="could not restore the checkpoint") as caught:
        load_nemo(wrong)
    assert "\n" not in str(caught.value)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)
