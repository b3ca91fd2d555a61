#!/usr/bin/env python3
"""Interop check of `sdsclip finetune`'s distilled CLIP against transformers.

Writes the example world (`sdsclip example-data`), fine-tunes the demo CLIP (fixtures/demo/clip) for a few
steps with the demo teacher, then loads OUT/final with `transformers.CLIPModel.from_pretrained`:
- it must load with no missing, unexpected or mismatched keys;
- only LayerNorm tensors may differ from the demo CLIP it started from, and some must;
- its projected image and text embeddings must equal `sdsclip embed OUT/final --output` within
  max|a-b| <= 1e-5 * max|b| (texts tokenized by sdsclip, pooled by transformers at the first EOT).

Usage: interop_finetune.py --cli PATH/TO/sdsclip [--root REPO]
Prints one line per check and `interop-finetune: N passed, M failed`; exit status 1 on any failure.
"""
import os
import sys
import tempfile

import torch
from safetensors.torch import load_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from interoplib import Checks  # noqa: E402
from transformers import CLIPModel  # noqa: E402

RELATIVE_TOLERANCE = 1e-5
TEXTS = ["a red circle left of a blue square", "a blue circle left of a red square"]


def main():
    checks = Checks.from_command_line()
    root, check, run = checks.root, checks.check, checks.run

    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "data"), os.path.join(tmp, "run")
        run("example-data", data, "--count", "32", "--size", "48")
        run("finetune", "--clip", "fixtures/demo/clip", "--teacher", "fixtures/demo/sd", "--data", f"{data}/train.jsonl",
            "--out", out, "--latent-size", "8", "--batch-size", "8", "--steps", "6", "--lr-clip", "1e-2", "--lr-map", "1e-2",
            "--warmup-steps", "1")
        final = os.path.join(out, "final")
        model, info = CLIPModel.from_pretrained(final, output_loading_info=True)
        model.eval()
        problems = {k: v for k, v in info.items() if v}
        check("from_pretrained(final) loads every tensor", not problems, str(problems) if problems else "")

        before = load_file(os.path.join(root, "fixtures/demo/clip/model.safetensors"))
        after = load_file(os.path.join(final, "model.safetensors"))
        changed = sorted(k for k in before if not torch.equal(before[k].float(), after[k]))
        only_norms = all("norm" in k or "layrnorm" in k for k in changed)
        check("only LayerNorms changed", bool(changed) and only_norms, f"({len(changed)} tensors changed)")

        embeddings = os.path.join(tmp, "embeds.safetensors")
        images = [os.path.join(data, "images", f"{i:05d}.png") for i in range(3)]
        run("embed", final, "--image", *images, "--output", embeddings)
        ours = load_file(embeddings)["image_embeds"]
        from PIL import Image  # noqa: E402
        import open_clip  # noqa: E402
        preprocess = open_clip.image_transform(model.config.vision_config.image_size, is_train=False)
        pixels = torch.stack([preprocess(Image.open(p)) for p in images])
        with torch.no_grad():
            theirs = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        error = (ours - theirs).abs().max().item() / theirs.abs().max().item()
        check("image embeddings equal transformers'", error <= RELATIVE_TOLERANCE, f"relative {error:.2e}")

        text_embeddings = os.path.join(tmp, "text.safetensors")
        run("embed", final, "--text", *TEXTS, "--output", text_embeddings)
        ours = load_file(text_embeddings)["text_embeds"]
        ids = [[int(t) for t in run("tokenize", text).stdout.strip().strip("[]").split(",")] for text in TEXTS]
        with torch.no_grad():
            theirs = model.text_projection(model.text_model(input_ids=torch.tensor(ids)).pooler_output)
        error = (ours - theirs).abs().max().item() / theirs.abs().max().item()
        check("text embeddings equal transformers'", error <= RELATIVE_TOLERANCE, f"relative {error:.2e}")

    return checks.summary("interop-finetune")


if __name__ == "__main__":
    sys.exit(main())
