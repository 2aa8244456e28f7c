"""The VideoPainter port on upstream diffusers: branch layout, strict loading, injection, latent mask,
ID resampling, and the inpainting pipeline on tiny seeded models (2 steps)."""

import numpy as np
import pytest
import torch

from generation.tiny_models import TINY_SIZE, tiny_cogvideox_components, tiny_cogvideox_transformer
from generation.videopainter.branch import VideoPainterBranch
from generation.videopainter.hooks import BranchInjection, background_tokens, branch_index, pooled_token_mask
from generation.videopainter.id_resampling import IDResampleState, install_id_resampling, load_id_lora
from generation.videopainter.pipeline import VideoPainterPipeline, plan_windows

BLOCK_KEYS = {
    "norm1.linear.weight": ("6D", "te"), "norm1.linear.bias": ("6D",), "norm1.norm.weight": ("D",),
    "norm1.norm.bias": ("D",), "attn1.norm_q.weight": ("hd",), "attn1.norm_q.bias": ("hd",),
    "attn1.norm_k.weight": ("hd",), "attn1.norm_k.bias": ("hd",),
    **{f"attn1.{p}.weight": ("D", "D") for p in ("to_q", "to_k", "to_v", "to_out.0")},
    **{f"attn1.{p}.bias": ("D",) for p in ("to_q", "to_k", "to_v", "to_out.0")},
    "norm2.linear.weight": ("6D", "te"), "norm2.linear.bias": ("6D",), "norm2.norm.weight": ("D",),
    "norm2.norm.bias": ("D",), "ff.net.0.proj.weight": ("4D", "D"), "ff.net.0.proj.bias": ("4D",),
    "ff.net.2.weight": ("D", "4D"), "ff.net.2.bias": ("D",),
}
TOP_KEYS = {
    "patch_embed.pos_embedding": (1, "L+N", "D"), "patch_embed.proj.weight": ("D", 33, 2, 2),
    "patch_embed.proj.bias": ("D",), "patch_embed.text_proj.weight": ("D", "text"),
    "patch_embed.text_proj.bias": ("D",), "time_embedding.linear_1.weight": ("te", "D"),
    "time_embedding.linear_1.bias": ("te",), "time_embedding.linear_2.weight": ("te", "te"),
    "time_embedding.linear_2.bias": ("te",), "branch_x_embedder.weight": ("D", 32), "branch_x_embedder.bias": ("D",),
    "norm_final.weight": ("D",), "norm_final.bias": ("D",), "norm_out.linear.weight": ("2D", "te"),
    "norm_out.linear.bias": ("2D",), "norm_out.norm.weight": ("D",), "norm_out.norm.bias": ("D",),
    "proj_out.weight": (64, "D"), "proj_out.bias": (64,),
    **{f"branch_blocks.{i}.{p}": shape for i in (0, 1) for p, shape in (("weight", ("D", "D")), ("bias", ("D",)))},
}


def released_layout(D, te, hd, text, L, N):
    """TencentARC's branch checkpoint (71 tensors) with its dimensions as parameters."""
    dims = {"D": D, "2D": 2 * D, "4D": 4 * D, "6D": 6 * D, "te": te, "hd": hd, "text": text, "L+N": L + N}
    keys = dict(TOP_KEYS) | {f"transformer_blocks.{b}.{k}": v for b in (0, 1) for k, v in BLOCK_KEYS.items()}
    return {k: tuple(dims.get(d, d) for d in shape) for k, shape in keys.items()}


def shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def components():
    return tiny_cogvideox_components(0)


def test_default_branch_has_the_released_checkpoint_layout():
    with torch.device("meta"):
        branch = VideoPainterBranch()
    expected = released_layout(D=3072, te=512, hd=64, text=4096, L=226, N=13 * 30 * 45)
    assert len(expected) == 71
    assert shapes(branch) == expected          # (1, 17776, 3072) positional embedding, (3072, 33, 2, 2) proj
    assert round(sum(p.numel() for p in branch.parameters()) / 1e6, 1) == 301.6


def test_tiny_branch_from_tiny_transformer_has_the_layout_scaled_down(components):
    transformer, branch = components["transformer"], components["branch"]
    cfg = transformer.config
    D = cfg.num_attention_heads * cfg.attention_head_dim
    tokens = 13 * (cfg.sample_height // 2) * (cfg.sample_width // 2)
    assert shapes(branch) == released_layout(D=D, te=cfg.time_embed_dim, hd=cfg.attention_head_dim,
                                             text=cfg.text_embed_dim, L=cfg.max_text_seq_length, N=tokens)
    # initialised from the backbone: blocks equal, masked-video channels copy the video weights
    assert torch.equal(branch.transformer_blocks[1].ff.net[2].weight, transformer.transformer_blocks[1].ff.net[2].weight)
    w = branch.patch_embed.proj.weight
    assert torch.equal(w[:, 16:32], transformer.patch_embed.proj.weight[:, :16]) and not w[:, 32].any()


def test_save_and_strict_from_pretrained_round_trip(components, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    branch = components["branch"]
    branch.save_pretrained(tmp_path / "branch")
    config_path = tmp_path / "branch" / "config.json"       # as written by VideoPainter's diffusers fork
    config = json.loads(config_path.read_text())
    config.update(_class_name="CogvideoXBranchModel", _diffusers_version="0.31.0.dev0", wo_text=False,
                  id_pool_resample_learnable=False)
    config_path.write_text(json.dumps(config))
    loaded = VideoPainterBranch.from_pretrained(tmp_path / "branch")
    assert loaded.config.num_layers == 2 and loaded.config.in_channels == 32
    for key, value in branch.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    weights = tmp_path / "branch" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state.pop("branch_blocks.1.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, weights)
    with pytest.raises(ValueError, match="missing keys: branch_blocks.1.bias.*unexpected keys: extra.weight"):
        VideoPainterBranch.from_pretrained(tmp_path / "branch")


def _branch_inputs(transformer, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = transformer.config
    h, w = cfg.sample_height, cfg.sample_width
    noisy = torch.randn(batch, 13, 16, h, w, generator=g)
    cond = torch.randn(batch, 13, 17, h, w, generator=g)
    text = torch.randn(batch, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g)
    image = torch.randn(batch, 13, 16, h, w, generator=g)
    return noisy, cond, text, image, torch.tensor([500] * batch)


def test_branch_outputs_one_residual_per_block_scaled_and_zero_when_fresh(components):
    transformer, branch = components["transformer"], components["branch"]
    noisy, cond, text, _, t = _branch_inputs(transformer)
    with torch.no_grad():
        out = branch(noisy, text, cond, t, conditioning_scale=1.0)
        half = branch(noisy, text, cond, t, conditioning_scale=0.5)
        fresh = VideoPainterBranch.from_transformer(transformer)(noisy, text, cond, t)
    tokens = 13 * (transformer.config.sample_height // 2) * (transformer.config.sample_width // 2)
    assert [o.shape for o in out] == [torch.Size([2, tokens, 32])] * 2
    assert all(torch.allclose(h * 2, o, atol=1e-6) for h, o in zip(half, out, strict=True))
    assert all(not f.any() for f in fresh)      # zero-initialised branch linears


def test_block_i_gets_branch_output_i_div_21_in_the_real_model():
    assert [branch_index(i, 42, 2) for i in (0, 20, 21, 41)] == [0, 0, 1, 1]
    assert [branch_index(i, 4, 2) for i in range(4)] == [0, 0, 1, 1]
    assert [branch_index(i, 5, 2) for i in range(5)] == [0, 0, 0, 1, 1]


def test_mask_add_targets_only_tokens_whose_pooled_mask_is_zero():
    mask = torch.zeros(1, 2, 1, 4, 6)
    mask[0, 0, 0, 1, 3] = 1.0            # one latent pixel: token (row 0, col 1) of frame 0
    mask[0, 1, 0, 2:4, 0:2] = 1.0        # a full patch: token (row 1, col 0) of frame 1
    pooled = pooled_token_mask(mask, 2)
    assert pooled.shape == (1, 12) and pooled[0, 1] == 0.25 and pooled[0, 6 + 3] == 1.0
    keep = background_tokens(mask, 2)[0, :, 0]
    assert keep.sum() == 10 and not keep[1] and not keep[9]


def _capture_block(transformer, index, store):
    def hook(module, args, output):
        store.append(output[0].detach().clone())
    return transformer.transformer_blocks[index].register_forward_hook(hook)


def test_injection_changes_only_the_intended_tokens_and_is_removed_after(components):
    transformer = components["transformer"]
    noisy, _, text, image, t = _branch_inputs(transformer)
    x = torch.cat([noisy, image], dim=2)
    n_tokens = 13 * 4 * 6
    samples = [torch.randn(2, n_tokens, 32, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    keep = torch.zeros(2, n_tokens, 1, dtype=torch.bool)
    keep[:, ::3] = True
    plain, injected = [], []
    with torch.no_grad():
        handle = _capture_block(transformer, 0, plain)
        reference = transformer(x, text, t, return_dict=False)[0]
        handle.remove()
        with BranchInjection(transformer, samples, keep):
            handle = _capture_block(transformer, 0, injected)   # runs after the injection hook
            changed = transformer(x, text, t, return_dict=False)[0]
            handle.remove()
        after = transformer(x, text, t, return_dict=False)[0]
    delta = injected[0] - plain[0]
    assert torch.equal(injected[0][~keep[..., 0]], plain[0][~keep[..., 0]])   # untouched tokens
    assert torch.allclose(delta[keep[..., 0]], samples[0][keep[..., 0]], atol=1e-5)  # block 0 gets output 0
    assert not torch.equal(changed, reference)
    assert torch.equal(after, reference)                                  # hooks removed
    assert all(not b._forward_hooks for b in transformer.transformer_blocks)


def test_zero_branch_leaves_the_backbone_output_unchanged(components):
    transformer = components["transformer"]
    noisy, cond, text, image, t = _branch_inputs(transformer)
    x = torch.cat([noisy, image], dim=2)
    fresh = VideoPainterBranch.from_transformer(transformer).eval()
    mask = (torch.rand(2, 13, 1, 8, 12, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    with torch.no_grad():
        reference = transformer(x, text, t, return_dict=False)[0]
        samples = fresh(noisy, text, cond, t)
        with BranchInjection(transformer, samples, background_tokens(mask, 2)):
            out = transformer(x, text, t, return_dict=False)[0]
    assert torch.equal(out, reference)


def test_mask_goes_to_the_latent_grid_by_nearest_sampling(components):
    pipe = VideoPainterPipeline(**components)
    rng = np.random.default_rng(0)
    masks = rng.random((1, 1, 49, 64, 96)) > 0.6
    latent = pipe.latent_mask(torch.from_numpy(masks))
    assert latent.shape == (1, 13, 1, 8, 12)
    t_idx = np.floor(np.arange(13) * 49 / 13).astype(int)        # nearest: floor(out_index * in / out)
    expected = masks[0, 0][t_idx][:, ::8, ::8]
    assert np.array_equal(latent[0, :, 0].numpy().astype(bool), expected)


def test_plan_windows_covers_the_clip_and_ends_at_its_last_frame():
    assert plan_windows(49, 49, 41) == [0]
    assert plan_windows(90, 49, 41) == [0, 41]
    assert plan_windows(100, 49, 41) == [0, 41, 51]
    with pytest.raises(ValueError):
        plan_windows(48, 49, 41)


def _clip(frames, seed=0):
    w, h = TINY_SIZE
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
    masks = np.zeros((frames, h, w), bool)
    masks[:, 32:, 24:72] = True
    return video, masks


def test_pipeline_two_steps_keeps_the_original_latents_outside_the_mask(components):
    pipe = VideoPainterPipeline(**components)
    video, masks = _clip(49)
    encoded, decoded = [], []
    encode, decode = pipe.encode_video, pipe.decode_latents
    pipe.encode_video = lambda v, g: encoded.append(encode(v, g)) or encoded[-1]
    pipe.decode_latents = lambda latents: decoded.append(latents) or decode(latents)
    out = pipe(video, masks, "lane double yellow solid", first_frame=video[0], num_inference_steps=2,
               generator=torch.Generator().manual_seed(42))
    assert out.frames.shape == (49, 64, 96, 3) and out.frames.dtype == np.uint8
    assert out.windows == [(0, 49)] and out.id_resampling is False
    video_latents, final = encoded[0], decoded[0]             # first encode: the (first-frame) video
    assert final.shape == (1, 13, 16, 8, 12)
    latent_mask = pipe.latent_mask(torch.from_numpy(masks)[None, None].float())
    latent_mask[:, 0] = 0                                     # the given first frame is not inpainted
    outside = (latent_mask == 0).expand_as(final)
    assert torch.equal(final[outside], video_latents[outside])
    assert not torch.allclose(final[~outside], video_latents[~outside])


def test_id_processor_appends_masked_tokens_only(components):
    transformer = tiny_cogvideox_transformer(0)
    attn = transformer.transformer_blocks[0].attn1
    plain_processor = attn.processor
    g = torch.Generator().manual_seed(0)
    hidden, text = torch.randn(2, 24, 32, generator=g), torch.randn(2, 16, 32, generator=g)
    with torch.no_grad():
        reference = plain_processor(attn, hidden, text)
        state = install_id_resampling(transformer, "masked")
        assert torch.equal(attn.processor(attn, hidden, text)[0], reference[0])     # inactive
        state.start_window(torch.tensor([], dtype=torch.long))
        assert torch.allclose(attn.processor(attn, hidden, text)[0], reference[0], atol=1e-6)  # nothing appended
        state.start_window(torch.tensor([3, 4, 5]))
        state.recording = True
        own = attn.processor(attn, hidden, text)[0]
        state.finish_window()
        assert state.previous[0].shape == (2, 3, 32) and torch.equal(state.previous[0], hidden[:, 3:6])
        state.start_window(torch.tensor([3, 4, 5]))
        state.previous[0] = torch.randn(2, 3, 32, generator=g)
        from_previous = attn.processor(attn, hidden, text)[0]
    assert not torch.allclose(own, reference[0]) and not torch.allclose(from_previous, own)


def test_long_clip_windows_condition_on_the_previous_window_with_id_resampling(components, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    source = tiny_cogvideox_transformer(0)
    source.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                  target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    VideoPainterPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(source))
    fresh = tiny_cogvideox_components(0)
    pipe = VideoPainterPipeline(**fresh)
    info = load_id_lora(pipe, str(tmp_path), alpha=2.0)
    assert info["rank"] == 4 and info["scale"] == 0.5
    assert pipe.transformer.transformer_blocks[0].attn1.to_q.scaling["videopainter_id"] == 0.5
    pipe.enable_id_resampling()
    windows = []
    denoise = pipe._denoise_window
    pipe._denoise_window = lambda *a, **k: windows.append((a[2].clone(), denoise(*a, **k)[0])) or windows[-1][1][None]
    video, masks = _clip(53, seed=1)
    out = pipe(video, masks, "lane single white dashed", first_frame=video[0], num_inference_steps=2,
               window_stride=4, generator=torch.Generator().manual_seed(42))
    assert out.frames.shape == (53, 64, 96, 3) and out.windows == [(0, 49), (4, 53)] and out.id_resampling
    (cond0, frames0), (cond1, frames1) = windows
    generated = torch.from_numpy(frames0[4]).permute(2, 0, 1).float() * 2 - 1
    original = torch.from_numpy(video[4]).permute(2, 0, 1).float() / 127.5 - 1
    inside = torch.from_numpy(masks[4]).float()
    expected_cond = (inside * generated + (1 - inside) * original)[None]
    assert torch.allclose(cond1, expected_cond)   # window 1 starts from window 0's frame 4, original outside the mask
    assert torch.equal(cond1[0][:, ~torch.from_numpy(masks[4])], original[:, ~torch.from_numpy(masks[4])])
    f0, f1 = frames0.astype(np.float64), frames1.astype(np.float64)
    expected_overlap = np.rint((f0[10] + f1[6]) / 2 * 255).astype(np.uint8)
    assert np.array_equal(out.frames[10], expected_overlap)     # overlapping frames are averaged
    assert np.array_equal(out.frames[2], np.rint(f0[2] * 255).astype(np.uint8))
    assert isinstance(pipe.id_state, IDResampleState) and len(pipe.id_state.previous) == 4
    # fork mode (the default): what is kept is each block's whole output (text and video, after the branch),
    # for the conditional and unconditional halves
    text_len = pipe.id_state.previous[0].shape[1] - 13 * 4 * 6
    assert pipe.id_state.mode == "fork" and pipe.id_state.previous[0].shape[0] == 2 and text_len > 0


def _fork_setup(weight=0.5):
    transformer = tiny_cogvideox_transformer(0)
    attn = transformer.transformer_blocks[0].attn1
    g = torch.Generator().manual_seed(0)
    hidden, text = torch.randn(2, 24, 32, generator=g), torch.randn(2, 16, 32, generator=g)
    plain = attn.processor
    state = install_id_resampling(transformer, "fork", weight)
    return attn, plain, state, hidden, text, g


def test_fork_appends_every_position_so_even_an_empty_mask_dilutes_attention():
    """The fork multiplies keys/values by the mask before norm_k: unmasked positions become bias-valued keys
    with zero values, appended over the whole sequence, so attention changes even when nothing is masked
    (the masked mode appends nothing)."""
    attn, plain, state, hidden, text, _ = _fork_setup()
    with torch.no_grad():
        reference = plain(attn, hidden, text)[0]
        state.start_window(torch.tensor([], dtype=torch.long), torch.zeros(24, dtype=torch.bool))
        fork = attn.processor(attn, hidden, text)[0]
        assert not torch.allclose(fork, reference, atol=1e-4)
        # with norm_k mapping every key to zero, every logit is 0: plain attention is the mean of the S values;
        # the fork adds S zero-valued positions, so before the output projection it is exactly half of it
        attn.norm_k.weight.zero_()
        attn.norm_k.bias.zero_()
        plain_flat = plain(attn, hidden, text)[0]
        fork_flat = attn.processor(attn, hidden, text)[0]
    bias = attn.to_out[0].bias
    assert torch.allclose(fork_flat - bias, 0.5 * (plain_flat - bias), atol=1e-5)


def test_fork_previous_window_enters_only_through_masked_positions_and_by_its_weight():
    attn, _, state, hidden, text, g = _fork_setup(weight=0.5)
    mask = torch.zeros(24, dtype=torch.bool)
    mask[3:6] = True
    with torch.no_grad():
        state.start_window(torch.tensor([3, 4, 5]), mask)
        state.recording = True
        state.record(0, torch.randn(2, 40, 32, generator=g))
        state.finish_window()
        state.start_window(torch.tensor([3, 4, 5]), mask)       # window 1, same masked tokens
        previous = torch.randn(2, 40, 32, generator=g)
        state.norm_previous[0] = previous
        out = attn.processor(attn, hidden, text)[0]
        changed_elsewhere = previous.clone()
        changed_elsewhere[:, :16] += 5.0                         # text positions
        changed_elsewhere[:, 16 + 10:] -= 3.0                    # unmasked video positions
        state.norm_previous[0] = changed_elsewhere
        same = attn.processor(attn, hidden, text)[0]
        changed_inside = previous.clone()
        changed_inside[:, 16 + 4] += 1.0                         # a masked video position
        state.norm_previous[0] = changed_inside
        moved = attn.processor(attn, hidden, text)[0]
        state.norm_previous[0], state.weight = previous, 1.0
        heavier = attn.processor(attn, hidden, text)[0]
        state.weight = 0.0                                       # no weight: the window resamples its own tokens
        own = attn.processor(attn, hidden, text)[0]
        state.window, state.weight = 0, 0.5
        window0 = attn.processor(attn, hidden, text)[0]
    assert torch.allclose(out, same, atol=1e-6)                  # zero rows: only masked positions matter
    assert not torch.allclose(out, moved, atol=1e-5) and not torch.allclose(out, heavier, atol=1e-5)
    assert torch.allclose(own, window0, atol=1e-6) and not torch.allclose(own, out, atol=1e-5)


def test_fork_pairs_the_previous_states_with_the_previous_mask_only_at_a_windows_first_call():
    """The fork's pipeline passes the resample mask the last transformer call returned: the previous window's
    at a window's first step, the window's own after that."""
    attn, _, state, hidden, text, g = _fork_setup()
    old, new = torch.zeros(24, dtype=torch.bool), torch.zeros(24, dtype=torch.bool)
    old[0:4], new[10:14] = True, True
    with torch.no_grad():
        state.start_window(torch.nonzero(old).flatten(), old)
        state.recording = True
        state.record(0, torch.randn(2, 40, 32, generator=g))
        state.finish_window()
        state.start_window(torch.nonzero(new).flatten(), new)
        assert torch.equal(state.call_mask, old)
        previous = torch.randn(2, 40, 32, generator=g)
        state.norm_previous[0] = previous
        first = attn.processor(attn, hidden, text)[0]
        state.after_call()
        assert torch.equal(state.call_mask, new) and state.norm_previous == {}
        state.norm_previous[0] = previous
        later = attn.processor(attn, hidden, text)[0]
    assert not torch.allclose(first, later, atol=1e-5)


@pytest.mark.gpu
def test_tiny_pipeline_on_cuda_in_bf16():
    pipe = VideoPainterPipeline(**tiny_cogvideox_components(0)).to("cuda", torch.bfloat16)
    video, masks = _clip(49)
    out = pipe(video, masks, "lane double yellow solid", first_frame=video[0], num_inference_steps=2,
               generator=torch.Generator().manual_seed(42))
    assert out.frames.shape == (49, 64, 96, 3) and out.frames.dtype == np.uint8
