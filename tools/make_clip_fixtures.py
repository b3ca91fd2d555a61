#!/usr/bin/env python3
"""Tiny random CLIP models in every layout sdsclip reads, with reference bundles from the real libraries.

Writes fixtures/clip/:
  hf/                    transformers CLIPModel (quick_gelu): config.json, model.safetensors, pytorch_model.bin
  hf_gelu_fp16mix/       the same architecture with hidden_act gelu, some tensors fp16 (mixed-precision file)
  openclip_quickgelu/    open_clip CLIP, QuickGELU: open_clip_config.json, open_clip_model.safetensors,
                         open_clip_pytorch_model.bin (plain state dict)
  openclip_gelu/         open_clip CLIP, nn.GELU (erf), safetensors + a `module.`-prefixed DataParallel .bin
  openai_jit/            an OpenAI-style TorchScript archive (ViT-tiny.pt) with the three integer buffers and
                         OpenAI's fp16 "convert_weights" mixed precision, plus the same state dict as a torch.save .pt
  hf_text/               transformers CLIPTextModel (no projection, gelu) as saved by transformers 5.24, whose
                         keys have no `text_model.` prefix; pytorch_model.bin holds the same weights under the
                         older `text_model.`-prefixed names (both load in transformers)
  hf_text_projection/    transformers CLIPTextModelWithProjection (quick_gelu): model.safetensors as 5.24 saves
                         it (this class keeps `text_model.`), pytorch_model.bin with the prefix stripped
  hf_text*.reference.safetensors  {"component": "clip-text"}: inputs.input_ids, outputs.last_hidden_state,
                         outputs.pooler_output (+ outputs.text_embeds with a projection)
  <name>.reference.safetensors   a reference bundle per model: inputs.pixel_values, inputs.input_ids,
                         outputs.image_embeds, outputs.text_embeds, outputs.logits_per_image; __metadata__
                         {"component": "clip"}

Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_clip_fixtures.py
Deterministic: seeded; safetensors and .bin outputs are byte-stable across runs (TorchScript archives are not).
"""
import json
import os
import shutil
import sys

import torch

import open_clip  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "clip")
VOCAB = 1000  # tiny vocabulary; the EOT id (999) is the largest id, as in real CLIP, so argmax pooling agrees
BATCH = 2


def fresh_dir(name):
    path = os.path.join(ROOT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def text_ids(context, seed):
    """Rows of SOT(998) + random words + EOT(999) + zero padding, with different lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(BATCH, context, dtype=torch.int64)
    for row, length in enumerate([5, context - 3][:BATCH]):
        ids[row, 0] = 998
        ids[row, 1:length - 1] = torch.randint(1, 990, (length - 2,), generator=g)
        ids[row, length - 1] = 999
    return ids


def pixels(resolution, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, 3, resolution, resolution, generator=g)


def save_bundle(name, pixel_values, input_ids, image_embeds, text_embeds, logits_per_image):
    tensors = {
        "inputs.pixel_values": pixel_values.contiguous(),
        "inputs.input_ids": input_ids.contiguous(),
        "outputs.image_embeds": image_embeds.detach().contiguous(),
        "outputs.text_embeds": text_embeds.detach().contiguous(),
        "outputs.logits_per_image": logits_per_image.detach().contiguous(),
    }
    save_file(tensors, os.path.join(ROOT, f"{name}.reference.safetensors"), metadata={"component": "clip"})


def randomize(module, seed):
    """Weights with visible structure: std 0.02 like real init, LayerNorms away from identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 0:
                continue
            if "ln" in name or "layer_norm" in name or "layernorm" in name or "layrnorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


def hf_models():
    for name, act, mixed in [("hf", "quick_gelu", False), ("hf_gelu_fp16mix", "gelu", True)]:
        config = CLIPConfig(
            text_config=dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                             num_attention_heads=4, max_position_embeddings=16, bos_token_id=998,
                             eos_token_id=999, pad_token_id=0, hidden_act=act),
            vision_config=dict(image_size=30, patch_size=6, hidden_size=32, intermediate_size=37,
                               num_hidden_layers=2, num_attention_heads=4, hidden_act=act),
            projection_dim=16,
        )
        torch.manual_seed(1)
        model = CLIPModel(config).eval()
        randomize(model, 2)
        if mixed:  # linear weights stored in fp16, norms and embeddings in fp32, as fp16 exports often are
            with torch.no_grad():
                for pname, p in model.named_parameters():
                    if pname.endswith("proj.weight") or ".fc" in pname:
                        p.copy_(p.half().float())
        out_dir = fresh_dir(name)
        model.save_pretrained(out_dir)
        state = model.state_dict()
        if mixed:
            state = {k: (v.half() if (k.endswith("proj.weight") or ".fc" in k) else v) for k, v in state.items()}
            os.remove(os.path.join(out_dir, "model.safetensors"))
            save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out_dir, "model.safetensors"),
                      metadata={"format": "pt"})
        torch.save(state, os.path.join(out_dir, "pytorch_model.bin"))
        ids = text_ids(16, 3)
        px = pixels(30, 4)
        with torch.no_grad():
            out = model(input_ids=ids, pixel_values=px)
            # CLIPModel's outputs are normalised; bundles hold the projected, unnormalised embeddings.
            image = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)
            text = model.text_projection(model.text_model(input_ids=ids).pooler_output)
        assert torch.allclose(torch.nn.functional.normalize(image, dim=-1), out.image_embeds, atol=1e-6)
        save_bundle(name, px, ids, image, text, out.logits_per_image)


OPENCLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 8, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": VOCAB, "width": 32, "heads": 4, "layers": 2},
}


def openclip_model(quick_gelu, seed):
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**OPENCLIP_CFG, quick_gelu=quick_gelu).eval()
    randomize(model, seed + 1)
    with torch.no_grad():
        model.logit_scale.fill_(2.3)
    return model


def openclip_forward(model, px, ids):
    with torch.no_grad():
        image = model.encode_image(px)
        text = model.encode_text(ids)
        logits = model.logit_scale.exp() * torch.nn.functional.normalize(image, dim=-1) @ \
            torch.nn.functional.normalize(text, dim=-1).T
    return image, text, logits


def openclip_models():
    for name, quick, seed in [("openclip_quickgelu", True, 10), ("openclip_gelu", False, 20)]:
        model = openclip_model(quick, seed)
        out_dir = fresh_dir(name)
        cfg = dict(OPENCLIP_CFG, quick_gelu=quick) if quick else dict(OPENCLIP_CFG)
        with open(os.path.join(out_dir, "open_clip_config.json"), "w") as f:
            json.dump({"model_cfg": cfg, "preprocess_cfg": {}}, f, indent=2)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(out_dir, "open_clip_model.safetensors"))
        if quick:
            torch.save(model.state_dict(), os.path.join(out_dir, "open_clip_pytorch_model.bin"))
        else:  # a DataParallel-style save: every key prefixed with `module.`
            torch.save({"module." + k: v for k, v in model.state_dict().items()},
                       os.path.join(out_dir, "open_clip_pytorch_model.bin"))
        # Check the folder reloads in open_clip itself, offline.
        reloaded = open_clip.create_model(f"local-dir:{out_dir}").eval()
        ids = text_ids(16, seed + 2)
        px = pixels(32, seed + 3)
        image, text, logits = openclip_forward(model, px, ids)
        image2, _, _ = openclip_forward(reloaded, px, ids)
        assert torch.allclose(image, image2), "open_clip did not reload its own folder"
        save_bundle(name, px, ids, image, text, logits)


class OpenAIRoot(torch.nn.Module):
    """The root of OpenAI's released archives: open_clip's towers (same names) plus the three integer
    scalar buffers `input_resolution`, `context_length` and `vocab_size` that OpenAI's files carry."""

    def __init__(self, oc, resolution):
        super().__init__()
        self.visual = oc.visual
        self.transformer = oc.transformer
        self.token_embedding = oc.token_embedding
        self.positional_embedding = oc.positional_embedding
        self.ln_final = oc.ln_final
        self.text_projection = oc.text_projection
        self.logit_scale = oc.logit_scale
        self.register_buffer("attn_mask", oc.attn_mask.clone(), persistent=False)
        self.register_buffer("input_resolution", torch.tensor(resolution))
        self.register_buffer("context_length", torch.tensor(oc.context_length))
        self.register_buffer("vocab_size", torch.tensor(oc.vocab_size))

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


HALF_SUFFIXES = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias", "c_fc.weight",
                 "c_fc.bias", "c_proj.weight", "c_proj.bias", "conv1.weight", "text_projection", "visual.proj")


def openai_jit():
    model = openclip_model(True, 30)
    # OpenAI convert_weights: Linear/Conv/MHA weights and the projections in fp16, the rest fp32.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith(HALF_SUFFIXES):
                p.copy_(p.half().float())
    out_dir = fresh_dir("openai_jit")
    ids = text_ids(16, 32)
    px = pixels(32, 33)
    image, text, logits = openclip_forward(model, px, ids)
    save_bundle("openai_jit", px, ids, image, text, logits)

    root = OpenAIRoot(model, 32).eval()
    with torch.no_grad():
        assert torch.allclose(root.encode_text(ids), text, atol=1e-6)
    traced = torch.jit.trace_module(root, {"encode_image": (px,), "encode_text": (ids,)}, check_trace=False)
    # Store the released archives' mixed precision: swap fp16 copies into the traced module's state.
    with torch.no_grad():
        for pname, p in traced.named_parameters():
            if pname.endswith(HALF_SUFFIXES):
                p.data = p.data.half()
    path = os.path.join(out_dir, "ViT-tiny.pt")
    traced.save(path)
    state = torch.jit.load(path).state_dict()
    assert set(state) >= {"input_resolution", "context_length", "vocab_size", "visual.proj"}, sorted(state)
    assert state["visual.proj"].dtype == torch.float16 and state["ln_final.weight"].dtype == torch.float32
    torch.save(dict(state), os.path.join(out_dir, "ViT-tiny-state-dict.pt"))
    # Heads of a non-standard size are not in the weights: ship the config as a user would.
    with open(os.path.join(out_dir, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": dict(OPENCLIP_CFG, quick_gelu=True), "preprocess_cfg": {}}, f, indent=2)
    with open(os.path.join(out_dir, "expected_dtypes.json"), "w") as f:
        json.dump({k: str(v.dtype).replace("torch.", "") for k, v in state.items()}, f, indent=1, sort_keys=True)


def text_state_variant(state, prefixed):
    """The same tensors with or without the `text_model.` prefix (text_projection stays at the root)."""
    out = {}
    for k, v in state.items():
        bare = k[len("text_model."):] if k.startswith("text_model.") else k
        out[("text_model." + bare) if prefixed and not bare.startswith("text_projection") else bare] = v.contiguous()
    return out


def hf_text_models():
    for name, cls, act, seed in [("hf_text", CLIPTextModel, "gelu", 40),
                                 ("hf_text_projection", CLIPTextModelWithProjection, "quick_gelu", 50)]:
        config = CLIPTextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                num_attention_heads=4, max_position_embeddings=16, bos_token_id=998,
                                eos_token_id=999, pad_token_id=0, hidden_act=act, projection_dim=16)
        torch.manual_seed(seed)
        model = cls(config).eval()
        randomize(model, seed + 1)
        out_dir = fresh_dir(name)
        model.save_pretrained(out_dir)
        saved = set(safe_open(os.path.join(out_dir, "model.safetensors"), "pt").keys())
        has_prefix = any(k.startswith("text_model.") for k in saved)
        # transformers 5.24: CLIPTextModel drops the prefix, CLIPTextModelWithProjection keeps it.
        assert has_prefix == (cls is CLIPTextModelWithProjection), sorted(saved)[:3]
        # The .bin holds the other naming, so both spellings are covered for both classes.
        torch.save(text_state_variant(model.state_dict(), prefixed=not has_prefix),
                   os.path.join(out_dir, "pytorch_model.bin"))
        ids = text_ids(16, seed + 2)
        with torch.no_grad():
            out = model(input_ids=ids)
            # Both files must load in transformers itself with identical outputs.
            for use_safetensors in (True, False):
                again = cls.from_pretrained(out_dir, use_safetensors=use_safetensors).eval()
                check = again(input_ids=ids)
                assert torch.equal(check.last_hidden_state, out.last_hidden_state), (name, use_safetensors)
        tensors = {"inputs.input_ids": ids.contiguous(),
                   "outputs.last_hidden_state": out.last_hidden_state.contiguous()}
        if cls is CLIPTextModelWithProjection:
            with torch.no_grad():
                pooled = model.text_model(input_ids=ids).pooler_output
            tensors["outputs.pooler_output"] = pooled.contiguous()
            tensors["outputs.text_embeds"] = out.text_embeds.contiguous()
        else:
            tensors["outputs.pooler_output"] = out.pooler_output.contiguous()
        save_file(tensors, os.path.join(ROOT, f"{name}.reference.safetensors"), metadata={"component": "clip-text"})


def tower_totals(named_parameters, vision_prefixes):
    """Parameter totals per tower as models.md §1.9 counts them (projections with their tower)."""
    totals = {"vision": 0, "text": 0, "other": 0}
    for name, p in named_parameters:
        if name.startswith(vision_prefixes):
            totals["vision"] += p.numel()
        elif name == "logit_scale":
            totals["other"] += p.numel()
        else:
            totals["text"] += p.numel()
    totals["total"] = sum(totals.values())
    return totals


def parameter_counts():
    """What `inspect` must report per tower, counted on the models the real libraries load from the fixtures."""
    counts = {}
    for name in ["hf", "hf_gelu_fp16mix"]:
        model = CLIPModel.from_pretrained(os.path.join(ROOT, name))
        counts[name] = tower_totals(model.named_parameters(), ("vision_model.", "visual_projection."))
    counts["hf_text"] = tower_totals(CLIPTextModel.from_pretrained(os.path.join(ROOT, "hf_text")).named_parameters(), ("-",))
    counts["hf_text_projection"] = tower_totals(
        CLIPTextModelWithProjection.from_pretrained(os.path.join(ROOT, "hf_text_projection")).named_parameters(), ("-",))
    for name in ["openclip_quickgelu", "openclip_gelu"]:
        model = open_clip.create_model(f"local-dir:{os.path.join(ROOT, name)}")
        counts[name] = tower_totals(model.named_parameters(), ("visual.",))
    jit = torch.jit.load(os.path.join(ROOT, "openai_jit", "ViT-tiny.pt"))
    counts["openai_jit"] = tower_totals(jit.named_parameters(), ("visual.",))
    with open(os.path.join(ROOT, "parameter_counts.json"), "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)


def main():
    os.makedirs(ROOT, exist_ok=True)
    hf_models()
    hf_text_models()
    openclip_models()
    openai_jit()
    parameter_counts()
    total = 0
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            size = os.path.getsize(os.path.join(dirpath, f))
            assert size < 2_000_000, f"{f} is {size} bytes"
            total += size
    print(f"fixtures/clip: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
