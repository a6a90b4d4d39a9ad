import pytest
import torch

from eeg2arm import EEGConfig, EEGModel, UserInputError, load_model_from_checkpoint
from eeg2arm.checkpoint import save_checkpoint


def test_save_then_load_gives_identical_logits(tmp_path):
    torch.manual_seed(1)
    config = EEGConfig(n_classes=4, n_electrodes=6, n_bands=3, frame_embed=32, normalize=True)
    model = EEGModel(config).materialize((1, 6, 3, 12)).eval()
    save_checkpoint(tmp_path / "m.pt", model, (1, 6, 3, 12), epoch=7, metrics={"val_loss": 0.5})
    loaded, meta = load_model_from_checkpoint(tmp_path / "m.pt")
    x = torch.randn(3, 6, 3, 19)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta["config"] == config and meta["epoch"] == 7 and meta["version"] == "eeg_model_v1.5"
    assert not loaded.training


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    model = EEGModel(EEGConfig(n_classes=2, n_electrodes=4, n_bands=2, frame_embed=16)).materialize((1, 4, 2, 8))
    save_checkpoint(tmp_path / "m.pt", model, (1, 4, 2, 8), epoch=1, metrics={})
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    ckpt["config"]["frame_embed"] = 32
    torch.save(ckpt, tmp_path / "m.pt")
    with pytest.raises(UserInputError, match="weights do not fit its config"):
        load_model_from_checkpoint(tmp_path / "m.pt")
