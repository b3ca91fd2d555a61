#!/usr/bin/env python3
"""The trained demo models of `sdsclip demo`: a small CLIP and a small Stable Diffusion teacher, trained on
the example world with torch + transformers + diffusers (CPU, seeded), with a small vocabulary of their own.

Writes:
  fixtures/demo/trained/clip/   transformers CLIPModel (quick_gelu), float16 storage, with its own CLIPTokenizer
                                files (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json):
                                trained contrastively for a short run, so it is weak at binding (the "before")
  fixtures/demo/trained/sd/     diffusers StableDiffusionPipeline folder: unet/ (UNet2DConditionModel), text_encoder/
                                (CLIPTextModel, the same vocabulary), vae/ (AutoencoderKL, 64 px -> 4x8x8),
                                scheduler/ (PNDM, SD's scaled-linear schedule), tokenizer/; the VAE trained as an
                                autoencoder, then the UNet and text encoder together as a denoiser of the VAE's
                                latents conditioned on the captions
  fixtures/demo/trained/README.md   the settings, the training losses and the accuracies measured on the swapped pairs
  fixtures/demo/trained/metrics.json   the same figures as JSON
  fixtures/tokenizer/demo_vocab_ids.jsonl   {"text", "ids"}: transformers' CLIPTokenizer on that vocabulary

The images are the Swift example world's own pixels: the script runs `sdsclip example-data` (pass --sdsclip, default
.build/debug/sdsclip) and reads the PNGs. The vocabulary: CLIP's 512 byte symbols, then merges that build each
example-world word (and a few common ones) as one token, then <|startoftext|> and <|endoftext|>.

Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_demo_models.py [--sdsclip PATH]   (about 10 minutes on a busy 2-core machine)
Seeded; the training uses torch's CPU kernels with a fixed thread count, so reruns on one machine agree.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

import diffusers  # noqa: E402
from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sd_fixtures import write_bytes_atomic, write_json  # noqa: E402
from make_sds_fixtures import SCHEDULE, save_tensors  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
diffusers.utils.logging.set_verbosity_error()
diffusers.utils.logging.disable_progress_bar()
# One thread: on a shared 2-core machine a second thread mostly waits (and the results stay reproducible).
torch.set_num_threads(1)
torch.use_deterministic_algorithms(False)

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(REPO, "fixtures", "demo", "trained")
TOKENIZER_FIXTURE = os.path.join(REPO, "fixtures", "tokenizer", "demo_vocab_ids.jsonl")

WORLD_WORDS = ["a", "red", "green", "blue", "yellow", "purple", "brown", "circle", "square", "triangle",
               "left", "of", "right", "above", "below"]
# A few words beyond the world, so that ordinary prompts are not all bytes.
EXTRA_WORDS = ["an", "the", "and", "photo", "shape", "on", "grey", "background", "with", "two"]
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
CONTEXT = 77          # the text towers' positions (SD's context length)
TRAIN_TOKENS = 16     # captions are at most 11 tokens: Python trains on 16-token rows
IMAGE = 64            # example-data's default size; the VAE's input
CLIP_RES = 32         # CLIP's input: the 64 px image resized as CLIPImageProcessor / sdsclip do
LATENT = 8
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


# ---------------------------------------------------------------- vocabulary

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def make_vocabulary(folder):
    """vocab.json + merges.txt in CLIP's id layout: bytes, bytes + </w>, one token per merge, SOT, EOT."""
    symbols = bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols]
    merges = []
    known = set(tokens)
    for word in WORLD_WORDS + EXTRA_WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merged = current + piece
            if merged not in known:
                merges.append(f"{current} {piece}")
                tokens.append(merged)
                known.add(merged)
            current = merged
    tokens += [SOT, EOT]
    os.makedirs(folder, exist_ok=True)
    write_bytes_atomic(os.path.join(folder, "vocab.json"),
                       json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False).encode())
    write_bytes_atomic(os.path.join(folder, "merges.txt"), ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
    return len(tokens)


def save_tokenizer(source, folder):
    """transformers' own CLIPTokenizer files for the vocabulary in `source`, written by save_pretrained."""
    tokenizer = CLIPTokenizer(os.path.join(source, "vocab.json"), os.path.join(source, "merges.txt"),
                              model_max_length=CONTEXT, pad_token=EOT)
    tokenizer.save_pretrained(folder)
    # transformers 5 writes tokenizer.json only; the folder also ships the vocab.json + merges.txt that
    # CLIPTokenizer reads (and sdsclip reads).
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(source, name), os.path.join(folder, name))
    return CLIPTokenizer.from_pretrained(folder)


PARITY_TEXTS = [
    "a red circle left of a blue square", "a blue square left of a red circle", "a yellow triangle above a brown circle",
    "A Purple  Square BELOW a green triangle.", "  a red circle\tright of a blue  triangle  ", "red, green & blue!",
    "a photo of an astronaut riding a horse on mars", "the squares and circles", "redcircle bluesquare",
    "two shapes on a grey background", "left-of right-of", "it's a circle; isn't it?", "a 3 sided triangle, 42 times",
    "café naïve résumé", "emoji 🙂 shapes", "日本語のテキスト", "", "a", "of of of of", "a red circle left of a blue square " * 6,
]


def write_tokenizer_fixture(tokenizer):
    lines = []
    for text in PARITY_TEXTS:
        ids = tokenizer(text, truncation=False)["input_ids"]
        lines.append(json.dumps({"text": text, "ids": ids}, ensure_ascii=False))
    write_bytes_atomic(TOKENIZER_FIXTURE, ("\n".join(lines) + "\n").encode())


# ---------------------------------------------------------------- data

def example_world(sdsclip, folder, count, pairs):
    subprocess.run([sdsclip, "example-data", folder, "--count", str(count), "--test-pairs", str(pairs),
                    "--size", str(IMAGE), "--seed", "0", "--shard-size", "100000"], check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in open(os.path.join(folder, "train.jsonl"))]
    swaps = [json.loads(line) for line in open(os.path.join(folder, "test-swaps.jsonl"))]
    return rows, swaps


def load_rgb(path):
    return Image.open(path).convert("RGB")


def clip_pixels(images):
    """sdsclip's / CLIPImageProcessor's preprocessing: bicubic to 32 px (square input: no crop), OpenAI mean/std."""
    out = []
    for image in images:
        array = np.asarray(image.resize((CLIP_RES, CLIP_RES), Image.BICUBIC), dtype=np.float32) / 255.0
        out.append(((array - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def vae_pixels(images):
    return torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1 for i in images]))


def token_rows(tokenizer, captions, length):
    return tokenizer(captions, padding="max_length", max_length=length, truncation=True, return_tensors="pt")["input_ids"]


# ---------------------------------------------------------------- models

def text_config(vocab, **extra):
    return dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=CONTEXT, hidden_act="quick_gelu", bos_token_id=vocab - 2, eos_token_id=vocab - 1,
                pad_token_id=vocab - 1, layer_norm_eps=1e-5, **extra)


def round_to_half(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def cosine_lr(step, total, base, warmup=50):
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))


def train_clip(vocab, tokenizer, rows, data, steps, batch, log):
    config = CLIPConfig(
        text_config=text_config(vocab),
        vision_config=dict(image_size=CLIP_RES, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=32,
    )
    torch.manual_seed(1000)
    model = CLIPModel(config)
    pixels = clip_pixels([load_rgb(os.path.join(data, r["image"])) for r in rows])
    ids = token_rows(tokenizer, [r["caption"] for r in rows], TRAIN_TOKENS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6)
    generator = torch.Generator().manual_seed(1001)
    losses = []
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, 2e-3)
        index = torch.randint(0, len(rows), (batch,), generator=generator)
        out = model(input_ids=ids[index], pixel_values=pixels[index])
        # Duplicate captions in a batch are positives of each other: a soft target over equal captions.
        same = (ids[index][:, None, :] == ids[index][None, :, :]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (-(target * F.log_softmax(out.logits_per_image, 1)).sum(1).mean()
                      - (target * F.log_softmax(out.logits_per_text, 1)).sum(1).mean())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            log(f"clip step {step + 1}/{steps} loss {np.mean(losses[-50:]):.4f}")
    model.eval()
    round_to_half(model)
    return model, losses


def make_vae():
    torch.manual_seed(2000)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16, 32),
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, norm_num_groups=4, sample_size=IMAGE, scaling_factor=1.0)


def train_vae(vae, images, steps, batch, log):
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(2001)
    losses = []
    vae.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, 2e-3)
        x = images[torch.randint(0, len(images), (batch,), generator=generator)]
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        recon = vae.decode(z).sample
        rec = F.mse_loss(recon, x)
        kl = posterior.kl().mean() / (4 * LATENT * LATENT)
        loss = rec + 1e-4 * kl
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        losses.append(rec.item())
        if (step + 1) % 50 == 0:
            log(f"vae step {step + 1}/{steps} reconstruction mse {np.mean(losses[-50:]):.5f}")
    vae.eval()
    round_to_half(vae)
    return losses


def make_unet():
    torch.manual_seed(3000)
    return UNet2DConditionModel(
        sample_size=LATENT, in_channels=4, out_channels=4, cross_attention_dim=32, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, attention_head_dim=4, norm_num_groups=8, use_linear_projection=False)


def train_denoiser(unet, text, latents, ids, steps, batch, log):
    schedule = DDPMScheduler(**{k: v for k, v in SCHEDULE.items() if k not in ("skip_prk_steps", "set_alpha_to_one")})
    alphas = schedule.alphas_cumprod.float()
    parameters = list(unet.parameters()) + list(text.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(3001)
    losses = []
    unet.train()
    text.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, 1e-3)
        index = torch.randint(0, len(latents), (batch,), generator=generator)
        z0 = latents[index]
        noise = torch.randn(z0.shape, generator=generator)
        t = torch.randint(0, 1000, (batch,), generator=generator)
        a = alphas[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        context = text(ids[index]).last_hidden_state
        loss = F.mse_loss(unet(zt, t, encoder_hidden_states=context).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            log(f"denoiser step {step + 1}/{steps} loss {np.mean(losses[-100:]):.4f}")
    unet.eval()
    text.eval()
    round_to_half(unet)
    round_to_half(text)
    return losses, alphas


# ---------------------------------------------------------------- evaluation on the swapped pairs

def winoground(s):
    """s[k, i, c]: score of caption c for image i of pair k (higher is better). Strict inequalities."""
    text = (s[:, 0, 0] > s[:, 0, 1]) & (s[:, 1, 1] > s[:, 1, 0])
    image = (s[:, 0, 0] > s[:, 1, 0]) & (s[:, 1, 1] > s[:, 0, 1])
    return {"text": text.float().mean().item(), "image": image.float().mean().item(),
            "group": (text & image).float().mean().item(), "pairs": int(s.shape[0])}


def clip_scores(model, tokenizer, data, swaps):
    images = [[load_rgb(os.path.join(data, p[f"image_{i}"])) for i in (0, 1)] for p in swaps]
    with torch.no_grad():
        e_img = model.get_image_features(pixel_values=clip_pixels([x for pair in images for x in pair]))
        e_txt = model.get_text_features(input_ids=token_rows(tokenizer, [p[f"caption_{c}"] for p in swaps for c in (0, 1)], CONTEXT))
    e_img = F.normalize(_tensor(e_img), dim=-1).view(len(swaps), 2, -1)
    e_txt = F.normalize(_tensor(e_txt), dim=-1).view(len(swaps), 2, -1)
    return winoground(torch.einsum("kid,kcd->kic", e_img, e_txt))


def _tensor(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def diffusion_scores(unet, text, vae, tokenizer, alphas, data, swaps, timesteps):
    """Diffusion Classifier: -mean over `timesteps` of ||eps_hat(z_t, t, c) - eps||^2, the noise shared by both captions."""
    generator = torch.Generator().manual_seed(4000)
    scores = torch.zeros(len(swaps), 2, 2)
    with torch.no_grad():
        for k, pair in enumerate(swaps):
            x = vae_pixels([load_rgb(os.path.join(data, pair[f"image_{i}"])) for i in (0, 1)])
            z0 = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
            context = text(token_rows(tokenizer, [pair["caption_0"], pair["caption_1"]], CONTEXT)).last_hidden_state
            noise = torch.randn((len(timesteps), 4, LATENT, LATENT), generator=generator)
            t = torch.tensor(timesteps)
            a = alphas[t].view(-1, 1, 1, 1)
            for i in (0, 1):
                zt = a.sqrt() * z0[i:i + 1] + (1 - a).sqrt() * noise
                for c in (0, 1):
                    pred = unet(zt, t, encoder_hidden_states=context[c:c + 1].expand(len(timesteps), -1, -1)).sample
                    scores[k, i, c] = -((pred - noise) ** 2).mean()
    return winoground(scores)


# ---------------------------------------------------------------- writing

def write_clip(model, tokenizer_source, folder):
    model.config.dtype = "float32"
    model.config.save_pretrained(folder)
    state = {k: v.half() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    save_tensors(os.path.join(folder, "model.safetensors"), state, {"format": "pt"})
    save_tokenizer(tokenizer_source, folder)
    again = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
    assert again.dtype == torch.float32
    for key, value in again.state_dict().items():
        if not key.endswith("position_ids"):
            assert torch.equal(value, model.state_dict()[key]), key


def write_sd(unet, text, vae, tokenizer_source, folder):
    unet.save_pretrained(os.path.join(folder, "unet"))
    vae.save_pretrained(os.path.join(folder, "vae"))
    for component in ("unet", "vae"):
        # diffusers' own file, re-saved as float16 (the values are float16-exact already).
        path = os.path.join(folder, component, "diffusion_pytorch_model.safetensors")
        module = unet if component == "unet" else vae
        save_tensors(path, {k: v.half() for k, v in module.state_dict().items()}, {"format": "pt"})
    PNDMScheduler(**SCHEDULE).save_pretrained(os.path.join(folder, "scheduler"))
    te = os.path.join(folder, "text_encoder")
    os.makedirs(te, exist_ok=True)
    text.config.dtype = "float32"
    text.config.save_pretrained(te)
    state = {"text_model." + k if not k.startswith("text_model.") else k: v.half()
             for k, v in text.state_dict().items() if not k.endswith("position_ids")}
    save_tensors(os.path.join(te, "model.safetensors"), state, {"format": "pt"})
    save_tokenizer(tokenizer_source, os.path.join(folder, "tokenizer"))
    write_json(os.path.join(folder, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    })
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                   feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text)):
        loaded = getattr(pipe, name).state_dict()
        for key, value in module.state_dict().items():
            if not key.endswith("position_ids"):
                assert torch.equal(loaded[key].float(), value.float()), (name, key)
    image = pipe("a red circle left of a blue square", num_inference_steps=4, height=IMAGE, width=IMAGE,
                 output_type="pt", generator=torch.Generator().manual_seed(5)).images
    assert image.shape == (1, 3, IMAGE, IMAGE) and torch.isfinite(image).all()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdsclip", default=os.path.join(REPO, ".build", "debug", "sdsclip"))
    parser.add_argument("--count", type=int, default=2048)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--clip-steps", type=int, default=300)
    parser.add_argument("--vae-steps", type=int, default=100)
    parser.add_argument("--unet-steps", type=int, default=500)
    parser.add_argument("--classifier-timesteps", type=int, default=6)
    args = parser.parse_args()
    started = time.time()

    def log(message):
        print(f"[{time.time() - started:6.0f}s] {message}", flush=True)

    work = tempfile.mkdtemp(prefix="demo-models-")
    try:
        data = os.path.join(work, "world")
        rows, swaps = example_world(args.sdsclip, data, args.count, args.pairs)
        log(f"example world: {len(rows)} training samples, {len(swaps)} swapped pairs")
        shutil.rmtree(OUT, ignore_errors=True)
        vocabulary = os.path.join(work, "vocabulary")
        vocab = make_vocabulary(vocabulary)
        tokenizer = save_tokenizer(vocabulary, os.path.join(work, "tokenizer"))
        write_tokenizer_fixture(tokenizer)
        log(f"vocabulary: {vocab} tokens")

        clip, clip_losses = train_clip(vocab, tokenizer, rows, data, args.clip_steps, 64, log)
        clip_eval = clip_scores(clip, tokenizer, data, swaps)
        log(f"clip on the swapped pairs: {clip_eval}")

        images = vae_pixels([load_rgb(os.path.join(data, r["image"])) for r in rows])
        vae = make_vae()
        vae_losses = train_vae(vae, images, args.vae_steps, 32, log)
        with torch.no_grad():
            means = torch.cat([vae.encode(images[i:i + 256]).latent_dist.mean for i in range(0, len(images), 256)])
        scale = float(f"{1.0 / means.std().item():.5g}")
        vae.register_to_config(scaling_factor=scale)
        latents = means * scale
        log(f"vae latent std {means.std().item():.4f}: scaling_factor {scale}")

        torch.manual_seed(3100)
        text = CLIPTextModel(CLIPTextConfig(**text_config(vocab)))
        unet = make_unet()
        ids = token_rows(tokenizer, [r["caption"] for r in rows], CONTEXT)
        unet_losses, alphas = train_denoiser(unet, text, latents, ids, args.unet_steps, 64, log)
        timesteps = [int(t) for t in np.linspace(50, 950, args.classifier_timesteps).round()]
        teacher_eval = diffusion_scores(unet, text, vae, tokenizer, alphas, data, swaps, timesteps)
        log(f"teacher's diffusion classifier on the swapped pairs: {teacher_eval}")

        write_clip(clip, vocabulary, os.path.join(OUT, "clip"))
        write_sd(unet, text, vae, vocabulary, os.path.join(OUT, "sd"))
        for root, _, files in os.walk(OUT):
            for name in files:
                assert os.path.getsize(os.path.join(root, name)) < 2_000_000, name
        metrics = {
            "world": {"count": args.count, "pairs": args.pairs, "size": IMAGE, "seed": 0},
            "vocabulary": vocab,
            "clip": {"steps": args.clip_steps, "batch": 64, "loss_first50": float(np.mean(clip_losses[:50])),
                     "loss_last50": float(np.mean(clip_losses[-50:])), "swapped_pairs": clip_eval},
            "vae": {"steps": args.vae_steps, "batch": 32, "mse_last50": float(np.mean(vae_losses[-50:])), "scaling_factor": scale},
            "teacher": {"steps": args.unet_steps, "batch": 64, "loss_first100": float(np.mean(unet_losses[:100])),
                        "loss_last100": float(np.mean(unet_losses[-100:])), "classifier_timesteps": timesteps,
                        "swapped_pairs": teacher_eval},
            "seconds": round(time.time() - started),
        }
        write_json(os.path.join(OUT, "metrics.json"), metrics)
        write_readme(metrics)
        log("done")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def percent(x):
    return f"{100 * x:.1f}"


def write_readme(m):
    c, t = m["clip"]["swapped_pairs"], m["teacher"]["swapped_pairs"]
    text = f"""# Trained demo models

The models `sdsclip demo` starts from, trained on the example world (`sdsclip example-data --count {m['world']['count']}
--size 64 --seed 0`) by `tools/make_demo_models.py` (torch, transformers, diffusers; CPU, seeded; {m['seconds']} s).
Both carry a small vocabulary of their own ({m['vocabulary']} tokens: CLIP's 512 byte symbols, one token per example-world
word and a few common words, `<|startoftext|>`, `<|endoftext|>`) in transformers' tokenizer files, which sdsclip's
tokenizer reads from the model folder. Every tensor is stored float16 (configs say float32: the libraries compute in
float32 on exactly the stored values).

- `clip/`: transformers `CLIPModel`, quick_gelu; text width 32, 2 layers, 2 heads, 77 positions, eos = pad =
  `<|endoftext|>` (pooled at the first one); vision 32 px, patch 8 (4×4 grid), width 32, 2 layers; projection 32.
  Trained contrastively for {m['clip']['steps']} steps of {m['clip']['batch']} (loss {m['clip']['loss_first50']:.3f} over the
  first 50 steps, {m['clip']['loss_last50']:.3f} over the last 50): a short run, the "before" (on this one-template
  world even a short contrastive run binds above chance; see the table).
- `sd/`: diffusers `StableDiffusionPipeline` folder, SD1-style: `vae/` AutoencoderKL 64 px → 4×8×8 (blocks 8, 16, 16, 32;
  trained {m['vae']['steps']} steps as an autoencoder, reconstruction MSE {m['vae']['mse_last50']:.4f} in [-1, 1] units;
  `scaling_factor` {m['vae']['scaling_factor']} makes the latents unit-variance); `unet/` UNet2DConditionModel (blocks 32, 64,
  cross-attention 32, 4 heads, sample 8) and `text_encoder/` CLIPTextModel (the CLIP's text shape, its own weights),
  trained together for {m['teacher']['steps']} steps of {m['teacher']['batch']} to predict the noise of the scaled latents
  conditioned on the captions (ε loss {m['teacher']['loss_first100']:.3f} over the first 100 steps,
  {m['teacher']['loss_last100']:.3f} over the last 100); `scheduler/` PNDM on SD's scaled-linear schedule; `tokenizer/`.

Measured on {c['pairs']} swapped pairs of the example world (`test-swaps.jsonl`, Winoground scores, strict inequalities):

| model | text | image | group |
| --- | --- | --- | --- |
| `clip/` (cosine similarity) | {percent(c['text'])} | {percent(c['image'])} | {percent(c['group'])} |
| `sd/` diffusion-score classifier | {percent(t['text'])} | {percent(t['image'])} | {percent(t['group'])} |

Chance is 25 / 25 / 16.7. The classifier scores a caption by minus the mean squared error of the UNet's noise prediction
on the image's VAE latent (mean of the posterior, scaled) at timesteps {t_list(m)}, with one noise draw per timestep shared by
both captions. Its image score compares denoising errors across two different images, which are not on a common
scale (an image's error depends mostly on the image), so it is expected near zero; the text score is the classifier's
real test. All figures are in `metrics.json`.
"""
    write_bytes_atomic(os.path.join(OUT, "README.md"), text.encode())


def t_list(m):
    return ", ".join(str(t) for t in m["teacher"]["classifier_timesteps"])


if __name__ == "__main__":
    main()
