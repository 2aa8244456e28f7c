"""The Alpamayo-R1 port: the released checkpoint layout loads strictly, the processor loads from local files,
the pair's start noise does not depend on the reasoning length, and the parts match hand computations."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.device import DevicePolicy
from core.errors import LanepaintError
from vla.alpamayo.action_space import UnicycleAccelCurvature, speeds_from_history
from vla.alpamayo.loader import load_checkpoint
from vla.alpamayo.predictor import start_noise
from vla.alpamayo.processor import load_processor, tokenize
from vla.alpamayo.tiny import build_tiny_alpamayo, tiny_backbone_config, tiny_config, tiny_tokenizer
from vla.alpamayo.tokens import history_tokens
from vla.model_io import ModelInput

CPU = DevicePolicy("cpu", "float32", False)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_alpamayo()


def _released_keys(config, backbone: dict) -> dict[str, torch.Tensor]:
    """The released checkpoint's tensors, derived from the architecture, not from our model class: the
    Qwen3-VL model under ``vlm.``, its text model (without embeddings, with the expert overrides) under
    ``expert.``, and the action modules by their upstream structure."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel

    vlm_config = Qwen3VLConfig(**backbone)
    vlm_config.text_config.vocab_size = config.vocab_size
    tensors = {f"vlm.{k}": v for k, v in Qwen3VLForConditionalGeneration(vlm_config).state_dict().items()}
    text = vlm_config.text_config
    for key, value in config.expert_cfg.items():
        setattr(text, key, value)
    tensors |= {f"expert.{k}": v for k, v in Qwen3VLTextModel(text).state_dict().items()
                if not k.startswith("embed_tokens")}
    proj = config.action_in_proj_cfg
    hidden, layers, feats, width = proj["hidden_size"], proj["num_enc_layers"], proj["num_fourier_feats"], text.hidden_size
    tensors |= {f"action_in_proj.sinus.{i}.freqs": torch.rand(1, feats // 2) for i in range(2)}
    tensors["action_in_proj.timestep_fourier_encoder.freqs"] = torch.rand(1, feats // 2)
    tensors["action_in_proj.encoder.trunk.0.weight"] = torch.rand(hidden, 3 * feats)   # (2 dims + time) x feats
    tensors["action_in_proj.encoder.trunk.0.bias"] = torch.rand(hidden)
    for k in range(layers):                    # [Linear, SiLU] then per layer [RMSNorm, Linear(, SiLU)]
        out = width if k == layers - 1 else hidden
        tensors[f"action_in_proj.encoder.trunk.{2 + 3 * k}.weight"] = torch.rand(hidden)
        tensors[f"action_in_proj.encoder.trunk.{3 + 3 * k}.weight"] = torch.rand(out, hidden)
        tensors[f"action_in_proj.encoder.trunk.{3 + 3 * k}.bias"] = torch.rand(out)
    tensors |= {"action_in_proj.norm.weight": torch.rand(width), "action_in_proj.norm.bias": torch.rand(width),
                "action_out_proj.weight": torch.rand(2, width), "action_out_proj.bias": torch.rand(2)}
    tensors |= {f"action_space.{n}": torch.tensor(0.5) for n in ("accel_mean", "accel_std", "curvature_mean",
                                                                  "curvature_std")}
    return {k: v.clone().contiguous() for k, v in tensors.items()}


def _release(tmp_path, mutate=None) -> str:
    """A checkpoint folder as released: config.json (no embedded backbone config: it names a backbone
    folder holding the Qwen3-VL config and tokenizer), model.safetensors."""
    tokenizer = tiny_tokenizer()
    config = tiny_config(tokenizer)
    backbone = tmp_path / "backbone"
    from transformers import Qwen3VLConfig

    Qwen3VLConfig(**tiny_backbone_config(tokenizer)).save_pretrained(backbone)
    release = config.to_dict()
    release.pop("vlm_config")
    release |= {"vlm_name_or_path": str(backbone), "attn_implementation": "flash_attention_2",
                "model_dtype": "bfloat16", "architectures": ["AlpamayoR1"]}
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(release))
    tensors = _released_keys(config, tiny_backbone_config(tokenizer))
    if mutate:
        mutate(tensors)
    save_file(tensors, str(folder / "model.safetensors"))
    return str(folder)


def test_a_checkpoint_in_the_released_layout_loads_strictly(tmp_path):
    folder = _release(tmp_path)
    model = load_checkpoint(folder, CPU, local_only=True)
    loaded = model.state_dict()
    assert set(loaded) == set(_released_keys(model.config, tiny_backbone_config(tiny_tokenizer())))
    from safetensors.torch import load_file

    for key, value in load_file(os.path.join(folder, "model.safetensors")).items():
        assert torch.equal(loaded[key], value), key
    assert model.config.vlm_name_or_path.endswith("backbone") and model.diffusion_steps == 3


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.update({"action_in_proj.extra.weight": torch.zeros(1)}), "1 unexpected keys"),
    (lambda t: t.pop("expert.norm.weight"), "1 missing keys"),
])
def test_a_checkpoint_that_does_not_match_is_one_line(tmp_path, mutate, message):
    with pytest.raises(LanepaintError) as info:
        load_checkpoint(_release(tmp_path, mutate), CPU, local_only=True)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_processor_loads_offline_from_local_files(tmp_path, monkeypatch):
    """The backbone's tokenizer and the processor's image config and chat template from local folders, with
    the hub switched off: the extended tokenizer gives the checkpoint's token ids."""
    from core.tokenizers import qwen_image_processor_class, tiny_qwen_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tiny_config(tiny_tokenizer())
    config.vlm_name_or_path = str(tmp_path / "backbone")
    tiny_qwen_tokenizer().save_pretrained(config.vlm_name_or_path)          # the backbone's own tokenizer
    processor_dir = tmp_path / "processor"
    qwen_image_processor_class()(patch_size=16, merge_size=2).save_pretrained(processor_dir)
    (processor_dir / "chat_template.jinja").write_text("{% for m in messages %}[{{ m['role'] }}]{% endfor %}")
    processor = load_processor(config, str(processor_dir), local_only=True)
    assert processor.tokenizer.convert_tokens_to_ids("<i0>") == config.traj_token_start_idx
    assert len(processor.tokenizer) == config.vocab_size and processor.chat_template.startswith("{% for m")
    config.traj_token_start_idx += 1
    with pytest.raises(LanepaintError, match="does not match the checkpoint"):
        load_processor(config, str(processor_dir), local_only=True)
    with pytest.raises(LanepaintError, match="from the local cache"):
        load_processor(config, str(tmp_path / "no-such-processor"), local_only=True)


class ForceStop:
    """Row 0 samples <|traj_future_start|> at its second step; the other rows never do."""

    def __init__(self, marker: int) -> None:
        self.marker, self.step = marker, 0

    def __call__(self, input_ids, scores):
        self.step += 1
        scores[:, self.marker] = float("-inf")
        if self.step == 2:
            scores[0, :] = float("-inf")
            scores[0, self.marker] = 0.0
        return scores


def _pair_inputs(processor, seed=0):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, (8, 64, 96, 3), dtype=np.uint8) for _ in range(2)]
    history = torch.zeros(2, 16, 3)
    history[:, :, 0] = torch.linspace(-13.5, 0, 16)
    return tokenize(processor, frames), history, torch.eye(3).repeat(2, 16, 1, 1)


def test_the_pair_starts_from_the_same_noise_whatever_the_reasoning_length(tiny):
    model, processor = tiny
    tokenized, hist_xyz, hist_rot = _pair_inputs(processor)
    noise = start_noise(7, 2, model.action_space.dims).repeat(2, 1, 1)      # [B * S], sample k shared
    marker = model.config.token_id("future_start")
    out = model.sample(tokenized, hist_xyz, hist_rot, noise, tokenizer=processor.tokenizer, num_samples=2,
                       max_new_tokens=10, logits_processors=[ForceStop(marker)])
    assert out.reasoning_tokens[0][0] == 2 and out.reasoning_tokens[1] == [10, 10]     # lengths differ
    assert torch.equal(out.start_noise[:2], out.start_noise[2:])                          # noise does not
    again = model.sample(*_pair_inputs(processor)[:1], hist_xyz, hist_rot,
                         start_noise(7, 2, model.action_space.dims).repeat(2, 1, 1), tokenizer=processor.tokenizer,
                         num_samples=2, max_new_tokens=4)
    assert torch.equal(again.start_noise, out.start_noise)       # ... nor on how long the reasoning was
    assert out.xyz.shape == (2, 2, 64, 3) and out.rot.shape == (2, 2, 64, 3, 3)


def test_predictions_repeat_exactly_for_the_same_seed(tiny):
    from vla.alpamayo.loader import LoadedAlpamayo
    from vla.alpamayo.predictor import AlpamayoPredictor

    model, processor = tiny
    predictor = AlpamayoPredictor(LoadedAlpamayo(model, processor, {}), CPU, num_samples=2, max_new_tokens=6)
    rng = np.random.default_rng(1)
    history = np.zeros((16, 3))
    history[:, 0] = np.linspace(-13.5, 0, 16)
    inputs = [ModelInput(rng.integers(0, 255, (2, 4, 64, 96, 3), dtype=np.uint8), np.array([1, 6]), history,
                         np.repeat(np.eye(3)[None], 16, 0)) for _ in range(2)]
    first = predictor.predict(inputs, seed=11)
    second = predictor.predict(inputs, seed=11)
    other = predictor.predict(inputs, seed=12)
    assert all(np.array_equal(a.xyz, b.xyz) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0].xyz, other[0].xyz)
    assert first[0].xyz.shape == (2, 64, 3) and len(first[0].reasoning) == 2


# ---- the parts against hand computations ------------------------------------------------------------
def test_history_tokens_are_binned_deltas():
    xyz = torch.tensor([[[1.0, 0.0, 0.0], [3.0, -4.0, 10.0]]])
    tokens = history_tokens(xyz, num_bins=9, xyz_min=(-4, -4, -10), xyz_max=(4, 4, 10))
    # deltas (1, 0, 0) then (2, -4, 10): (d - min) / (max - min) * 8, rounded
    assert tokens.tolist() == [[5, 4, 4, 6, 0, 8]]


def test_speed_fit_solves_the_regularised_normal_equations():
    rng = np.random.default_rng(0)
    yaw = np.cumsum(rng.normal(0, 0.02, 16))
    speed = 8 + np.cumsum(rng.normal(0, 0.1, 16))
    xy = np.zeros((16, 2))
    for t in range(15):      # trapezoid steps, as the model defines them
        xy[t + 1] = xy[t] + 0.05 * (speed[t] * np.array([np.cos(yaw[t]), np.sin(yaw[t])])
                                    + speed[t + 1] * np.array([np.cos(yaw[t + 1]), np.sin(yaw[t + 1])]))
    got = speeds_from_history(torch.tensor(xy[None]), torch.tensor(yaw[None]), 0.1, 1e-6, 1e-4)[0].numpy()
    a = np.zeros((30, 16))
    for t in range(15):
        a[2 * t, t:t + 2] = np.cos(yaw[t:t + 2])
        a[2 * t + 1, t:t + 2] = np.sin(yaw[t:t + 2])
    d3 = np.zeros((13, 16))
    for r in range(13):
        d3[r, r:r + 4] = (-1, 3, -3, 1)
    lhs = a.T @ a + 1e-6 / 0.1**6 * d3.T @ d3 + 1e-4 * np.eye(16)
    expected = np.linalg.solve(lhs, a.T @ (2 / 0.1 * np.diff(xy, axis=0)).reshape(-1))
    assert np.allclose(got, expected, atol=1e-8) and abs(got[-1] - speed[-1]) < 0.05


def test_zero_action_drives_straight_and_constant_curvature_drives_a_circle():
    space = UnicycleAccelCurvature(accel_mean=0.0, accel_std=2.0, curvature_mean=0.0, curvature_std=0.05)
    history = torch.zeros(1, 16, 3)
    history[0, :, 0] = torch.linspace(-15.0, 0.0, 16)          # 10 m/s along x
    rot = torch.eye(3).repeat(1, 16, 1, 1)
    v0 = float(space.speed_at_t0(history, rot)[0])
    assert abs(v0 - 10.0) < 1e-3                                # the ridge pulls it by a hair
    xyz, out_rot = space.action_to_traj(torch.zeros(1, 64, 2), history, rot)
    assert torch.allclose(xyz[0, :, 0], torch.arange(1, 65) * 0.1 * v0, atol=1e-4) and xyz[0, :, 1].abs().max() < 1e-6
    action = torch.zeros(1, 64, 2)
    action[..., 1] = 0.4                                        # kappa = 0.4 * 0.05 = 0.02 1/m: radius 50 m
    xyz, out_rot = space.action_to_traj(action, history, rot)
    radius = torch.linalg.norm(xyz[0, :, :2] - torch.tensor([0.0, 50.0]), dim=-1)
    assert torch.allclose(radius, torch.full_like(radius, 50.0), atol=0.02)
    heading = torch.atan2(out_rot[0, :, 1, 0], out_rot[0, :, 0, 0])
    assert torch.allclose(heading[-1], torch.tensor(64 * 1.0 * 0.02), atol=1e-3)
