"""Our plain-torch LPIPS (SqueezeNet 1.1) against torchmetrics' own LPIPS module on the same weights."""

import copy

import numpy as np
import pytest
import torch

from generation.quality import lpips_net


@pytest.fixture(scope="module")
def ours():
    net = lpips_net.load_squeeze_lpips("tiny")
    net.load_state_dict(lpips_net._lin_weights(), strict=False)      # the trained LPIPS v0.1 heads
    return net


def _images(n=3, h=70, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, h, w, generator=g)
    return a, (a + 0.15 * torch.randn(n, 3, h, w, generator=g)).clamp(0, 1)


def test_matches_torchmetrics_lpips_on_the_same_weights(ours, monkeypatch):
    """torchmetrics builds the backbone with torchvision; hand it ours (same weights) and compare: the
    scaling, layer cuts, normalisation, heads and averaging are then torchmetrics' code against ours."""
    from torchmetrics.functional.image import lpips as tm

    monkeypatch.setattr(tm, "_get_tv_model_features", lambda net, pretrained: copy.deepcopy(ours.features))
    reference = tm._LPIPS(pretrained=True, net="squeeze", pnet_rand=False).eval()
    a, b = _images()
    with torch.no_grad():
        expected = reference(a, b, normalize=True).reshape(-1)
    got = ours(a, b)
    assert got.shape == (3,) and torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert float(ours(a, a).abs().max()) == 0.0


def test_the_feature_stack_is_squeezenet_1_1():
    """Layer for layer the torchvision module list: the parameter names and shapes its checkpoint holds."""
    shapes = {k: tuple(v.shape) for k, v in lpips_net.squeezenet11_features().state_dict().items()}
    assert len(shapes) == 2 + 8 * 6 and shapes["0.weight"] == (64, 3, 3, 3)
    fires = {3: (64, 16, 64), 4: (128, 16, 64), 6: (128, 32, 128), 7: (256, 32, 128), 9: (256, 48, 192),
             10: (384, 48, 192), 11: (384, 64, 256), 12: (512, 64, 256)}
    for index, (inplanes, squeeze, expand) in fires.items():
        assert shapes[f"{index}.squeeze.weight"] == (squeeze, inplanes, 1, 1)
        assert shapes[f"{index}.expand1x1.weight"] == (expand, squeeze, 1, 1)
        assert shapes[f"{index}.expand3x3.weight"] == (expand, squeeze, 3, 3)
    try:
        import torchvision
    except ImportError:
        return
    reference = torchvision.models.squeezenet1_1(weights=None).features.eval()
    mine = lpips_net.squeezenet11_features().eval()
    mine.load_state_dict(reference.state_dict())
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(mine(x), reference(x))


def test_distance_grows_with_the_difference_and_is_batch_independent(ours):
    a, _ = _images(n=1, seed=1)
    rng = np.random.default_rng(0)
    noise = torch.from_numpy(rng.normal(0, 1, a.shape).astype(np.float32))
    values = [float(ours(a, (a + s * noise).clamp(0, 1))[0]) for s in (0.02, 0.1, 0.3)]
    assert values[0] < values[1] < values[2]
    a3, b3 = _images(n=3, seed=2)
    together = ours(a3, b3)
    apart = torch.cat([ours(a3[i:i + 1], b3[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, apart, rtol=1e-5, atol=1e-7)


def test_full_profile_loads_the_backbone_from_the_cache_dir(tmp_path, monkeypatch):
    """No network: the checkpoint torch.hub would fetch is planted under cache_dir with its hashed name."""
    seen = {}

    def fake_fetch(url, model_dir=None, **kwargs):
        seen.update(url=url, model_dir=model_dir, check_hash=kwargs.get("check_hash"))
        return {f"features.{k}": v for k, v in lpips_net.squeezenet11_features().state_dict().items()}

    monkeypatch.setattr(lpips_net.torch.hub, "load_state_dict_from_url", fake_fetch)
    net = lpips_net.load_squeeze_lpips("full", "cpu", cache_dir=str(tmp_path))
    assert seen == {"url": lpips_net.SQUEEZENET_URL, "model_dir": str(tmp_path / "torch_hub"), "check_hash": True}
    heads = lpips_net._lin_weights()
    assert torch.equal(net.lin3.model[1].weight, heads["lin3.model.1.weight"])
