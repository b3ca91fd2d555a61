#!/usr/bin/env bash
# The main job on the shipped example data, from a fresh machine: installs the system packages,
# builds the release CLI, reads, converts and verifies the example models end to end, then runs
# `sdsclip demo`: the SDS-CLIP fine-tune on the example world with the trained demo models, its
# lambda = 0 control, export, evaluation and a report in demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product sdsclip
BIN=.build/release/sdsclip
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "inspect a Lightning-style SD checkpoint (read symbolically: no pickle code runs)"
$BIN inspect fixtures/sd/sd1_tiny.ckpt | tail -n 4

step "convert it to safetensors (atomic write), then inspect the result"
$BIN convert fixtures/sd/sd1_tiny.ckpt "$OUT/sd1_tiny.safetensors"
$BIN inspect "$OUT/sd1_tiny.safetensors" | tail -n 3

step "verify CLIP in every layout against outputs of transformers / open_clip"
for pair in "hf:hf" "hf/pytorch_model.bin:hf" "hf_gelu_fp16mix:hf_gelu_fp16mix" \
            "openclip_quickgelu:openclip_quickgelu" "openclip_gelu/open_clip_pytorch_model.bin:openclip_gelu" \
            "openai_jit/ViT-tiny.pt:openai_jit"; do
  model=${pair%%:*}; bundle=${pair##*:}
  printf '%-48s ' "$model"
  $BIN verify "fixtures/clip/$model" "fixtures/clip/$bundle.reference.safetensors" | tail -n 1
done

step "verify Stable Diffusion components against diffusers (pipeline folder, single-file checkpoint, EMA copy)"
for bundle in unet_sd1 vae_encoder vae_decoder text_sd1; do
  printf '%-48s ' "sd1_diffusers : $bundle"
  $BIN verify fixtures/sd/sd1_diffusers "fixtures/sd/$bundle.reference.safetensors" | tail -n 1
done
printf '%-48s ' "sd1_tiny.ckpt : unet_sd1_ema"
$BIN verify fixtures/sd/sd1_tiny.ckpt fixtures/sd/unet_sd1_ema.reference.safetensors --config fixtures/sd/sd1_diffusers --ema | tail -n 1

step "convert an SD2 single file to a diffusers folder, then verify the folder"
$BIN convert fixtures/sd/sd2_tiny.safetensors "$OUT/sd2" --layout diffusers --config fixtures/sd/sd2_diffusers
for bundle in unet_sd2 text_sd2; do
  printf '%-48s ' "converted sd2 : $bundle"
  $BIN verify "$OUT/sd2" "fixtures/sd/$bundle.reference.safetensors" | tail -n 1
done

step "tokenize as open_clip does"
$BIN tokenize "a photo of an astronaut riding a horse on mars" --context-length 16

# (The tiny fixture CLIPs have a 1000-token vocabulary, so they embed images here; texts need a real
# CLIP, whose 49408-token vocabulary the shipped tokenizer matches.)
step "embed two images with the tiny CLIP (decode, Pillow-exact resize and crop, normalise, ViT)"
$BIN embed fixtures/clip/openclip_quickgelu --image fixtures/images/rgb_224x224.png fixtures/images/rgb_333x250.png

step "check one SDS-CLIP training step against torch (losses, gradients, one AdamW update)"
$BIN verify fixtures/clip/hf fixtures/sds/sd1_tokens_full.safetensors --teacher fixtures/sd/sd1_diffusers | tail -n 1
$BIN verify fixtures/demo/clip fixtures/sds/demo_pooled_full.safetensors --teacher fixtures/demo/sd | tail -n 1

step "the main job: sdsclip demo (example world -> SDS fine-tune and lambda = 0 control -> export -> evaluate -> report)"
$BIN demo demo-output --overwrite
printf '\nreport: demo-output/report.md (table, settings, timings), demo-output/loss.png, demo-output/report.json\n'
