#!/usr/bin/env python3
"""Pillow's RGB for the CMYK JPEG fixture, for Tests/ImagingTests (CMYK decoding as Pillow does it).

Writes fixtures/images/cmyk_decoded.safetensors: `cmyk_16x16.jpg` = `Image.open(p).convert("RGB")` as
uint8 HxWx3 (Pillow reads CMYK JPEGs as Adobe-inverted "CMYK;I", then converts with its cmyk2rgb).
The JPEG itself comes from tools/make_image_fixtures.py.
Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_cmyk_fixture.py
"""
import os

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file

IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "images")

with Image.open(os.path.join(IMAGES, "cmyk_16x16.jpg")) as im:
    assert im.mode == "CMYK", im.mode
    rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
save_file({"cmyk_16x16.jpg": rgb}, os.path.join(IMAGES, "cmyk_decoded.safetensors"),
          metadata={"pillow": PIL.__version__})
print("cmyk_16x16.jpg", rgb.shape, rgb.reshape(-1, 3)[:3].tolist())
