#!/usr/bin/env python3
"""Interop check of `sdsclip export` against transformers and open_clip.

For every CLIP fixture (fixtures/clip: hf, hf_gelu_fp16mix, openclip_quickgelu, openclip_gelu, openai_jit) and
both layouts, runs `sdsclip export MODEL OUT --layout hf|openclip`, then:
- hf: `CLIPModel.from_pretrained(OUT, output_loading_info=True)` reports no missing, unexpected or mismatched
  keys, `CLIPProcessor.from_pretrained(OUT)` loads (its image size is the model's), and the model reproduces the
  fixture bundle's image_embeds and text_embeds (inputs.pixel_values, inputs.input_ids), and the weights'
  metadata names the source file with its SHA-256 (checked with hashlib);
- openclip: `open_clip.create_model_and_transforms('local-dir:OUT')` loads it (strictly) and `encode_image` /
  `encode_text` reproduce the same embeddings.
Error measure: max|a-b| <= 1e-4 * max|b|. The fixtures' 1000-token vocabularies cannot use CLIP's tokenizer, so
their texts are the bundle's ids. The tokenizer is checked on fixtures/demo/clip (the real 49,408-token
vocabulary): CLIPProcessor's ids equal `sdsclip tokenize --pad-id 49407`, and transformers' and open_clip's text
embeddings of those ids equal `sdsclip embed --text`. One F16 export is checked to load and agree within 1e-2.
A short fine-tune's OUT/final is exported to both layouts: step and settings in the metadata, the latent map
copied beside the weights, and both libraries embed texts as `sdsclip embed OUT/final` does.

Usage: interop_export.py --cli PATH/TO/sdsclip [--root REPO]
Prints one line per check and `interop-export: N passed, M failed`; exit status 1 on any failure.
"""
import hashlib
import json
import os
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from interoplib import Checks  # noqa: E402
import open_clip  # noqa: E402
from transformers import CLIPModel, CLIPProcessor  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

transformers_logging.disable_progress_bar()

RELATIVE_TOLERANCE = 1e-4
FIXTURES = {  # fixture → (model path, reference bundle)
    "hf": ("fixtures/clip/hf", "fixtures/clip/hf.reference.safetensors"),
    "hf_gelu_fp16mix": ("fixtures/clip/hf_gelu_fp16mix", "fixtures/clip/hf_gelu_fp16mix.reference.safetensors"),
    "openclip_quickgelu": ("fixtures/clip/openclip_quickgelu", "fixtures/clip/openclip_quickgelu.reference.safetensors"),
    "openclip_gelu": ("fixtures/clip/openclip_gelu", "fixtures/clip/openclip_gelu.reference.safetensors"),
    "openai_jit": ("fixtures/clip/openai_jit/ViT-tiny.pt", "fixtures/clip/openai_jit.reference.safetensors"),
}
TEXTS = ["a photo of an astronaut riding a horse on mars", "Apple CoreML developer tools on a Macbook Air are fast",
         "a red circle left of a blue square", "日本語のテキスト"]


def relative_error(ours, expected):
    return ((ours.float() - expected.float()).abs().max() / expected.float().abs().max()).item()


def transformers_embeddings(model, pixels, ids):
    with torch.no_grad():
        image = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        text = model.text_projection(model.text_model(input_ids=ids).pooler_output)
    return image, text


def open_clip_model(folder):
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    return model, preprocess


def main():
    checks = Checks.from_command_line()
    root, check, run = checks.root, checks.check, checks.run

    def guarded(name, body):
        try:
            body()
        except Exception as error:  # one broken case must not hide the others
            check(name, False, f"{type(error).__name__}: {error}")

    with tempfile.TemporaryDirectory() as tmp:
        for fixture, (model_path, bundle_path) in FIXTURES.items():
            bundle = load_file(os.path.join(root, bundle_path))
            pixels, ids = bundle["inputs.pixel_values"], bundle["inputs.input_ids"]
            image_expected, text_expected = bundle["outputs.image_embeds"], bundle["outputs.text_embeds"]

            def hf_case(fixture=fixture, model_path=model_path):
                out = os.path.join(tmp, f"{fixture}-hf")
                run("export", model_path, out, "--layout", "hf")
                model, info = CLIPModel.from_pretrained(out, output_loading_info=True)
                model.eval()
                problems = {k: v for k, v in info.items() if v}
                check(f"{fixture} hf: from_pretrained loads every tensor", not problems, str(problems) if problems else "")
                processor = CLIPProcessor.from_pretrained(out)
                size = model.config.vision_config.image_size
                crop = processor.image_processor.crop_size
                check(f"{fixture} hf: CLIPProcessor loads", crop["height"] == size and crop["width"] == size,
                      f"(crop {crop['height']}x{crop['width']}, image size {size})")
                image, text = transformers_embeddings(model, pixels, ids)
                check(f"{fixture} hf: image embeddings", relative_error(image, image_expected) <= RELATIVE_TOLERANCE,
                      f"relative {relative_error(image, image_expected):.2e}")
                check(f"{fixture} hf: text embeddings", relative_error(text, text_expected) <= RELATIVE_TOLERANCE,
                      f"relative {relative_error(text, text_expected):.2e}")
                with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
                    metadata = f.metadata()
                source = metadata.get("sdsclip_source_file", "")
                digest = hashlib.sha256(open(source, "rb").read()).hexdigest() if os.path.isfile(source) else None
                check(f"{fixture} hf: metadata names the source and its SHA-256",
                      digest is not None and metadata.get("sdsclip_source_sha256") == digest, str(metadata))

            def openclip_case(fixture=fixture, model_path=model_path):
                out = os.path.join(tmp, f"{fixture}-openclip")
                run("export", model_path, out, "--layout", "openclip")
                model, _ = open_clip_model(out)  # load_checkpoint is strict: missing or unexpected keys raise
                check(f"{fixture} openclip: create_model_and_transforms loads it", True)
                with torch.no_grad():
                    image, text = model.encode_image(pixels), model.encode_text(ids)
                check(f"{fixture} openclip: image embeddings", relative_error(image, image_expected) <= RELATIVE_TOLERANCE,
                      f"relative {relative_error(image, image_expected):.2e}")
                check(f"{fixture} openclip: text embeddings", relative_error(text, text_expected) <= RELATIVE_TOLERANCE,
                      f"relative {relative_error(text, text_expected):.2e}")

            guarded(f"{fixture} hf", hf_case)
            guarded(f"{fixture} openclip", openclip_case)

        def f16_case():
            out = os.path.join(tmp, "hf-f16")
            run("export", "fixtures/clip/hf", out, "--layout", "hf", "--dtype", "f16")
            dtypes = {t.dtype for t in load_file(os.path.join(out, "model.safetensors")).values()}
            model, info = CLIPModel.from_pretrained(out, output_loading_info=True, dtype=torch.float32)
            problems = {k: v for k, v in info.items() if v}
            check("hf --dtype f16: F16 tensors, loads every tensor", dtypes == {torch.float16} and not problems,
                  f"({dtypes}, {problems})")
            bundle = load_file(os.path.join(root, FIXTURES["hf"][1]))
            image, _ = transformers_embeddings(model.eval(), bundle["inputs.pixel_values"], bundle["inputs.input_ids"])
            error = relative_error(image, bundle["outputs.image_embeds"])
            check("hf --dtype f16: image embeddings within 1e-2", error <= 1e-2, f"relative {error:.2e}")

        guarded("hf --dtype f16", f16_case)

        def tokenizer_case():
            out_hf, out_oc = os.path.join(tmp, "demo-hf"), os.path.join(tmp, "demo-openclip")
            run("export", "fixtures/demo/clip", out_hf, "--layout", "hf")
            run("export", "fixtures/demo/clip", out_oc, "--layout", "openclip")
            processor = CLIPProcessor.from_pretrained(out_hf)
            theirs = processor.tokenizer(TEXTS, padding="max_length", max_length=77, truncation=True)["input_ids"]
            ours = [json.loads(line) for line in run("tokenize", *TEXTS, "--pad-id", "49407").stdout.split("\n") if line]
            check("demo hf: CLIPProcessor tokenizes as sdsclip tokenize", theirs == ours,
                  "" if theirs == ours else f"\n  theirs {theirs}\n  ours   {ours}")
            embeddings = os.path.join(tmp, "demo-text.safetensors")
            run("embed", "fixtures/demo/clip", "--text", *TEXTS, "--output", embeddings)
            expected = load_file(embeddings)["text_embeds"]
            model = CLIPModel.from_pretrained(out_hf).eval()
            with torch.no_grad():
                text = model.get_text_features(**processor.tokenizer(TEXTS, padding="max_length", max_length=77,
                                                                     return_tensors="pt"))
            text = getattr(text, "pooler_output", text)
            check("demo hf: text embeddings of CLIPProcessor's ids equal sdsclip embed",
                  relative_error(text, expected) <= RELATIVE_TOLERANCE, f"relative {relative_error(text, expected):.2e}")
            model, _ = open_clip_model(out_oc)
            tokens = open_clip.get_tokenizer(f"local-dir:{out_oc}")(TEXTS)
            with torch.no_grad():
                text = model.encode_text(tokens)
            check("demo openclip: text embeddings of open_clip's tokens equal sdsclip embed",
                  relative_error(text, expected) <= RELATIVE_TOLERANCE, f"relative {relative_error(text, expected):.2e}")

        guarded("demo tokenizer", tokenizer_case)

        def finetune_case():
            data, run_folder = os.path.join(tmp, "data"), os.path.join(tmp, "run")
            run("example-data", data, "--count", "16", "--size", "40")
            run("finetune", "--clip", "fixtures/demo/clip", "--teacher", "fixtures/demo/sd", "--data", f"{data}/train.jsonl",
                "--out", run_folder, "--latent-size", "8", "--batch-size", "4", "--steps", "3", "--warmup-steps", "1")
            final = os.path.join(run_folder, "final")
            embeddings = os.path.join(tmp, "final-text.safetensors")
            run("embed", final, "--text", *TEXTS, "--output", embeddings)
            expected = load_file(embeddings)["text_embeds"]
            ids = torch.tensor([json.loads(line) for line in run("tokenize", *TEXTS).stdout.split("\n") if line])
            latent_map = open(os.path.join(final, "latent_map", "latent_map.safetensors"), "rb").read()
            for layout, weights in (("hf", "model.safetensors"), ("openclip", "open_clip_model.safetensors")):
                out = os.path.join(tmp, f"final-{layout}")
                run("export", final, out, "--layout", layout)
                with safe_open(os.path.join(out, weights), "pt") as f:
                    metadata, names = f.metadata(), list(f.keys())
                copied = open(os.path.join(out, "latent_map", "latent_map.safetensors"), "rb").read() == latent_map
                check(f"OUT/final {layout}: step, settings and latent map beside the weights",
                      metadata.get("sdsclip_step") == "3" and "lambda" in json.loads(metadata.get("sdsclip_training", "{}"))
                      and copied and not any(n.startswith("latent_map") for n in names), str(metadata.get("sdsclip_step")))
                if layout == "hf":
                    model, info = CLIPModel.from_pretrained(out, output_loading_info=True)
                    problems = {k: v for k, v in info.items() if v}
                    with torch.no_grad():
                        text = model.eval().text_projection(model.text_model(input_ids=ids).pooler_output)
                else:
                    model, _ = open_clip_model(out)
                    problems = {}
                    with torch.no_grad():
                        text = model.encode_text(ids)
                error = relative_error(text, expected)
                check(f"OUT/final {layout}: loads and embeds as sdsclip embed", not problems and error <= RELATIVE_TOLERANCE,
                      f"relative {error:.2e} {problems or ''}")

        guarded("OUT/final", finetune_case)

    return checks.summary("interop-export")


if __name__ == "__main__":
    sys.exit(main())
