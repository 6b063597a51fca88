"""Small random-weight models built from ComfyUI's own classes (no weights are downloaded), for the tests and the
benchmarks. ComfyUI is found by the pack's one rule (``e4e_headless.host``, with ``scripts/`` on ``sys.path``)."""

from __future__ import annotations

import torch
from e4e_headless.host import setup_comfyui as setup_host

CONTEXT_DIM = 32
POOLED_DIM = 1280  # SDXL's pooled CLIP-G size, fixed by its adm layout


def _base_unet_config(**over) -> dict:
    cfg = dict(
        use_checkpoint=False,
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=32,
        use_spatial_transformer=True,
        legacy=False,
        context_dim=CONTEXT_DIM,
        use_linear_in_transformer=False,
        adm_in_channels=None,
        use_temporal_attention=False,
    )
    cfg.update(over)
    return cfg


def sd15_unet_config(**over) -> dict:
    # SD1.5 block layout: attention at input 1,2,4,5,7,8, middle 0, output 3..11 (depth 1 each).
    # ComfyUI consumes transformer_depth_output from the end, so output 0 takes the last entry.
    return _base_unet_config(**{
        "num_res_blocks": 2,
        "channel_mult": [1, 2, 2, 2],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        "transformer_depth_middle": 1,
        **over,
    })


def sdxl_unet_config() -> dict:
    # SDXL layout: input 4,5 depth 2; input 7,8 depth 10; middle depth 10; output 0..2 depth 10, 3..5 depth 2.
    return _base_unet_config(
        num_res_blocks=2,
        channel_mult=[1, 2, 2],
        transformer_depth=[0, 0, 2, 2, 10, 10],
        transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10],
        transformer_depth_middle=10,
        use_linear_in_transformer=True,
        adm_in_channels=2816,
        num_classes="sequential",
    )


def init_weights(module: torch.nn.Module, seed: int, out_gain: float = 1.0) -> torch.nn.Module:
    """ComfyUI's layers skip initialisation; give every layer torch's default init, seeded.

    ``out_gain`` scales the UNet's last conv: a random UNet at default init predicts noise with a large,
    rough dependence on its input, which no trained model has; a smaller output gain keeps the denoiser
    smooth enough for deterministic (DDIM) inversion to converge, while inner features stay as varied.
    """
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
             torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.Embedding)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            for kind in kinds:
                if isinstance(m, kind):
                    kind.reset_parameters(m)
                    break
            else:  # bare parameters of ComfyUI's own layers: RMSNorm gains (Flux, SD3), MMDiT's position table
                for name, p in m.named_parameters(recurse=False):
                    if name == "scale" or (name == "weight" and type(m).__name__ == "RMSNorm"):
                        torch.nn.init.ones_(p)  # RMSNorm gains (Flux, SD3: scale; Wan, Qwen-Image: weight)
                    elif name == "modulation":  # Wan's per-block modulation table, as Wan initialises it
                        torch.nn.init.normal_(p, std=p.shape[-1] ** -0.5)
                for name, buf in m.named_buffers(recurse=False):
                    if name == "pos_embed":
                        torch.nn.init.normal_(buf, std=0.02)
        out = getattr(getattr(module, "diffusion_model", None), "out", None)
        if out is not None and out_gain != 1.0:
            for p in out[-1].parameters():
                p.data.mul_(out_gain)
    return module


def _patcher(model):
    import comfy.model_patcher

    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def _head_channels(unet: dict) -> int:
    return 40 if unet.get("model_channels", 32) % 40 == 0 else 16


def _with_heads(model_config, head_channels: int = 16):
    model_config.unet_config.update(num_heads=-1, num_head_channels=head_channels)
    return model_config


def build_sd15(v_prediction: bool = False, seed: int = 0, **unet):
    """SD1.5-layout UNet (eps, or v-prediction like SD2 768-v) wrapped in a ModelPatcher.

    ``unet`` overrides config entries (``model_channels``, ``context_dim``, ``channel_mult``) for benchmarks;
    ``model_channels=320, context_dim=768, channel_mult=[1, 2, 4, 4]`` gives SD1.5's real widths.
    """
    setup_host()
    import comfy.model_base
    import comfy.supported_models

    if v_prediction:
        mc = _with_heads(comfy.supported_models.SD20(sd15_unet_config(**dict(unet, use_linear_in_transformer=True))),
                         _head_channels(unet))
        model = comfy.model_base.BaseModel(mc, model_type=comfy.model_base.ModelType.V_PREDICTION)
    else:
        mc = _with_heads(comfy.supported_models.SD15(sd15_unet_config(**unet)), _head_channels(unet))
        model = comfy.model_base.BaseModel(mc, model_type=comfy.model_base.ModelType.EPS)
    init_weights(model, seed, out_gain=0.1)
    return _patcher(model.eval())


def build_sdxl(seed: int = 0):
    setup_host()
    import comfy.model_base
    import comfy.supported_models

    mc = _with_heads(comfy.supported_models.SDXL(sdxl_unet_config()))
    model = comfy.model_base.SDXL(mc, model_type=comfy.model_base.ModelType.EPS)
    init_weights(model, seed, out_gain=0.1)
    return _patcher(model.eval())


def build_vae(seed: int = 0):
    """A small AutoencoderKL (8x downscale, 4 latent channels) through comfy.sd.VAE."""
    setup_host()
    import comfy.sd

    ddconfig = {
        "double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3,
        "ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
    }
    vae = comfy.sd.VAE(sd={}, config={"params": {"embed_dim": 4, "ddconfig": ddconfig}})
    init_weights(vae.first_stage_model, seed)
    return vae


def token_conds(dim: int, seed: int = 0, tokens: int = 8, batch: int = 1):
    """Positive and negative conditioning of text tokens alone (``dim`` wide), as CLIPTextEncode gives them."""
    g = torch.Generator().manual_seed(seed)
    pos = [[torch.randn(batch, tokens, dim, generator=g), {}]]
    neg = [[torch.randn(batch, tokens, dim, generator=g), {}]]
    return pos, neg


def sd15_conds(seed: int = 0, tokens: int = 8, batch: int = 1):
    return token_conds(CONTEXT_DIM, seed, tokens, batch)


def sdxl_conds(seed: int = 0, tokens: int = 8, size: int = 256, batch: int = 1):
    g = torch.Generator().manual_seed(seed)

    def one():
        extra = {"pooled_output": torch.randn(batch, POOLED_DIM, generator=g), "width": size, "height": size,
                 "crop_w": 0, "crop_h": 0, "target_width": size, "target_height": size}
        return [[torch.randn(batch, tokens, CONTEXT_DIM, generator=g), extra]]

    return one(), one()


FLUX_CONTEXT_DIM, FLUX_POOLED_DIM = 64, 32


def build_flux(seed: int = 0, depth: int = 3, single: int = 4, schnell: bool = False):
    """A Flux.1-layout diffusion transformer (double- and single-stream blocks, 16-channel latents, 2x2 patches,
    guidance embedding unless ``schnell``) at a tiny width, through ComfyUI's own Flux classes."""
    setup_host()
    import comfy.model_base
    import comfy.supported_models

    cfg = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=FLUX_POOLED_DIM,
               context_in_dim=FLUX_CONTEXT_DIM, hidden_size=64, mlp_ratio=4.0, num_heads=4, depth=depth,
               depth_single_blocks=single, axes_dim=[4, 6, 6], theta=10000, patch_size=2, qkv_bias=True,
               guidance_embed=not schnell)
    mc = (comfy.supported_models.FluxSchnell if schnell else comfy.supported_models.Flux)(cfg)
    mc.set_inference_dtype(torch.float32, None)
    model = comfy.model_base.Flux(mc, model_type=comfy.model_base.ModelType.FLOW if schnell else
                                  comfy.model_base.ModelType.FLUX, device=torch.device("cpu"))
    init_weights(model, seed)
    return _patcher(model.eval())


def flux_conds(seed: int = 0, tokens: int = 8, batch: int = 1, guidance: float = 3.5):
    """Flux conditioning as FluxGuidance leaves it: T5 tokens, the CLIP-L pooled vector, the guidance scale."""
    g = torch.Generator().manual_seed(seed)

    def one():
        extra = {"pooled_output": torch.randn(batch, FLUX_POOLED_DIM, generator=g), "guidance": guidance}
        return [[torch.randn(batch, tokens, FLUX_CONTEXT_DIM, generator=g), extra]]

    return one(), one()


SD3_CONTEXT_DIM, SD3_POOLED_DIM = 64, 32


def build_sd3(seed: int = 0, depth: int = 4):
    """An SD3-layout MMDiT (joint blocks, 16-channel latents) at a tiny width (64 x depth), through ComfyUI's
    own SD3 classes."""
    setup_host()
    import comfy.model_base
    import comfy.supported_models

    cfg = dict(in_channels=16, out_channels=16, patch_size=2, depth=depth, input_size=None,
               adm_in_channels=SD3_POOLED_DIM,
               context_embedder_config={"target": "torch.nn.Linear",
                                        "params": {"in_features": SD3_CONTEXT_DIM, "out_features": 64 * depth}},
               num_patches=32 * 32, pos_embed_max_size=32, pos_embed_scaling_factor=None, qk_norm=None,
               x_block_self_attn_layers=[])
    mc = comfy.supported_models.SD3(cfg)
    mc.set_inference_dtype(torch.float32, None)
    model = comfy.model_base.SD3(mc, device=torch.device("cpu"))
    init_weights(model, seed)
    return _patcher(model.eval())


def sd3_conds(seed: int = 0, tokens: int = 8, batch: int = 1):
    g = torch.Generator().manual_seed(seed)

    def one():
        return [[torch.randn(batch, tokens, SD3_CONTEXT_DIM, generator=g),
                 {"pooled_output": torch.randn(batch, SD3_POOLED_DIM, generator=g)}]]

    return one(), one()


WAN_TEXT_DIM = 32


def _built(model_config, seed: int):
    """The model of a ComfyUI model config (its own ``get_model``) in float32 on the CPU, seeded, in a patcher."""
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, device=torch.device("cpu"))
    init_weights(model, seed)
    return _patcher(model.eval())


def build_wan(seed: int = 0, depth: int = 4, channels: int = 16):
    """A Wan 2.1 text-to-video layout (3-D patch embedding, self-/cross-attention blocks with Wan's modulation,
    16-channel video latents ``[B, 16, T, H, W]``, rectified flow with shift 8) at a tiny width, through ComfyUI's
    own WanModel; ``channels=48`` gives the Wan 2.2 5B (TI2V) layout."""
    setup_host()
    import comfy.model_base
    import comfy.supported_models

    cfg = dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), text_len=8, in_dim=channels, dim=64,
               ffn_dim=128, freq_dim=32, text_dim=WAN_TEXT_DIM, out_dim=channels, num_heads=4, num_layers=depth)
    kind = comfy.supported_models.WAN22_T2V if channels == 48 else comfy.supported_models.WAN21_T2V
    return _built(kind(cfg), seed)


def wan_conds(seed: int = 0, tokens: int = 8, batch: int = 1):
    """umt5 tokens as CLIPTextEncode gives them for Wan."""
    return token_conds(WAN_TEXT_DIM, seed, tokens, batch)


QWEN_TEXT_DIM = 32


def build_qwen_image(seed: int = 0, depth: int = 4):
    """A Qwen-Image layout (MMDiT blocks with separate image/text projections, 16-channel latents as ``[B, 16, 1,
    H, W]``, 2x2 patches, rectified flow) at a tiny width, through ComfyUI's own QwenImage classes."""
    setup_host()
    import comfy.supported_models

    cfg = dict(image_model="qwen_image", patch_size=2, in_channels=64, out_channels=16, num_layers=depth,
               attention_head_dim=16, num_attention_heads=4, joint_attention_dim=QWEN_TEXT_DIM,
               axes_dims_rope=(4, 6, 6))
    return _built(comfy.supported_models.QwenImage(cfg), seed)


def qwen_conds(seed: int = 0, tokens: int = 8, batch: int = 1):
    return token_conds(QWEN_TEXT_DIM, seed, tokens, batch)
