"""LPIPS with the SqueezeNet 1.1 backbone in plain torch: no torchvision needed.

Entry point: ``load_squeeze_lpips(profile, device, cache_dir=None) -> SqueezeLpips``; call it as
``net(a, b) -> [N]`` with float images ``[N,3,H,W]`` in [0,1].

The network is the one torchmetrics' ``LearnedPerceptualImagePatchSimilarity(net_type="squeeze")`` runs
(and upstream VideoPainter's evaluation with it): inputs mapped to [-1,1], shifted and scaled per channel,
the seven ReLU outputs of SqueezeNet 1.1's feature stack (after layers 1, 4, 7, 9, 10, 11 and 12), each
unit-normalised over channels, squared differences weighted by a 1x1 convolution, averaged over space and
summed over the seven layers.

Weights:

- ``full``: the backbone is torchvision's ImageNet SqueezeNet 1.1 checkpoint (``SQUEEZENET_URL``, fetched
  once into the torch hub cache or ``cache_dir``, its hash prefix checked by torch.hub), the linear heads
  are LPIPS v0.1's, which torchmetrics ships in its package (``lpips_models/squeeze.pth``). State-dict keys
  are torchvision's ``features.<i>...`` and LPIPS's ``lin<k>.model.1.weight``, loaded as they are.
- ``tiny``: the same modules with seeded random weights, the heads made non-negative (offline; the values
  mean nothing).
"""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

log = logging.getLogger(__name__)

SQUEEZENET_URL = "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"
LAYER_ENDS = (2, 5, 8, 10, 11, 12, 13)          # the feature stack is cut after these many modules
CHANNELS = (64, 128, 256, 384, 384, 512, 512)   # the channels of each cut
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-8


class Fire(nn.Module):
    """SqueezeNet's fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated over channels."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], dim=1)


def squeezenet11_features() -> nn.Sequential:
    """SqueezeNet 1.1's feature stack, module for module (so torchvision's checkpoint keys load)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
    )


class _Lin(nn.Module):
    """LPIPS's linear head: (dropout, unused in eval) then a bias-free 1x1 convolution to one channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SqueezeLpips(nn.Module):
    """LPIPS distance (SqueezeNet 1.1); see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.features = squeezenet11_features()
        for k, channels in enumerate(CHANNELS):
            self.add_module(f"lin{k}", _Lin(channels))
        self.register_buffer("shift", torch.tensor(SHIFT)[None, :, None, None], persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE)[None, :, None, None], persistent=False)

    def _layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for end in LAYER_ENDS:
            for index in range(start, end):
                x = self.features[index](x)
            out.append(x)
            start = end
        return out

    @torch.inference_mode()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances ``[N]`` between ``a`` and ``b``, float ``[N,3,H,W]`` in [0,1]."""
        dtype = self.shift.dtype
        a, b = ((2 * x.to(dtype) - 1 - self.shift) / self.scale for x in (a, b))
        total = torch.zeros(a.shape[0], device=a.device, dtype=dtype)
        for k, (fa, fb) in enumerate(zip(self._layers(a), self._layers(b), strict=True)):
            fa = fa / torch.sqrt(NORM_EPS + (fa**2).sum(dim=1, keepdim=True))
            fb = fb / torch.sqrt(NORM_EPS + (fb**2).sum(dim=1, keepdim=True))
            total += getattr(self, f"lin{k}")((fa - fb) ** 2).mean(dim=(1, 2, 3))
        return total


def _lin_weights() -> dict[str, torch.Tensor]:
    try:
        import torchmetrics.functional.image.lpips as tm_lpips
    except ImportError as exc:
        raise RuntimeError("LPIPS's linear heads come with torchmetrics, which is not installed") from exc
    path = os.path.join(os.path.dirname(tm_lpips.__file__), "lpips_models", "squeeze.pth")
    if not os.path.isfile(path):
        raise RuntimeError(f"LPIPS's squeeze heads are missing from torchmetrics ({path})")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_squeeze_lpips(profile: str, device: str | torch.device = "cpu", cache_dir: str | None = None) -> SqueezeLpips:
    """The network with its weights (see the module docstring), in eval mode on ``device``, float32."""
    if profile == "tiny":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = SqueezeLpips()
        with torch.no_grad():      # LPIPS's trained heads are non-negative: so are the random ones
            for k in range(len(CHANNELS)):
                getattr(net, f"lin{k}").model[1].weight.abs_()
    else:
        net = SqueezeLpips()
        backbone = torch.hub.load_state_dict_from_url(
            SQUEEZENET_URL, model_dir=os.path.join(cache_dir, "torch_hub") if cache_dir else None,
            map_location="cpu", check_hash=True, progress=False, weights_only=True)
        features = {k: v for k, v in backbone.items() if k.startswith("features.")}
        lins = {k: v for k, v in _lin_weights().items() if k.startswith("lin")}
        missing, unexpected = net.load_state_dict({**features, **lins}, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"LPIPS weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        log.info("LPIPS: SqueezeNet 1.1 (%s) with LPIPS v0.1 heads", SQUEEZENET_URL.rsplit("/", 1)[-1])
    for param in net.parameters():
        param.requires_grad_(False)
    return net.to(device).eval()
