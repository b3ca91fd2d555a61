#!/usr/bin/env python3
"""Parity fixtures for `sdsclip eval`: small benchmarks in every layout it reads, and the scores the real
libraries give them.

Writes fixtures/eval/:
  clip/                                              the fixture CLIP (below): config.json, model.safetensors (float16)
  winoground/examples.jsonl + images/ex_N_img_M.png   Winoground layout (12 rows, tags Object/Relation/Both, one RGBA image)
  sugarcrepe/{add_att,replace_rel,swap_obj}.json     4 real items of each SugarCrepe file (MIT, see README), with
           + val2017/<filename>.jpg                  generated stand-in JPEGs under the COCO names they expect
  choice/choice.jsonl + images/                      generic multiple choice (3 or 4 captions a row)
  aro/visual_genome_relation.json, visual_genome_attribution.json + images/   ARO layout (a box past the image's
                                                     edge; 25 items of one attribute pair, so the macro has a subset)
  expected.json                                      the projected embedding of every distinct image (and crop) and
                                                     caption; per benchmark each item's outcomes and every score
  README.md

The CLIP is fixtures/demo/clip (transformers CLIPModel, real 49408-token vocabulary) with its vision tower redrawn
at a larger scale: the demo's untrained image tower gives nearly the same embedding for every picture (cosine
> 0.98), which would make every Winoground score 0. Images are preprocessed by open_clip's
`image_transform(32, is_train=False)` (ARO: `Image.open(p).convert("RGB").crop(box)` first, as the ARO authors),
captions tokenized by `open_clip.tokenize`; embeddings are transformers'
`visual_projection(vision_model(...).pooler_output)` and `text_projection(text_model(...).pooler_output)`.
s(c, i) is their cosine similarity in float64; the metrics are computed here from those embeddings: Winoground's
strict inequalities, accuracy per SugarCrepe file, ARO per subset and its authors' macro average.

Every comparison a metric makes must differ by at least MIN_MARGIN, so float32 rounding on either side cannot
flip an outcome and counts must agree exactly: a drawn item whose comparisons are closer is drawn again (its
files removed), and Winoground items are drawn until each of its scores has a correct item.

Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_eval_fixtures.py
Deterministic: seeded drawing, single-threaded torch; rerunning rewrites the same files.
"""
import io
import json
import os
import random
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import open_clip  # noqa: E402
import PIL  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from make_sd_fixtures import assert_same_state, write_bytes_atomic, write_json  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
torch.set_num_threads(1)

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(REPO, "fixtures", "eval")
DEMO_CLIP = os.path.join(REPO, "fixtures", "demo", "clip")
CLIP = os.path.join(OUT, "clip")
SUGARCREPE = os.path.join(REPO, "..", "shared", "benchmarks", "sugarcrepe")
MAX_FILE = 2_000_000
MIN_MARGIN = 1e-4
MAX_DRAWS = 3000

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40),
           "purple": (140, 50, 170), "orange": (240, 140, 30), "white": (245, 245, 245), "black": (20, 20, 20)}
SHAPES = ["circle", "square", "triangle"]
RELATIONS = ["left of", "above", "right of", "below"]
POSITIONS = {"left of": ((0.1, 0.5), (0.9, 0.5)), "right of": ((0.9, 0.5), (0.1, 0.5)),
             "above": ((0.5, 0.1), (0.5, 0.9)), "below": ((0.5, 0.9), (0.5, 0.1))}
# The relations of ARO's symmetric list (its authors' notebook; AROReader.swift has all of it) used here.
SYMMETRIC_HERE = {"next to", "near"}


def rel(path):
    return os.path.relpath(path, OUT)


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


# --- the fixture CLIP ------------------------------------------------------------------------------------

def write_clip():
    """The demo CLIP with every vision matrix (not the position table) redrawn at 10x its standard deviation
    and a larger visual projection, rounded to float16 (the stored dtype), then loaded back from the folder."""
    model = CLIPModel.from_pretrained(DEMO_CLIP).eval()
    g = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for name, p in model.vision_model.named_parameters():
            if p.ndim >= 2 and "position" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 10 * p.std())
        model.visual_projection.weight.copy_(torch.randn(model.visual_projection.weight.shape, generator=g) * 0.2)
        for p in model.parameters():
            p.copy_(p.half().float())
    fresh_dir(CLIP)
    model.config.dtype = "float32"
    model.config.save_pretrained(CLIP)
    state = {k: v.half().contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    save_file(state, os.path.join(CLIP, "model.safetensors"), metadata={"format": "pt"})
    again = CLIPModel.from_pretrained(CLIP).eval()
    assert again.dtype == torch.float32
    assert_same_state(again.state_dict(), model.state_dict(), "eval clip")
    return again


class Judge:
    """Embeds with the fixture CLIP as the libraries do; scores items and records their closest comparison."""

    def __init__(self, model):
        self.model = model
        self.preprocess = open_clip.image_transform(model.config.vision_config.image_size, is_train=False)

    def embed(self, images, captions):
        pictures = []
        for path, crop in images:
            image = Image.open(path)
            if crop is not None:
                image = image.convert("RGB").crop(crop)
            pictures.append(self.preprocess(image))
        with torch.no_grad():
            image_embeds = self.model.visual_projection(self.model.vision_model(pixel_values=torch.stack(pictures)).pooler_output)
            text_embeds = self.model.text_projection(self.model.text_model(input_ids=open_clip.tokenize(captions)).pooler_output)
        return dict(zip(images, image_embeds)), dict(zip(captions, text_embeds))

    @staticmethod
    def outcome(item, image_embeds, text_embeds):
        """(metric values, smallest |difference| of the comparisons made)."""
        def s(caption, image):
            t, i = text_embeds[item["captions"][caption]].double(), image_embeds[item["images"][image]].double()
            return float(t @ i / (t.norm() * i.norm()))

        return item_outcome(item, s)

    def judge(self, item):
        image_embeds, text_embeds = self.embed(list(dict.fromkeys(item["images"])), list(dict.fromkeys(item["captions"])))
        return self.outcome(item, image_embeds, text_embeds)


def item_outcome(item, s):
    """An item's metric values from s(caption index, image index) with Winoground's strict inequalities, and the
    smallest |difference| of the comparisons made."""
    margins = []

    def greater(x, y):
        margins.append(abs(x - y))
        return x > y

    if item["task"] == "pairs":
        text = greater(s(0, 0), s(1, 0)) & greater(s(1, 1), s(0, 1))
        image = greater(s(0, 0), s(0, 1)) & greater(s(1, 1), s(1, 0))
        return [text, image, text and image], min(margins)
    answer = item["task"][1]
    right = s(answer, 0)
    return [all([greater(right, s(k, 0)) for k in range(len(item["captions"])) if k != answer])], min(margins)


def draw_until(judge, make, accept=lambda values: True):
    """Draws items with `make(attempt)` (which writes their files and returns (item, files)) until one has every
    comparison at least MIN_MARGIN apart and `accept`s its outcome; removes the files of the rejected ones."""
    for attempt in range(MAX_DRAWS):
        item, files = make(attempt)
        values, margin = judge.judge(item)
        if margin >= MIN_MARGIN and accept(values):
            return item
        for path in files:
            os.remove(path)
    raise RuntimeError(f"no acceptable item in {MAX_DRAWS} draws")


# --- pictures --------------------------------------------------------------------------------------------

def draw_shape(draw, shape, box, colour):
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        x0, y0, x1, y1 = box
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)


def scene(rng, size, objects):
    """(shape, colour, (fx, fy)) objects, fx and fy in [0, 1], on a noisy background of a random colour."""
    width, height = size
    base = np.array([rng.randrange(60, 200) for _ in range(3)], dtype=np.int64)
    noise = np.random.default_rng(rng.randrange(1 << 30)).integers(-12, 13, (height, width, 3))
    image = Image.fromarray(np.clip(base[None, None, :] + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    radius = min(width, height) // 5
    for shape, colour, (fx, fy) in objects:
        cx, cy = int(fx * (width - 2 * radius)) + radius, int(fy * (height - 2 * radius)) + radius
        draw_shape(draw, shape, (cx - radius, cy - radius, cx + radius, cy + radius), COLOURS[colour])
    return image


def random_objects(rng, count):
    return [(rng.choice(SHAPES), rng.choice(sorted(COLOURS)), (rng.random(), rng.random())) for _ in range(count)]


def save(image, path, format):
    buffer = io.BytesIO()
    image.save(buffer, format, **({"quality": 90} if format == "JPEG" else {}))
    write_bytes_atomic(path, buffer.getvalue())
    return path


def write_jsonl(path, rows):
    write_bytes_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


# --- the benchmarks ---------------------------------------------------------------------------------------

def winoground(judge, rng):
    folder = os.path.join(OUT, "winoground")
    fresh_dir(os.path.join(folder, "images"))
    tags = ["Object", "Relation", "Both"]
    rows, items, correct = [], [], [0, 0, 0]
    for index in range(12):
        def make(attempt):
            a, b = rng.sample(sorted(COLOURS), 2)
            s, t = rng.sample(SHAPES, 2)
            relation = rng.choice(RELATIONS)
            first, second = POSITIONS[relation]
            size = rng.choice([(48, 40), (40, 56), (64, 64)])
            pictures = [scene(rng, size, [(s, a, first), (t, b, second)]), scene(rng, size, [(t, b, first), (s, a, second)])]
            if index == 4:
                # An RGBA picture: CLIP's preprocessing resizes it premultiplied.
                pictures[1] = pictures[1].convert("RGBA")
                pictures[1].putalpha(Image.linear_gradient("L").resize(size))
            paths = [save(p, os.path.join(folder, "images", f"ex_{index}_img_{k}.png"), "PNG") for k, p in enumerate(pictures)]
            row = {"id": index, "caption_0": f"a {a} {s} {relation} a {b} {t}", "caption_1": f"a {b} {t} {relation} a {a} {s}",
                   "image_0": f"ex_{index}_img_0", "image_1": f"ex_{index}_img_1", "tag": tags[index % 3],
                   "secondary_tag": "", "num_main_preds": 1, "collapsed_tag": tags[index % 3]}
            item = {"images": [(p, None) for p in paths], "captions": [row["caption_0"], row["caption_1"]],
                    "task": "pairs", "subset": row["collapsed_tag"], "row": row}
            return item, paths

        # The last items wait for a metric that has no correct item yet.
        missing = [m for m in range(3) if correct[m] == 0]
        needs = missing if 12 - index <= len(missing) else []
        item = draw_until(judge, make, accept=lambda values: all(values[m] for m in needs))
        correct = [c + v for c, v in zip(correct, judge.judge(item)[0])]
        rows.append(item.pop("row"))
        items.append(item)
    write_jsonl(os.path.join(folder, "examples.jsonl"), rows)
    return {"path": "winoground", "name": "winoground", "kind": "winoground", "metrics": ["text", "image", "group"],
            "overall": True, "items": items}


def sugarcrepe(judge, rng):
    folder = os.path.join(OUT, "sugarcrepe")
    fresh_dir(os.path.join(folder, "val2017"))
    items = []
    for name in ["add_att", "replace_rel", "swap_obj"]:
        with open(os.path.join(SUGARCREPE, f"{name}.json")) as f:
            real = json.load(f)
        chosen = {str(k): real[key] for k, key in enumerate(list(real)[:4])}
        write_bytes_atomic(os.path.join(folder, f"{name}.json"), (json.dumps(chosen, indent=4) + "\n").encode())
        for entry in chosen.values():
            path = os.path.join(folder, "val2017", entry["filename"])

            def make(attempt):
                image = scene(rng, rng.choice([(64, 48), (48, 64), (72, 54)]), random_objects(rng, 2))
                # COCO has greyscale pictures too.
                save(image.convert("L") if len(items) == 5 else image, path, "JPEG")
                item = {"images": [(path, None)], "captions": [entry["caption"], entry["negative_caption"]],
                        "task": ("choice", 0), "subset": name}
                return item, [path]

            items.append(draw_until(judge, make))
    return {"path": "sugarcrepe", "name": "sugarcrepe", "kind": "sugarcrepe", "metrics": ["accuracy"],
            "overall": False, "items": items}


def choice(judge, rng):
    folder = os.path.join(OUT, "choice")
    fresh_dir(os.path.join(folder, "images"))
    rows, items = [], []
    for index in range(6):
        def make(attempt):
            a, b = rng.sample(sorted(COLOURS), 2)
            s, t = rng.sample(SHAPES, 2)
            relation = rng.choice(RELATIONS)
            captions = [f"a {a} {s} {relation} a {b} {t}", f"a {b} {s} {relation} a {a} {t}", f"{relation} a {a} {s} a {b} {t}"]
            if index % 2:
                captions.append(f"a {t} {b} {relation} {s} a {a}")
            name = f"images/{index:03d}.png"
            path = save(scene(rng, rng.choice([(56, 40), (40, 40)]), [(s, a, (0.2, 0.5)), (t, b, (0.8, 0.5))]),
                        os.path.join(folder, name), "PNG")
            answer = index % len(captions)
            item = {"images": [(path, None)], "captions": captions, "task": ("choice", answer), "subset": None,
                    "row": {"id": f"choice-{index}", "image": name, "captions": captions, "answer": answer}}
            return item, [path]

        item = draw_until(judge, make)
        rows.append(item.pop("row"))
        items.append(item)
    write_jsonl(os.path.join(folder, "choice.jsonl"), rows)
    return {"path": "choice/choice.jsonl", "name": "choice", "kind": "choice", "metrics": ["accuracy"],
            "overall": True, "items": items}


def aro(judge, rng):
    folder = os.path.join(OUT, "aro")
    fresh_dir(os.path.join(folder, "images"))
    pictures = []
    for index, size in enumerate([(80, 60), (60, 90), (100, 70), (64, 64)]):
        name = f"{2300000 + index}.jpg"
        save(scene(rng, size, random_objects(rng, 3)), os.path.join(folder, "images", name), "JPEG")
        pictures.append((name, size))

    def box(size, outside):
        width, height = size
        if outside:
            # Past the right and bottom edges: Pillow fills the outside with black.
            return width // 2, height // 3, width - width // 2 + 9, height - height // 3 + 7
        x, y = rng.randrange(0, width // 3), rng.randrange(0, height // 3)
        return x, y, rng.randrange(width // 3, width - x), rng.randrange(height // 3, height - y)

    def rows_for(labels, captions, extra):
        rows, items = [], []
        for index, label in enumerate(labels):
            name, size = pictures[index % len(pictures)]

            def make(attempt):
                x, y, w, h = box(size, outside=index == 3)
                true, false = captions(label)
                row = {"image_id": name.split(".")[0], "image_path": name, "bbox_x": x, "bbox_y": y, "bbox_w": w,
                       "bbox_h": h, **extra(label), "true_caption": true, "false_caption": false}
                item = {"images": [(os.path.join(folder, "images", name), (x, y, x + w, y + h))],
                        "captions": [true, false], "task": ("choice", 0), "subset": "_".join(label) if isinstance(label, tuple) else label,
                        "row": row}
                return item, []

            item = draw_until(judge, make)
            rows.append(item.pop("row"))
            items.append(item)
        return rows, items

    def relation_captions(relation):
        a, b = rng.sample(["man", "table", "dog", "cup", "horse", "chair"], 2)
        return f"the {a} is {relation} the {b}", f"the {b} is {relation} the {a}"

    def attribute_captions(pair):
        a, b = rng.sample(["shirt", "table", "chair", "bag", "car", "sign", "cup", "door"], 2)
        return f"the {pair[0]} {a} and the {pair[1]} {b}", f"the {pair[1]} {a} and the {pair[0]} {b}"

    relation_rows, relation_items = rows_for(["on", "behind", "holding", "next to", "near", "on", "behind", "on"],
                                             relation_captions, lambda r: {"relation_name": r})
    attribute_rows, attribute_items = rows_for([("red", "wooden")] * 25 + [("white", "metal"), ("blue", "plastic")],
                                               attribute_captions, lambda p: {"attributes": list(p)})
    benchmarks = []
    for file, rows, items, kind, name, macro in [
            ("visual_genome_relation.json", relation_rows, relation_items, "aro-relation", "aro-vg-relation", ("exclude", SYMMETRIC_HERE)),
            ("visual_genome_attribution.json", attribute_rows, attribute_items, "aro-attribution", "aro-vg-attribution", ("minimum", 25))]:
        write_bytes_atomic(os.path.join(folder, file), (json.dumps(rows) + "\n").encode())
        benchmarks.append({"path": f"aro/{file}", "name": name, "kind": kind, "metrics": ["accuracy"], "overall": True,
                           "items": items, "macro": macro})
    return benchmarks


# --- scores -----------------------------------------------------------------------------------------------

def score(judge, benchmarks):
    """Embeds every distinct image and caption once (as sdsclip does), then each benchmark's outcomes and scores."""
    images = list(dict.fromkeys(image for b in benchmarks for item in b["items"] for image in item["images"]))
    captions = list(dict.fromkeys(caption for b in benchmarks for item in b["items"] for caption in item["captions"]))
    image_embeds, text_embeds = judge.embed(images, captions)
    margin = 1.0
    for benchmark in benchmarks:
        outcomes = []
        for item in benchmark["items"]:
            values, closest = judge.outcome(item, image_embeds, text_embeds)
            outcomes.append(values)
            margin = min(margin, closest)
        benchmark["outcomes"] = outcomes
        benchmark["scores"] = benchmark_scores(benchmark, outcomes)
    return image_embeds, text_embeds, margin


def benchmark_scores(benchmark, outcomes):
    """Every score of a benchmark from its items' outcomes, in sdsclip's order: overall, per subset, macro."""
    subsets = sorted({item["subset"] for item in benchmark["items"] if item["subset"] is not None})
    members = {name: [k for k, item in enumerate(benchmark["items"]) if item["subset"] == name] for name in subsets}
    scopes = ([("all", None, list(range(len(outcomes))))] if benchmark["overall"] else []) + \
             [("subset", name, members[name]) for name in subsets]
    scores = []
    for scope, name, indices in scopes:
        for m, metric in enumerate(benchmark["metrics"]):
            correct = sum(outcomes[k][m] for k in indices)
            scores.append({"metric": metric, "scope": scope, "subset": name, "items": len(indices), "correct": correct,
                           "value": correct / len(indices)})
    if benchmark.get("macro"):
        rule, argument = benchmark["macro"]
        kept = [n for n in subsets if (n not in argument if rule == "exclude" else len(members[n]) >= argument)]
        accuracies = [sum(outcomes[k][0] for k in members[n]) / len(members[n]) for n in kept]
        scores.append({"metric": "accuracy", "scope": "macro", "subset": None, "subsets": kept,
                       "items": sum(len(members[n]) for n in kept), "value": sum(accuracies) / len(accuracies)})
    return scores


def write_readme(benchmarks, margin):
    lines = ["# `sdsclip eval` parity fixtures", "",
             "Made by `tools/make_eval_fixtures.py` (its docstring says how) with the real torch, transformers, open_clip "
             "and Pillow; checked by `Tests/EvaluationTests/EvalParityTests.swift`. The scores test the pipeline, not a "
             "model: `clip/` is the untrained demo CLIP with a redrawn vision tower.", "",
             "- `clip/`: transformers CLIPModel, real 49408-token vocabulary, float16 weights (as `fixtures/demo/clip`).",
             "- `winoground/`: Winoground layout, generated pictures and captions (one picture is RGBA).",
             "- `sugarcrepe/`: the first 4 items of `add_att`, `replace_rel` and `swap_obj` of SugarCrepe "
             "(RAIVNLab/sugar-crepe, MIT license, copyright (c) 2023 RAIVN Lab), with generated stand-in JPEGs under the "
             "COCO val2017 names they expect (`val2017/`, one greyscale).",
             "- `choice/choice.jsonl`: generic multiple choice.",
             "- `aro/`: ARO layout (VG-Relation and VG-Attribution files, `images/`); item 3 of VG-Relation has a box past "
             "the image's edges.",
             "- `expected.json`: the projected embedding of every distinct image (with its crop) and caption, each item's "
             "outcomes, every score.", "",
             f"The closest comparison any metric makes differs by {margin:.2e} in cosine similarity, so rounding cannot "
             "flip an outcome.", "",
             "| benchmark | score | scope | correct / items |", "| --- | --- | --- | --- |"]
    for b in benchmarks:
        for s in b["scores"]:
            scope = s["subset"] if s["scope"] == "subset" else s["scope"]
            value = f"{s['correct']} / {s['items']}" if "correct" in s else f"{s['value']:.4f} (mean of {len(s['subsets'])} subsets)"
            lines.append(f"| {b['name']} | {s['metric']} | {scope} | {value} |")
    write_bytes_atomic(os.path.join(OUT, "README.md"), ("\n".join(lines) + "\n").encode())


def main():
    os.makedirs(OUT, exist_ok=True)
    judge = Judge(write_clip())
    rng = random.Random(20240607)
    benchmarks = [winoground(judge, rng), sugarcrepe(judge, rng), choice(judge, rng)] + aro(judge, rng)
    image_embeds, text_embeds, margin = score(judge, benchmarks)
    assert margin >= MIN_MARGIN, f"batched embeddings moved a comparison to {margin:.2e}"
    expected = {
        "model": rel(CLIP), "generator": "tools/make_eval_fixtures.py", "min_margin": margin,
        "libraries": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "open_clip": open_clip.__version__, "Pillow": PIL.__version__},
        "images": [{"path": rel(path), "crop": list(crop) if crop else None, "embedding": [float(x) for x in e]}
                   for (path, crop), e in image_embeds.items()],
        "captions": [{"text": text, "embedding": [float(x) for x in e]} for text, e in text_embeds.items()],
        "benchmarks": [{"path": b["path"], "name": b["name"], "kind": b["kind"], "items": len(b["items"]),
                        "outcomes": b["outcomes"], "scores": b["scores"]} for b in benchmarks],
    }
    write_json(os.path.join(OUT, "expected.json"), expected)
    write_readme(benchmarks, margin)
    for root, _, files in os.walk(OUT):
        for name in files:
            size = os.path.getsize(os.path.join(root, name))
            assert size < MAX_FILE, f"{name} is {size} bytes"
    for b in benchmarks:
        print(b["name"], [(s["metric"], s["subset"] or s["scope"], s.get("correct", round(s["value"], 4)), s["items"])
                          for s in b["scores"]])
    print(f"closest comparison {margin:.3e}; {len(image_embeds)} images, {len(text_embeds)} captions")


if __name__ == "__main__":
    main()
