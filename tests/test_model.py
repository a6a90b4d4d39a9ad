import numpy as np
import pytest
import torch

from eeg2arm import EEGConfig, EEGModel, Hysteresis, UserInputError
from eeg2arm.model import zscore


def make_model(**overrides) -> EEGModel:
    torch.manual_seed(0)
    config = EEGConfig(n_classes=3, n_electrodes=8, n_bands=4, frame_embed=32, **overrides)
    return EEGModel(config).materialize((1, 8, 4, 10)).eval()


@pytest.mark.parametrize("B,T", [(1, 2), (3, 15), (2, 17), (4, 64)])
def test_any_T_at_or_above_the_minimum(B, T):
    model = make_model()
    x = torch.randn(B, 8, 4, T)
    assert model(x).shape == (B, 3)
    assert model.forward_seq(x).shape == (B, T // model.config.cnn_time_pool, 3)


def test_short_T_and_wrong_shape_are_clear_errors():
    model = make_model(cnn_time_pool=4)
    assert model.config.min_frames == 4
    with pytest.raises(UserInputError, match="T=3 frames; this model needs at least T=4"):
        model(torch.randn(2, 8, 4, 3))
    with pytest.raises(UserInputError, match="C=7, F=4 but the model expects C=8, F=4"):
        model(torch.randn(2, 7, 4, 10))
    with pytest.raises(UserInputError, match="4 dims"):
        model(torch.randn(8, 4, 10))


def test_forward_seq_last_frame_equals_forward():
    model = make_model()
    x = torch.randn(5, 8, 4, 21)
    with torch.no_grad():
        assert torch.equal(model.forward_seq(x)[:, -1], model(x))


def test_forward_seq_is_causal():
    model = make_model()
    pool = model.config.cnn_time_pool
    x = torch.randn(2, 8, 4, 20)
    with torch.no_grad():
        base = model.forward_seq(x)
        for t in range(base.shape[1] - 1):
            changed = x.clone()
            changed[..., (t + 1) * pool:] = torch.randn_like(changed[..., (t + 1) * pool:]) * 5
            out = model.forward_seq(changed)
            assert torch.equal(out[:, : t + 1], base[:, : t + 1]), f"frame {t} saw the future"
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:]), "later frames must react to the change"


def test_clip_length_uses_the_last_frames():
    model = make_model(clip_length=6)
    x = torch.randn(2, 8, 4, 20)
    with torch.no_grad():
        assert torch.equal(model(x), model(x[..., -6:]))
    with pytest.raises(UserInputError, match="at least T=6"):
        model(torch.randn(2, 8, 4, 5))


def test_normalize_is_the_per_electrode_zscore_inside_the_model():
    plain, normed = make_model(), make_model(normalize=True)
    normed.load_state_dict(plain.state_dict())
    x = torch.randn(3, 8, 4, 12) * 7 + 3
    z = zscore(x)
    assert torch.allclose(z.mean(dim=(2, 3)), torch.zeros(3, 8), atol=1e-5)
    assert torch.allclose(z.std(dim=(2, 3), correction=0), torch.ones(3, 8), atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(normed(x), plain(z), atol=1e-6)


def test_config_round_trips_and_rejects_bad_values():
    config = EEGConfig(n_classes=2, n_electrodes=32, n_bands=4, class_names=("eyes_open", "eyes_closed"))
    assert EEGConfig.from_json(config.to_json()) == config
    assert EEGConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserInputError, match="unknown config keys"):
        EEGConfig.from_dict({**config.to_dict(), "surprise": 1})
    with pytest.raises(UserInputError, match="divisible"):
        EEGConfig(n_classes=2, n_electrodes=4, n_bands=4, frame_embed=30, n_heads=4)
    with pytest.raises(UserInputError, match="dropout"):
        EEGConfig(n_classes=2, n_electrodes=4, n_bands=4, dropout=1.5)
    saved_before_context = {k: v for k, v in config.to_dict().items() if k != "context"}
    assert EEGConfig.from_dict(saved_before_context).context is None  # its attention saw the whole history
    saved_before_linear_stem = {k: v for k, v in config.to_dict().items() if k != "linear_stem"}
    assert EEGConfig.from_dict(saved_before_linear_stem).linear_stem is False  # GELU in the stem, as it was
    with pytest.raises(UserInputError, match="linear_stem"):
        EEGConfig(n_classes=2, n_electrodes=4, n_bands=4, linear_stem="yes")
    saved_before_readout = {k: v for k, v in config.to_dict().items() if k != "readout_frames"}
    assert EEGConfig.from_dict(saved_before_readout).readout_frames == 0  # the network alone, as it was
    for bad in (-1, 1.5, True):
        with pytest.raises(UserInputError, match="readout_frames must be an integer >= 0"):
            EEGConfig(n_classes=2, n_electrodes=4, n_bands=4, readout_frames=bad)
    saved_before_ensemble = {k: v for k, v in config.to_dict().items() if k != "ensemble"}
    assert EEGConfig.from_dict(saved_before_ensemble).ensemble == 1  # one network, as it was
    for bad in (0, 2.0, True):
        with pytest.raises(UserInputError, match="config.ensemble must be a positive integer"):
            EEGConfig(n_classes=2, n_electrodes=4, n_bands=4, ensemble=bad)


@pytest.mark.parametrize("n", [1, 5])
def test_the_readout_is_a_causal_linear_map_of_the_last_n_frames_added_to_the_network(n):
    """Zero at the start (the network's logits exactly); then the logits move by a linear map of the N standardized
    frames up to each pooled frame's end, and by nothing that comes later."""
    model = make_model(readout_frames=n)
    plain = make_model()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("readout.")})
    x = torch.randn(2, 8, 4, 12)
    with torch.no_grad():
        assert torch.equal(model.forward_seq(x), plain.forward_seq(x))  # the readout starts at zero
        torch.nn.init.normal_(model.readout.weight)
        added = model.forward_seq(x) - plain.forward_seq(x)  # (B, T', K)
        pool = model.config.cnn_time_pool
        for t in range(added.shape[1]):
            end = (t + 1) * pool  # frames [end - n, end) feed pooled frame t, zeros before the first
            window = torch.nn.functional.pad(x, (n, 0))[..., end:end + n].flatten(1, 2)  # (B, C*F, n)
            expected = torch.einsum("bcn,kcn->bk", window, model.readout.weight) + model.readout.bias
            assert torch.allclose(added[:, t], expected, atol=1e-5)


def test_a_linear_stem_is_affine_before_the_electrode_mix():
    """With linear_stem the depthwise convs and pooling are one affine map per electrode, so a contrast between
    electrodes reaches the mix unbent; by default GELU bends it."""
    x = torch.randn(3, 8, 4, 12)
    for linear in (False, True):
        model = make_model(linear_stem=linear)
        with torch.no_grad():
            stem = [model.stem(z.unsqueeze(2)) for z in (torch.zeros_like(x), x, 2 * x)]  # (B, maps, 1, F, T')
        curvature = (stem[2] - 2 * stem[1] + stem[0]).abs().max()
        assert (curvature < 1e-5) == linear


# --- Hysteresis on hand-made sequences -------------------------------------------------------------------------

def probs(*p1):
    """Two-class probabilities from P(class 1) per frame."""
    return [[1 - p, p] for p in p1]


def test_hysteresis_needs_min_frames_above_enter():
    h = Hysteresis(enter=0.7, exit=0.5, min_frames=3)
    assert h.run(probs(0.8, 0.8, 0.6, 0.8, 0.8, 0.8)) == [-1, -1, -1, -1, -1, 1]


def test_hysteresis_holds_between_exit_and_enter_then_releases():
    h = Hysteresis(enter=0.7, exit=0.5, min_frames=2)
    seq = probs(0.9, 0.9, 0.6, 0.55, 0.51, 0.4, 0.3)
    assert h.run(seq) == [-1, 1, 1, 1, 1, -1, -1]


def test_hysteresis_switches_class_only_after_the_streak():
    h = Hysteresis(enter=0.7, exit=0.5, min_frames=2)
    seq = probs(0.9, 0.9, 0.2, 0.2, 0.2)  # class 1, then class 0 confidently
    assert h.run(seq) == [-1, 1, -1, 0, 0]


def test_hysteresis_ignores_single_frame_flicker():
    h = Hysteresis(enter=0.6, exit=0.3, min_frames=2)
    flicker = probs(0.9, 0.9, 0.1, 0.9, 0.1, 0.9)  # a jittery raw decision: 1 0 1 0 1 after entering
    assert h.run(flicker) == [-1, 1, -1, -1, -1, -1]
    raw = [int(np.argmax(p)) for p in flicker]
    assert raw == [1, 1, 0, 1, 0, 1]


def test_hysteresis_rejects_bad_thresholds():
    """UserInputError itself, so the CLI and the service need no wrapper to say what was wrong."""
    with pytest.raises(UserInputError, match=r"0 <= exit <= enter <= 1, got enter=0.4, exit=0.6"):
        Hysteresis(enter=0.4, exit=0.6)
    with pytest.raises(UserInputError, match="min_frames >= 1, got 0"):
        Hysteresis(min_frames=0)


def test_context_window_bounds_what_a_frame_sees():
    model = make_model(context=4)
    pool, x = model.config.cnn_time_pool, torch.randn(1, 8, 4, 40)
    changed = x.clone()
    changed[..., :6] = torch.randn(1, 8, 4, 6) * 5  # input frames 0-5
    with torch.no_grad():
        a, b = model.forward_seq(x)[0], model.forward_seq(changed)[0]
    # The two causal convs (kernel 3, pool 2 between) carry input frames 0-5 into pooled frames 0-5; each of the
    # 2 attention layers then reaches back context - 1 = 3 frames, so frames up to 5 + 2 * 3 = 11 can react.
    last_reached = 5 + model.config.n_layers * (model.config.context - 1)
    assert not torch.allclose(a[last_reached], b[last_reached])
    assert torch.allclose(a[last_reached + 1:], b[last_reached + 1:], atol=1e-6)
    assert x.shape[-1] // pool == len(a)
