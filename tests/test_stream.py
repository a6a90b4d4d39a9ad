"""Streaming decoder: equals forward_seq on real band-power streams, at a cost that does not grow with history."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from eeg2arm import EEGConfig, EEGModel, UserInputError, load_model_from_checkpoint
from eeg2arm.realtime.decoder import StreamingDecoder, TorchStep, _without_onednn
from eeg2arm.realtime.streamer import Streamer


def real_stream(bandpower, n_windows: int) -> np.ndarray:
    """Real band-power frames: consecutive windows of the eyes-open/closed set joined along T -> (C, F, T)."""
    X, _ = bandpower
    return np.concatenate(list(X[45:45 + n_windows]), axis=-1)  # crosses from eyes-closed to eyes-open windows


def model_with_context(trained, context: int) -> EEGModel:
    model, meta = load_model_from_checkpoint(trained[0])
    config = EEGConfig.from_dict({**meta["config"].to_dict(), "context": context})
    windowed = EEGModel(config).materialize(meta["example_input_shape"])
    windowed.load_state_dict(model.state_dict())
    return windowed.eval()


@pytest.mark.parametrize("context,n_windows", [(64, 2), (64, 12), (6, 3)])  # streams shorter and longer than W
def test_streaming_equals_forward_seq_on_real_frames(trained, bandpower, context, n_windows):
    model = model_with_context(trained, context)
    stream = real_stream(bandpower, n_windows)  # (C, F, T)
    with torch.no_grad():
        expected = torch.softmax(model.forward_seq(torch.from_numpy(stream[None])), -1)[0].numpy()  # (T', K)
    assert (len(expected) > context) == (n_windows * 15 // 2 > context)
    streamer = Streamer.from_model(model)
    results = []
    for t in range(stream.shape[-1]):  # one frame at a time, as an amplifier delivers them
        results += streamer.push(stream[..., t])
    got = np.stack([r.probs for r in results])
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5
    assert [r.frame for r in results] == list(range(len(expected)))


def test_pushing_several_frames_at_once_gives_the_same_answers(trained, bandpower):
    model = model_with_context(trained, 8)
    stream = real_stream(bandpower, 3)
    one_by_one, chunked = Streamer.from_model(model), Streamer.from_model(model)
    a = [r for t in range(stream.shape[-1]) for r in one_by_one.push(stream[..., t])]
    b = [r for t in range(0, stream.shape[-1], 7) for r in chunked.push(stream[..., t:t + 7])]
    assert np.allclose([r.probs for r in a], [r.probs for r in b], atol=1e-6)
    assert [r.decision for r in a] == [r.decision for r in b]


def test_step_cost_and_state_do_not_grow_with_history(trained, bandpower):
    model = model_with_context(trained, 16)
    decoder = StreamingDecoder(model)
    group = torch.from_numpy(real_stream(bandpower, 1)[None, ..., :decoder.pool])
    state = decoder.initial_state(1)

    def step_flops(state):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            decoder(group, *state)
        return counter.get_total_flops()

    shapes_early, flops_early = [s.shape for s in state], step_flops(state)
    with torch.no_grad():
        for _ in range(300):  # far beyond the context window
            _, _, *state = decoder(group, *state)
    assert [s.shape for s in state] == shapes_early
    assert int(state[-1]) == 300
    assert step_flops(state) == flops_early > 0


def test_bad_frames_are_rejected_and_the_stream_goes_on(trained, bandpower):
    model = model_with_context(trained, 8)
    stream = real_stream(bandpower, 1)
    reference, streamer = Streamer.from_model(model), Streamer.from_model(model)
    expected = [r for t in range(stream.shape[-1]) for r in reference.push(stream[..., t])]
    got = []
    for t in range(stream.shape[-1]):
        if t == 5:
            with pytest.raises(UserInputError, match="NaN"):
                streamer.push(np.full(stream.shape[:2], np.nan))
            with pytest.raises(UserInputError, match=r"must be \(C, F\)"):
                streamer.push(stream[:3, :, t])
        got += streamer.push(stream[..., t])
    assert np.allclose([r.probs for r in got], [r.probs for r in expected], atol=1e-7)


def test_models_that_cannot_stream_are_refused():
    for bad in ({"normalize": True}, {"clip_length": 8}, {"context": None}):
        model = EEGModel(EEGConfig(n_classes=2, n_electrodes=4, n_bands=2, frame_embed=16, **bad))
        with pytest.raises(UserInputError, match="streaming needs"):
            StreamingDecoder(model.materialize((1, 4, 2, 8)))


def test_torch_step_leaves_the_onednn_switch_as_it_found_it(trained, bandpower):
    """TorchStep turns oneDNN off around each step (it is slower for one frame); it must always turn it back."""
    model, _ = load_model_from_checkpoint(trained[0])
    step = TorchStep(model)
    group = np.ascontiguousarray(real_stream(bandpower, 1)[None, ..., :step.config.cnn_time_pool])
    assert torch.backends.mkldnn.enabled
    probs, state = step(group, step.initial_state())
    assert torch.backends.mkldnn.enabled and probs.shape == (model.config.n_classes,)
    with pytest.raises(RuntimeError):  # a group with the wrong electrode count fails inside the step
        step(group[:, :-1], state)
    assert torch.backends.mkldnn.enabled
    with _without_onednn():
        assert not torch.backends.mkldnn.enabled  # off while a step runs

    def many_steps(_):
        for _ in range(100):
            step(group, state)

    with ThreadPoolExecutor(4) as pool:  # steps overlapping in several threads
        list(pool.map(many_steps, range(4)))
    assert torch.backends.mkldnn.enabled


def test_frames_that_drive_the_model_to_nan_change_nothing(trained, bandpower):
    """Frames near float32's limit (3e38) make every probability NaN, and the session's state with them: such a push
    is refused and the stream goes on as if it had never come."""
    model = model_with_context(trained, 64)
    stream = real_stream(bandpower, 2)  # (C, F, 30)
    expected = Streamer.from_model(model).push(stream)
    streamer = Streamer.from_model(model)
    got = streamer.push(stream[..., :7])
    with pytest.raises(UserInputError, match="NaN/Inf outputs .* the stream state is unchanged"):
        streamer.push(np.full((*stream.shape[:2], 4), 3e38, np.float32))
    got += streamer.push(stream[..., 7:])
    assert [r.frame for r in got] == [r.frame for r in expected]
    assert np.abs(np.stack([r.probs for r in got]) - np.stack([r.probs for r in expected])).max() == 0
    assert [r.decision for r in got] == [r.decision for r in expected]


@pytest.mark.parametrize("pool,kernel,n", [(1, 3, 15), (2, 7, 16), (3, 3, 2), (2, 3, 1)])  # the recipes' and edges
def test_a_readout_streams_like_forward_seq(pool, kernel, n):
    """With config.readout_frames the step keeps max(k - 1, N - pool) standardized frames; every pooled frame's
    probabilities equal forward_seq's on the whole stream, past the attention window, with a trained-looking
    (non-zero) readout and input statistics."""
    from eeg2arm.config import EEGConfig
    from eeg2arm.model import EEGModel

    torch.manual_seed(pool * 100 + kernel * 10 + n)
    config = EEGConfig(n_classes=2, n_electrodes=6, n_bands=2, cnn_time_pool=pool, kernel_time=kernel,
                       frame_embed=16, n_heads=2, context=5, readout_frames=n)
    model = EEGModel(config).materialize((1, 6, 2, 16)).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.readout.weight, std=0.3)
        model.input_mean.normal_()
        model.input_std.uniform_(0.5, 2.0)
    stream = np.random.default_rng(n).normal(size=(6, 2, 40 * pool + pool - 1)).astype(np.float32)  # ragged tail
    with torch.no_grad():
        expected = torch.softmax(model.forward_seq(torch.from_numpy(stream[None])), -1)[0].numpy()  # (T', K)
    streamer = Streamer.from_model(model)
    got = np.stack([r.probs for t in range(stream.shape[-1]) for r in streamer.push(stream[..., t])])
    assert got.shape == expected.shape == (40, 2)
    assert np.abs(got - expected).max() <= 1e-5
