"""Image decoding / CLIP preprocessing fixtures for Tests/ImagingTests.

Run:  HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_image_fixtures.py
Writes fixtures/images/: small seeded images (PNG/JPEG, varied sizes, aspect ratios and
modes) and the reference outputs of the real libraries:
  - decoded.safetensors  Pillow's decoded RGB bytes (`Image.open(p).convert("RGB")`) for
                         every JPEG and for the special-mode PNGs, plus `<name>.alpha`.
  - clip224_*.safetensors open_clip `image_transform(224, is_train=False)` output, stored
                         losslessly as the uint8 HxWxC image before ToTensor/Normalize
                         (checked below to reproduce the float tensor bit for bit), to
                         keep files small.
  - resample.safetensors `Image.resize` inputs and outputs for the resampler alone
                         (both pass orders, the boundary between them, nearest for "P").
  - clip_f32.safetensors open_clip float tensors of every image at R=32 (`<name>.r32`),
                         the tiny test model's resolution; checks normalisation directly.
Everything is deterministic (seeded numpy, PIL drawing, fixed JPEG settings).
"""
import json
import os
import struct
import zlib

import numpy as np
import open_clip
import PIL
import torch
import torchvision
from PIL import Image, ImageDraw
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "images")
MEAN = np.array(open_clip.OPENAI_DATASET_MEAN, dtype=np.float32)
STD = np.array(open_clip.OPENAI_DATASET_STD, dtype=np.float32)


# Images whose full R=224 result is stored (150 KB each); every image is checked at R=32.
AT_224 = {"rgb_37x23.png", "rgb_64x500.png", "rgb_500x64.png", "rgb_333x250.png", "rgb_1x1.png",
          "rgb_225x224.png", "baseline_q90_240x160.jpg", "rgba_160x120.png", "palette_150x110.png"}


def scene(width, height, seed):
    """Gradients + shapes + blocky and fine noise: real structure for the resampler."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.sin((x + 2 * y) / max(width, height) * 6.28)
    base = np.stack([r, g, b], -1)
    block = rng.integers(-24, 25, ((height + 7) // 8, (width + 7) // 8, 3))
    base += np.kron(block, np.ones((8, 8, 1)))[:height, :width]
    # Fine per-pixel noise in one corner only, so files stay small.
    ph, pw = max(1, height // 4), max(1, width // 4)
    base[:ph, :pw] += rng.integers(-60, 61, (ph, pw, 3))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for i in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(1, max(2, width // 2))), y0 + int(rng.integers(1, max(2, height // 2)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if i % 3 == 0:
            draw.ellipse([x0, y0, x1, y1], fill=color)
        elif i % 3 == 1:
            draw.rectangle([x0, y0, x1, y1], fill=color)
        else:
            draw.line([x0, y0, x1, y1], fill=color, width=3)
    return img


def write_png16(path, arr, color_type):
    """16-bit PNG written by hand (Pillow cannot save 16-bit RGB)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[row].astype(">u2").tobytes() for row in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def write_png_adam7(path, arr):
    """8-bit RGB PNG with Adam7 interlacing, written by hand (Pillow cannot write it)."""
    h, w = arr.shape[:2]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue  # empty passes contribute no bytes at all
        raw += b"".join(b"\x00" + sub[row].tobytes() for row in range(sub.shape[0]))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_images():
    """Returns {file name: kind}; kind says which checks apply."""
    files = {}

    def save_png(img, name):
        img.save(os.path.join(OUT, name), optimize=True)
        files[name] = "png"

    # Plain RGB PNGs: varied sizes and aspect ratios.
    for (w, h), seed in [((37, 23), 1), ((200, 300), 3), ((224, 224), 4), ((64, 500), 5),
                         ((500, 64), 6), ((225, 224), 7), ((333, 250), 8), ((1, 1), 9), ((3, 97), 10)]:
        save_png(scene(w, h, seed), f"rgb_{w}x{h}.png")

    # JPEGs: baseline quality 90 (4:2:0), progressive, greyscale.
    scene(240, 160, 2).save(os.path.join(OUT, "baseline_q90_240x160.jpg"), quality=90)
    files["baseline_q90_240x160.jpg"] = "jpeg"
    scene(160, 120, 11).save(os.path.join(OUT, "progressive_160x120.jpg"), quality=85, progressive=True)
    files["progressive_160x120.jpg"] = "jpeg"
    scene(100, 140, 12).convert("L").save(os.path.join(OUT, "gray_100x140.jpg"), quality=92)
    files["gray_100x140.jpg"] = "jpeg"

    # Special PNG modes (Pillow resizes RGBA/LA premultiplied, P with nearest neighbour).
    save_png(scene(120, 90, 13).convert("L"), "gray_120x90.png")
    rgba = scene(160, 120, 14).convert("RGBA")
    yy, xx = np.mgrid[0:120, 0:160]
    alpha = np.clip(255 * xx / 159 + 80 * np.sin(yy / 7), 0, 255).astype(np.uint8)
    alpha[40:70, 50:90] = 0  # fully transparent hole whose colour must not bleed
    rgba.putalpha(Image.fromarray(alpha, "L"))
    save_png(rgba, "rgba_160x120.png")
    la = scene(80, 60, 15).convert("LA")
    la.putalpha(Image.fromarray(alpha[:60, :80], "L"))
    save_png(la, "gray_alpha_80x60.png")
    pal = scene(150, 110, 16).quantize(colors=48, dither=Image.Dither.NONE)
    pal.info["transparency"] = 3
    pal.save(os.path.join(OUT, "palette_150x110.png"), transparency=3)
    files["palette_150x110.png"] = "png"
    rng = np.random.default_rng(17)
    base16 = np.asarray(scene(90, 70, 17)).astype(np.int64) * 257 + rng.integers(0, 257, (70, 90, 3))
    write_png16(os.path.join(OUT, "rgb16_90x70.png"), np.clip(base16, 0, 65535), 2)
    files["rgb16_90x70.png"] = "png"

    write_png_adam7(os.path.join(OUT, "interlaced_45x29.png"), np.asarray(scene(45, 29, 19)))
    files["interlaced_45x29.png"] = "png"

    # Unsupported on purpose: CMYK JPEG (error test only).
    scene(16, 16, 18).convert("CMYK").save(os.path.join(OUT, "cmyk_16x16.jpg"), quality=90)
    return files


# Direct `Image.resize` cases (W, H, ow, oh) for the resampler itself. Pillow 13 picks the
# pass order from the sizes, so these straddle its rule: vertical first iff oh < H and
# H - oh > 2 * (W - ow); the first three are just below, at and above the boundary.
RESAMPLE_CASES = [(40, 40, 24, 10), (40, 40, 25, 10), (40, 40, 26, 10), (30, 40, 37, 13), (40, 30, 13, 37),
                  (37, 23, 50, 41), (40, 40, 3, 2), (1, 1, 7, 5), (40, 40, 40, 17), (40, 40, 17, 40),
                  (23, 40, 11, 9)]
NEAREST_CASES = [(40, 40, 17, 29), (13, 7, 40, 33)]


def make_resample_cases():
    rng = np.random.default_rng(100)
    tensors = {}
    for i, (w, h, ow, oh) in enumerate(RESAMPLE_CASES):
        src = np.asarray(scene(w, h, 200 + i))
        # Add full-resolution noise: worst case for rounding between the passes.
        src = np.clip(src.astype(np.int64) + rng.integers(-40, 41, src.shape), 0, 255).astype(np.uint8)
        tensors[f"bicubic{i}.source"] = np.ascontiguousarray(src)
        tensors[f"bicubic{i}.expected"] = np.ascontiguousarray(
            np.asarray(Image.fromarray(src, "RGB").resize((ow, oh), Image.BICUBIC)))
    for i, (w, h, ow, oh) in enumerate(NEAREST_CASES):
        pal = scene(w, h, 300 + i).quantize(colors=32, dither=Image.Dither.NONE)
        tensors[f"nearest{i}.source"] = np.ascontiguousarray(np.asarray(pal.convert("RGB")))
        # Pillow ignores the filter for "P" images and uses nearest neighbour.
        tensors[f"nearest{i}.expected"] = np.ascontiguousarray(
            np.asarray(pal.resize((ow, oh), Image.BICUBIC).convert("RGB")))
    return tensors


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    files = make_images()
    decoded, u8_224, f32 = {}, {}, {}
    t224 = open_clip.image_transform(224, is_train=False)
    t32 = open_clip.image_transform(32, is_train=False)
    for name in sorted(files):
        path = os.path.join(OUT, name)
        with Image.open(path) as im:
            im.load()
            opened_mode = im.mode
            if files[name] == "jpeg" or not name.startswith("rgb_"):
                decoded[name] = np.ascontiguousarray(np.asarray(im.convert("RGB")))
                if "A" in opened_mode:
                    decoded[name + ".alpha"] = np.ascontiguousarray(np.asarray(im.getchannel("A")))
            x224 = t224(im).numpy()
            x32 = t32(im).numpy()
        # Lossless uint8 form of the 224 tensor: invert Normalize/ToTensor and check that
        # redoing them in float32 (as torchvision does) gives the tensor back exactly.
        u8 = np.rint((x224 * STD[:, None, None] + MEAN[:, None, None]) * 255).astype(np.int64)
        assert u8.min() >= 0 and u8.max() <= 255, name
        u8 = u8.astype(np.uint8)
        again = (torch.from_numpy(u8).float() / 255 - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]
        assert np.array_equal(again.numpy(), x224), f"uint8 form of {name} is not lossless"
        if name in AT_224:
            u8_224[name] = np.ascontiguousarray(u8.transpose(1, 2, 0))
        f32[name + ".r32"] = np.ascontiguousarray(x32.astype(np.float32))
        print(f"{name:28s} {opened_mode:5s} {os.path.getsize(path):7d} bytes")

    # One metadata key: safetensors writes several in hash order, which varies between runs.
    meta = {"info": json.dumps({
        "generator": "tools/make_image_fixtures.py",
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "open_clip": open_clip.__version__, "pillow": PIL.__version__},
        "mean": MEAN.tolist(), "std": STD.tolist()}, sort_keys=True)}
    names = sorted(u8_224)
    half = len(names) // 2
    save_file({k: u8_224[k] for k in names[:half]}, os.path.join(OUT, "clip224_a.safetensors"), metadata=meta)
    save_file({k: u8_224[k] for k in names[half:]}, os.path.join(OUT, "clip224_b.safetensors"), metadata=meta)
    save_file(f32, os.path.join(OUT, "clip_f32.safetensors"), metadata=meta)
    save_file(decoded, os.path.join(OUT, "decoded.safetensors"), metadata=meta)
    save_file(make_resample_cases(), os.path.join(OUT, "resample.safetensors"), metadata=meta)
    for f in os.listdir(OUT):
        os.chmod(os.path.join(OUT, f), 0o644)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    for f in sorted(os.listdir(OUT)):
        assert os.path.getsize(os.path.join(OUT, f)) < 1_000_000, f
    print(f"total {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
