"""The restorer's contract: consistent with the input, scale-equivariant, seamless, any length."""
import numpy as np
import pytest
import torch

from declipper import ClippingLevels, EngineSettings, restore
from declipper.checkpoint import load_checkpoint, save_checkpoint
from declipper.engine import StreamingRestorer
from declipper.evaluation import clip_at_input_sdr
from declipper.network import (Declipper, Ensemble, EnsembleConfig, FoldedConv1d, RowConv1d,
                               RowConvTranspose1d, SignSymmetric, UNet, UNet1d, UNetConfig, untie_scales)
from tests.conftest import music

RATE = 44100


def test_network_has_no_bias_terms():
    model = Declipper(UNetConfig())
    names = [name for name, _ in model.named_parameters()]
    assert names and not any("bias" in name for name in names)


def test_restoration_is_consistent_with_the_measurement(random_model):
    clean = music(3, RATE, seed=11)
    y, levels = clip_at_input_sdr(clean, 5.0)
    out = restore(y, RATE, random_model, levels=levels)
    theta = levels.upper[0]
    saturated = np.abs(y) >= theta
    assert out.shape == y.shape and out.dtype == np.float32
    assert np.array_equal(out[~saturated], y[~saturated])  # reliable samples: bit for bit
    assert (np.abs(out[saturated]) >= theta).all()  # saturated ones at or beyond the level
    assert (np.sign(out[saturated]) == np.sign(y[saturated])).all()  # ... with the sign of y
    assert np.array_equal(np.clip(out, -theta, theta), y)  # so clipping the output gives y back


@pytest.mark.parametrize("gain", [0.25, 3.0])
def test_scaling_the_input_scales_the_output(random_model, gain):
    y = np.clip(music(2, RATE, seed=12), -0.4, 0.4)
    out = restore(y, RATE, random_model)
    scaled = restore((gain * y).astype(np.float32), RATE, random_model, engine=EngineSettings(precision="fp32"))
    reference = restore(y, RATE, random_model, engine=EngineSettings(precision="fp32"))
    assert np.abs(out).max() > 0.4
    np.testing.assert_allclose(scaled, gain * reference, rtol=1e-4, atol=1e-6 * gain)


def test_windowed_restoration_matches_one_pass_away_from_edges(random_model):
    """Seams: restoring in 8192-sample windows (the default overlap) agrees with one window over everything."""
    y, levels = clip_at_input_sdr(music(4, RATE, seed=13), 7.0)
    settings = dict(precision="fp32")
    windowed = restore(y, RATE, random_model, levels=levels, engine=EngineSettings(window=8192, **settings))
    whole = restore(y, RATE, random_model, levels=levels, engine=EngineSettings(window=2 * len(y), **settings))
    changed = np.abs(whole - y)[4096:-4096]
    difference = np.abs(windowed - whole)[4096:-4096]
    # the tolerance: 1 % of the restored excess, everywhere past the first and last half window
    assert difference.max() <= 0.01 * changed.max()


def test_block_boundaries_do_not_change_the_result(random_model):
    y, levels = clip_at_input_sdr(music(3, RATE, seed=14), 5.0)
    settings = EngineSettings(window=4096, precision="fp32")
    one = np.concatenate([b for b, _ in StreamingRestorer(random_model, levels, settings).process([y])])
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(len(y), 40, replace=False))
    many = np.concatenate([b for b, _ in StreamingRestorer(random_model, levels, settings).process(np.split(y, cuts))])
    assert many.shape == y.shape
    np.testing.assert_array_equal(one, many)


def test_windows_without_clipping_skip_the_network(random_model):
    clean = music(4, RATE, seed=15, peak=0.3)
    y = clean.copy()
    y[RATE : RATE + 2000] = np.clip(3 * clean[RATE : RATE + 2000], -0.5, 0.5)  # one clipped burst
    levels = ClippingLevels.uniform(2, 0.5, -0.5)
    calls = []
    handle = random_model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        out = restore(y, RATE, random_model, levels=levels, engine=EngineSettings(window=4096, overlap=0.25))
    finally:
        handle.remove()
    assert sum(calls) <= 2 * 3  # at most three windows cover the burst, for two channels
    assert np.array_equal(out[: RATE - 4096], y[: RATE - 4096])


def test_mono_and_odd_lengths(random_model):
    for frames in (1, 100, 4097, 20001):
        y = np.clip(music(1, RATE, 1, seed=16)[:frames, 0], -0.3, 0.3)
        out = restore(y, RATE, random_model, levels=ClippingLevels.uniform(1, 0.3, -0.3))
        assert out.shape == (frames,)


def test_unclipped_audio_comes_back_unchanged(random_model):
    y = music(2, RATE, seed=17)
    assert np.array_equal(restore(y, RATE, random_model), y)


def test_bad_input_is_refused(random_model):
    with pytest.raises(ValueError, match="sample rate"):
        restore(np.zeros(100, np.float32), 4000, random_model)
    with pytest.raises(ValueError, match="floating point"):
        restore(np.zeros(100, np.int16), RATE, random_model)
    with pytest.raises(ValueError, match="NaN"):
        restore(np.full(100, np.nan, np.float32), RATE, random_model)
    with pytest.raises(ValueError, match="frames"):
        restore(np.zeros((2, 3, 4), np.float32), RATE, random_model)


def assert_consistent_and_scale_equivariant(model, y, levels, out, gain, engine):
    """Reliable samples kept bit for bit, clipping the output gives y back, a scaled input a scaled output."""
    theta = levels.upper[0]
    saturated = np.abs(y) >= theta
    assert out.shape == y.shape and np.array_equal(out[~saturated], y[~saturated])
    assert np.array_equal(np.clip(out, -theta, theta), y)
    scaled = restore((gain * y).astype(np.float32), RATE, model,
                     levels=ClippingLevels.uniform(2, gain * theta, -gain * theta), engine=engine)
    np.testing.assert_allclose(scaled, gain * out, rtol=1e-4, atol=1e-6)


def test_free_output_is_projected_and_scale_equivariant():
    free = Declipper(UNetConfig(widths=(8, 16, 32), kernel=5, stride=4, output="free")).eval()
    y, levels = clip_at_input_sdr(music(2, RATE, seed=13), 5.0)
    fp32 = EngineSettings(precision="fp32")
    out = restore(y, RATE, free, levels=levels, engine=fp32)
    assert_consistent_and_scale_equivariant(free, y, levels, out, 2.5, fp32)


def test_unknown_output_parameterisation_is_refused():
    with pytest.raises(ValueError, match="output"):
        Declipper(UNetConfig(output="unbounded"))


def test_spectral_network_is_consistent_scale_equivariant_and_round_trips(tmp_path):
    """The STFT-domain U-Net keeps every property the time-domain one has, and survives a checkpoint."""
    config = UNetConfig(widths=(4, 8, 16), kernel=3, stride=2, domain="stft", n_fft=256, hop=64)
    model = Declipper(config).eval()
    y, levels = clip_at_input_sdr(music(1, RATE, seed=21), 3.0)
    fp32 = EngineSettings(precision="fp32", window=4096)
    out = restore(y, RATE, model, levels=levels, engine=fp32)
    assert_consistent_and_scale_equivariant(model, y, levels, out, 0.5, fp32)
    assert np.abs(out[np.abs(y) >= levels.upper[0]]).min() >= levels.upper[0]
    save_checkpoint(tmp_path / "s.pt", model, {})
    loaded, _ = load_checkpoint(tmp_path / "s.pt")
    assert loaded.config == config
    np.testing.assert_array_equal(restore(y, RATE, loaded, levels=levels, engine=fp32), out)


def test_spectral_scales_average_one_network_run_on_longer_frames(tmp_path):
    """STFT scales 1 and 2 restore with the mean of the same weights on n_fft and on 2 n_fft frames,
    keep consistency and scale equivariance, and survive a checkpoint."""
    torch.manual_seed(4)
    config = UNetConfig(widths=(4, 8, 16), kernel=3, stride=2, domain="stft", n_fft=256, hop=64, scales=(1, 2))
    model = Declipper(config).eval()
    assert config.multiple == 128 and config.shortest == 128 * 4  # two frames at the deepest level
    y, levels = clip_at_input_sdr(music(1, RATE, seed=23), 3.0)
    fp32 = EngineSettings(precision="fp32", window=4096)
    out = restore(y, RATE, model, levels=levels, engine=fp32)
    alone = []
    for n_fft, hop in ((256, 64), (512, 128)):
        single = Declipper(UNetConfig(widths=(4, 8, 16), kernel=3, stride=2, domain="stft", n_fft=n_fft, hop=hop))
        single.load_state_dict(model.state_dict())
        alone.append(restore(y, RATE, single.eval(), levels=levels, engine=fp32))
    np.testing.assert_allclose(out, (alone[0] + alone[1]) / 2, rtol=1e-5, atol=1e-6)
    assert np.abs(alone[0] - alone[1]).max() > 1e-3  # the two frame lengths do see different things
    assert_consistent_and_scale_equivariant(model, y, levels, out, 0.5, fp32)
    save_checkpoint(tmp_path / "s.pt", model, {})
    loaded, _ = load_checkpoint(tmp_path / "s.pt")
    assert loaded.config == config
    np.testing.assert_array_equal(restore(y, RATE, loaded, levels=levels, engine=fp32), out)


def test_windows_are_never_shorter_than_the_network_needs():
    """A spectral U-Net whose deepest level would see one frame gets longer windows from the engine."""
    model = Declipper(UNetConfig(widths=(4, 8, 16), kernel=3, stride=2, domain="stft", n_fft=256, hop=64,
                                 scales=(1, 2))).eval()
    engine = StreamingRestorer(model, ClippingLevels.uniform(1, 0.5, -0.5), EngineSettings(window=256))
    assert engine.window == 512


def test_an_ensemble_restores_with_the_mean_of_its_members_and_round_trips(tmp_path, random_model):
    """Waveform and spectral members together: still consistent and scale-equivariant, the mean of
    what each restores alone, and the same after a checkpoint."""
    torch.manual_seed(3)
    spectral = Declipper(UNetConfig(widths=(4, 8, 16), kernel=3, stride=2, domain="stft", n_fft=256, hop=64)).eval()
    ensemble = Ensemble.of([random_model, spectral]).eval()
    assert ensemble.config.multiple == 64  # lcm of the members' 16 and 64
    y, levels = clip_at_input_sdr(music(1, RATE, seed=22), 3.0)
    fp32 = EngineSettings(precision="fp32", window=4096)
    out = restore(y, RATE, ensemble, levels=levels, engine=fp32)
    alone = [restore(y, RATE, member, levels=levels, engine=fp32) for member in (random_model, spectral)]
    np.testing.assert_allclose(out, (alone[0] + alone[1]) / 2, rtol=1e-5, atol=1e-6)
    assert np.abs(out - alone[0]).max() > 1e-3  # the spectral member does count
    assert_consistent_and_scale_equivariant(ensemble, y, levels, out, 2.0, fp32)
    save_checkpoint(tmp_path / "e.pt", ensemble, {})
    loaded, metadata = load_checkpoint(tmp_path / "e.pt")
    assert metadata["architecture"] == "ensemble" and loaded.config == ensemble.config
    np.testing.assert_array_equal(restore(y, RATE, loaded, levels=levels, engine=fp32), out)


def test_unknown_domain_is_refused():
    with pytest.raises(ValueError, match="domain"):
        Declipper(UNetConfig(domain="wavelet"))


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_time_layers_compute_what_conv1d_computes(stride):
    """The channels-last row layers and the folded strided convolution are Conv1d in another layout."""
    torch.manual_seed(stride)
    x = torch.randn(2, 5, 1, 96 * stride + 1).contiguous(memory_format=torch.channels_last)
    plain = x.squeeze(2).contiguous()
    folded = FoldedConv1d(5, 7, stride)
    reference = torch.nn.functional.conv1d(plain, folded.weight, stride=stride, padding=stride // 2)
    torch.testing.assert_close(folded(x).squeeze(2), reference, rtol=1e-5, atol=1e-5)
    row = RowConv1d(5, 7, 5, padding=2, bias=False)
    torch.testing.assert_close(row(x).squeeze(2), torch.nn.functional.conv1d(plain, row.weight, padding=2))
    up = RowConvTranspose1d(5, 7, stride, stride=stride, bias=False)
    torch.testing.assert_close(up(x).squeeze(2), torch.nn.functional.conv_transpose1d(plain, up.weight, stride=stride))


@pytest.mark.parametrize("stride, kernel", [(2, 3), (2, 5), (4, 7), (4, 9)])
def test_the_full_rate_level_on_folded_phases_computes_what_its_layers_compute(stride, kernel):
    """The waveform U-Net runs its full-rate level on the signal folded into phases (faster on CPUs):
    the output must be what the same layers give on the plain signal."""
    torch.manual_seed(kernel)
    net = UNet1d(UNetConfig(widths=(4, 8, 16), kernel=kernel, stride=stride))
    x = torch.randn(3, 3, 5 * net.config.multiple)
    with torch.no_grad():  # in inference on a CPU the ReLUs and sums run inside the convolutions
        plain = UNet.forward(net, x.unsqueeze(2).contiguous(memory_format=torch.channels_last)).squeeze(2)
        torch.testing.assert_close(net(x), plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net(x.requires_grad_()).detach(), plain, rtol=1e-5, atol=1e-5)  # in training apart
    with pytest.raises(ValueError, match="two widths"):
        UNet1d(UNetConfig(widths=(8,)))


def test_without_the_fused_operator_the_network_falls_back_to_plain_convolutions(monkeypatch):
    """oneDNN's fused convolution is an internal operator: where it is missing, nothing may change."""
    import declipper.network as network

    torch.manual_seed(1)
    net = UNet1d(UNetConfig(widths=(4, 8, 16), kernel=5, stride=4))
    x = torch.randn(2, 3, 4 * net.config.multiple)
    with torch.no_grad():
        fused = net(x)
        monkeypatch.setattr(network, "_FUSED_CONV", None)
        network._fused_conv_works.cache_clear()
        try:
            assert not network._fused_conv_works(torch.float32)
            torch.testing.assert_close(net(x), fused, rtol=1e-5, atol=1e-5)
        finally:
            network._fused_conv_works.cache_clear()


def test_parallel_workers_restore_what_one_worker_restores(random_model):
    """Batches run side by side on CPU workers; how they are shared out must not change the audio."""
    y, levels = clip_at_input_sdr(music(3, RATE, seed=17), 5.0)
    one = restore(y, RATE, random_model, levels=levels, engine=EngineSettings(window=4096, precision="fp32", workers=1))
    for workers in (2, 3):
        several = restore(y, RATE, random_model, levels=levels,
                          engine=EngineSettings(window=4096, precision="fp32", workers=workers, batch=4))
        np.testing.assert_allclose(several, one, rtol=1e-5, atol=1e-6)


def test_the_sign_symmetric_restorer_is_odd_consistent_and_the_mean_of_both_views(random_model):
    y, levels = clip_at_input_sdr(music(2, RATE, seed=18), 5.0)
    fp32 = EngineSettings(precision="fp32")
    symmetric = SignSymmetric(random_model)
    out = restore(y, RATE, symmetric, levels=levels, engine=fp32)
    negated = ClippingLevels(tuple(-v for v in levels.lower), tuple(-v for v in levels.upper),
                             levels.lower_spread, levels.upper_spread)
    direct = restore(y, RATE, random_model, levels=levels, engine=fp32)
    flipped = restore(-y, RATE, random_model, levels=negated, engine=fp32)
    np.testing.assert_allclose(out, (direct - flipped) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(restore(-y, RATE, symmetric, levels=negated, engine=fp32), -out, rtol=1e-5, atol=1e-6)
    reliable = np.abs(y) < levels.upper[0] * (1 - 1e-4)
    assert np.array_equal(out[reliable], y[reliable])
    assert (np.abs(out[~reliable]) >= levels.upper[0] * (1 - 1e-4)).all()
    np.testing.assert_allclose(restore(3 * y, RATE, symmetric, engine=fp32), 3 * restore(y, RATE, symmetric, engine=fp32),
                               rtol=1e-4, atol=1e-5)


def test_bf16_that_disagrees_with_fp32_falls_back_to_fp32(random_model, monkeypatch):
    """A wrong bf16 kernel must not ruin audio silently: ``auto`` precision then restores in fp32."""
    y, levels = clip_at_input_sdr(music(2, RATE, seed=15), 5.0)
    model = Declipper(random_model.config)
    model.load_state_dict(random_model.state_dict())
    reference = restore(y, RATE, model, levels=levels, engine=EngineSettings(precision="fp32"))
    forward = model.net.forward

    def broken_in_bf16(features):  # what the oneDNN bug did: garbage from bf16 kernels
        output = forward(features)
        return output * 3 if torch.is_autocast_enabled("cpu") else output

    monkeypatch.setattr(model.net, "forward", broken_in_bf16)
    monkeypatch.setattr("declipper.engine.bf16_is_fast", lambda device: True)
    with pytest.warns(RuntimeWarning, match="restoring in fp32"):
        restored = restore(y, RATE, model, levels=levels)
    np.testing.assert_array_equal(restored, reference)


def test_untied_spectral_scales_restore_as_the_shared_weights_did(tmp_path):
    """One spectral copy per frame length, each with its share: the same restoration, and the
    shares survive a checkpoint; shares that do not sum to one are refused."""
    torch.manual_seed(4)
    shared = Declipper(UNetConfig(widths=(4, 8, 16), kernel=3, stride=2, domain="stft", n_fft=256, hop=64,
                                  scales=(1, 2))).eval()
    untied = untie_scales(shared).eval()
    assert [m.config.scales for m in untied.members] == [(1,), (2,)] and untied.config.weights == (0.5, 0.5)
    assert untie_scales(untied) is None  # nothing left to untie
    y, levels = clip_at_input_sdr(music(1, RATE, seed=23), 3.0)
    fp32 = EngineSettings(precision="fp32", window=4096)
    out = restore(y, RATE, untied, levels=levels, engine=fp32)
    np.testing.assert_allclose(out, restore(y, RATE, shared, levels=levels, engine=fp32), rtol=1e-5, atol=1e-6)
    save_checkpoint(tmp_path / "u.pt", untied, {})
    loaded, _ = load_checkpoint(tmp_path / "u.pt")
    assert loaded.config == untied.config
    np.testing.assert_array_equal(restore(y, RATE, loaded, levels=levels, engine=fp32), out)
    with pytest.raises(ValueError, match="summing to 1"):
        EnsembleConfig(untied.config.members, (0.5, 0.6))
