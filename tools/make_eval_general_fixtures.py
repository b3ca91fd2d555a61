#!/usr/bin/env python3
"""Parity fixtures for `sdsclip eval`'s general-ability benchmarks: zero-shot classification, image-text
retrieval and the example world's linear probe, scored here with the real libraries on the outputs of the
fixture CLIP (fixtures/eval/clip, written by tools/make_eval_fixtures.py; this script only reads it).

Writes under fixtures/eval/:
  zeroshot/CLASS/*.png|jpg + templates.txt    torchvision ImageFolder layout: 6 classes (one image in a
                                               subfolder), two prompt templates
  retrieval/dataset_coco.json + val2014/      a Karpathy split: 10 test images with 2-3 sentences each (one
                                               caption shared by two images), plus val/train entries
  world/train.jsonl + images/,                 the layout of `sdsclip example-data`: 40 training scenes and
       test-swaps.jsonl + test-images/         8 swapped pairs (16 test images), drawn here
  expected-general.json                        every embedding, each unit's outcomes, every count; the probe's
                                               fitted weights on these embeddings

How each is computed (the same definitions as Sources/Evaluation/Corpus):
- zero-shot: classes and samples from `torchvision.datasets.ImageFolder`, class names the folder names with
  `_` as a space, the classifier from `open_clip.build_zero_shot_classifier` (transformers' text tower behind
  open_clip's `encode_text(normalize=True)`, open_clip's tokenizer); logits = normalised image embedding ·
  classifier; top-k correct when fewer than k other classes score at least the true class's logit.
- retrieval: cosine similarities in float64; a query hits at K when fewer than K negatives score at least its
  best positive (image queries count negative sentences; positives go by caption text).
- probe: multinomial logistic regression in numpy float64, step for step as SoftmaxRegression.swift
  (standardised features + bias, W from 0, Nesterov's accelerated gradient, 300 iterations, step
  1 / (0.5 λmax + l2), l2 = 1e-2, λmax by 100 power iterations from the ones vector).

Margins: every comparison a zero-shot or retrieval outcome makes differs by at least MIN_MARGIN (a drawing is
redrawn until it does), so float32 rounding on either side cannot flip an outcome. The probe's test predictions
must not change when the embeddings get relative noise of PROBE_NOISE (Swift's embeddings agree with these to
~1e-5): a world whose predictions move is redrawn.

Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_eval_general_fixtures.py
Deterministic: seeded drawing, single-threaded torch; rerunning rewrites the same files.
"""
import json
import os
import random

import numpy as np
import open_clip
import PIL
from PIL import Image
import torch
import torch.nn.functional as F
import torchvision
import transformers
from transformers import CLIPModel

from make_eval_fixtures import (CLIP, COLOURS, OUT, POSITIONS, RELATIONS, SHAPES, Judge, fresh_dir, save, scene,
                                write_jsonl)
from make_sd_fixtures import write_bytes_atomic, write_json

torch.set_num_threads(1)

MIN_MARGIN = 1e-4
PROBE_NOISE = 1e-4
MAX_DRAWS = 200
MAX_FILE = 2_000_000
TEMPLATES = ["a photo of a {}.", "a drawing of a {}."]
ZEROSHOT_CLASSES = ["blue_square", "green_triangle", "orange_circle", "purple_square", "red_circle", "yellow_triangle"]
PROBE_COLOURS = ["blue", "green", "red", "yellow"]
PROBE_SETTINGS = {"l2": 1e-2, "iterations": 300, "power_iterations": 100}


def rel(path):
    return os.path.relpath(path, OUT)


def unit(vector):
    v = np.asarray(vector, dtype=np.float64)
    return v / max(np.linalg.norm(v), 1e-12)


def embed(judge, images=(), captions=()):
    """Judge.embed for either kind alone: ({(path, None): embedding}, {caption: embedding})."""
    image_embeds, text_embeds = {}, {}
    if images:
        pictures = torch.stack([judge.preprocess(Image.open(path)) for path, _ in images])
        with torch.no_grad():
            features = judge.model.visual_projection(judge.model.vision_model(pixel_values=pictures).pooler_output)
        image_embeds = dict(zip(images, features))
    if captions:
        with torch.no_grad():
            features = judge.model.text_projection(judge.model.text_model(input_ids=open_clip.tokenize(list(captions))).pooler_output)
        text_embeds = dict(zip(captions, features))
    return image_embeds, text_embeds


class TextTower:
    """open_clip's `encode_text` interface over the transformers model, for build_zero_shot_classifier."""

    def __init__(self, model):
        self.model = model

    def encode_text(self, ids, normalize=False):
        features = self.model.text_projection(self.model.text_model(input_ids=ids).pooler_output)
        return F.normalize(features, dim=-1) if normalize else features


# --- zero-shot ------------------------------------------------------------------------------------------

def zeroshot(judge, rng):
    folder = os.path.join(OUT, "zeroshot")
    tower = TextTower(judge.model)
    names = [c.replace("_", " ") for c in ZEROSHOT_CLASSES]
    classifier = open_clip.build_zero_shot_classifier(tower, open_clip.tokenize, names, TEMPLATES, num_classes_per_batch=4)
    weights = classifier.double().numpy()  # [D, C]

    def draw(attempt):
        fresh_dir(folder)
        write_bytes_atomic(os.path.join(folder, "templates.txt"), ("\n".join(TEMPLATES) + "\n").encode())
        for c, name in enumerate(ZEROSHOT_CLASSES):
            colour, shape = name.split("_")
            for k in range(3):
                sub = "more" if (c, k) == (2, 2) else ""
                os.makedirs(os.path.join(folder, name, sub), exist_ok=True)
                fx, fy = rng.random(), rng.random()
                image = scene(rng, rng.choice([(40, 40), (48, 36)]), [(shape, colour, (fx, fy))])
                ext, fmt = (".jpg", "JPEG") if k == 1 else (".png", "PNG")
                save(image, os.path.join(folder, name, sub, f"{k:02d}{ext}"), fmt)
        dataset = torchvision.datasets.ImageFolder(folder)
        assert dataset.classes == ZEROSHOT_CLASSES
        images = [(path, None) for path, _ in dataset.samples]
        image_embeds, _ = embed(judge, images=images)
        outcomes, margin = [], 1.0
        k = min(5, len(names))
        for (path, label), image in zip(dataset.samples, images):
            logits = unit(image_embeds[image].numpy()) @ weights
            others = [c for c in range(len(names)) if c != label]
            rank = sum(logits[c] >= logits[label] for c in others)
            margin = min(margin, min(abs(logits[label] - logits[c]) for c in others))
            outcomes.append([bool(rank == 0), bool(rank < k)])
        return dataset, images, image_embeds, outcomes, margin

    for attempt in range(MAX_DRAWS):
        dataset, images, image_embeds, outcomes, margin = draw(attempt)
        if margin >= MIN_MARGIN:
            break
    else:
        raise RuntimeError("no zero-shot drawing kept its margins")
    prompts = [t.format(n) for n in names for t in TEMPLATES]
    _, text_embeds = embed(judge, captions=prompts)
    return {
        "path": "zeroshot", "classes": names, "templates": TEMPLATES,
        "samples": [{"path": rel(p), "label": label} for p, label in dataset.samples],
        "images": [{"path": rel(p), "embedding": [float(x) for x in image_embeds[(p, None)]]} for p, _ in dataset.samples],
        "prompts": [{"text": t, "embedding": [float(x) for x in text_embeds[t]]} for t in prompts],
        "classifier": [[float(x) for x in row] for row in weights.T],
        "metrics": ["top-1", f"top-{min(5, len(names))}"], "outcomes": outcomes,
        "correct": [sum(o[m] for o in outcomes) for m in range(2)], "margin": margin,
    }


# --- retrieval ------------------------------------------------------------------------------------------

def describe(rng, a, s, relation, b, t):
    forms = [f"a {a} {s} {relation} a {b} {t}", f"the {s} is {a} and the {t} is {b}", f"{a} and {b} shapes on a plain background"]
    return forms[:rng.choice([2, 3])]


def retrieval_outcomes(entries, image_embeds, text_embeds):
    """Per image query and per sentence query: (hits at 1, 5, 10), and the closest comparison made."""
    texts = list(dict.fromkeys(c for e in entries for c in e["captions"]))
    index = {t: k for k, t in enumerate(texts)}
    multiplicity = np.zeros(len(texts), dtype=np.int64)
    for e in entries:
        for c in e["captions"]:
            multiplicity[index[c]] += 1
    I = np.stack([unit(image_embeds[(e["path"], None)].numpy()) for e in entries])
    T = np.stack([unit(text_embeds[t].numpy()) for t in texts])
    S = I @ T.T
    margin = 1.0
    image_rows = []
    for i, e in enumerate(entries):
        positives = {index[c] for c in e["captions"]}
        best = max(S[i, p] for p in positives)
        negatives = [t for t in range(len(texts)) if t not in positives]
        rank = int(sum(multiplicity[t] for t in negatives if S[i, t] >= best))
        margin = min([margin] + [abs(S[i, t] - best) for t in negatives])
        image_rows.append([rank < k for k in (1, 5, 10)])
    owners = {t: {i for i, e in enumerate(entries) if t in e["captions"]} for t in texts}
    text_rows = []
    for e in entries:
        for c in e["captions"]:
            positives = owners[c]
            best = max(S[i, index[c]] for i in positives)
            negatives = [i for i in range(len(entries)) if i not in positives]
            rank = sum(S[i, index[c]] >= best for i in negatives)
            margin = min([margin] + [abs(S[i, index[c]] - best) for i in negatives])
            text_rows.append([bool(rank < k) for k in (1, 5, 10)])
    return image_rows, text_rows, margin


def retrieval(judge, rng):
    folder = os.path.join(OUT, "retrieval")
    for attempt in range(MAX_DRAWS):
        fresh_dir(os.path.join(folder, "val2014"))
        records, entries = [], []
        for k in range(13):
            split = "test" if k < 10 else ["val", "restval", "train"][k - 10]
            a, b = rng.sample(sorted(COLOURS), 2)
            s, t = rng.sample(SHAPES, 2)
            relation = rng.choice(RELATIONS)
            first, second = POSITIONS[relation]
            name = f"COCO_val2014_{k + 1:012d}.jpg"
            captions = describe(rng, a, s, relation, b, t)
            if k == 6:
                captions.append(entries[2]["captions"][0])  # COCO repeats captions across images
            record = {"filepath": "val2014", "sentids": list(range(3 * k, 3 * k + len(captions))), "filename": name,
                      "imgid": k, "split": split,
                      "sentences": [{"tokens": c.split(), "raw": c, "imgid": k, "sentid": 3 * k + j} for j, c in enumerate(captions)],
                      "cocoid": 1000 + k}
            records.append(record)
            if split == "test":
                path = save(scene(rng, rng.choice([(64, 48), (48, 48)]), [(s, a, first), (t, b, second)]),
                            os.path.join(folder, "val2014", name), "JPEG")
                entries.append({"path": path, "captions": captions})
        image_embeds, text_embeds = embed(judge, [(e["path"], None) for e in entries],
                                          list(dict.fromkeys(c for e in entries for c in e["captions"])))
        image_rows, text_rows, margin = retrieval_outcomes(entries, image_embeds, text_embeds)
        if margin >= MIN_MARGIN:
            break
    else:
        raise RuntimeError("no retrieval drawing kept its margins")
    write_bytes_atomic(os.path.join(folder, "dataset_coco.json"), (json.dumps({"images": records, "dataset": "coco"}) + "\n").encode())
    return {
        "path": "retrieval/dataset_coco.json", "split": "test",
        "images": [{"path": rel(e["path"]), "embedding": [float(x) for x in image_embeds[(e["path"], None)]]} for e in entries],
        "captions": [{"text": t, "embedding": [float(x) for x in text_embeds[t]]} for t in text_embeds],
        "image_metrics": ["image→text R@1", "image→text R@5", "image→text R@10"],
        "text_metrics": ["text→image R@1", "text→image R@5", "text→image R@10"],
        "image_outcomes": image_rows, "text_outcomes": text_rows,
        "image_correct": [sum(r[m] for r in image_rows) for m in range(3)],
        "text_correct": [sum(r[m] for r in text_rows) for m in range(3)], "margin": margin,
    }


# --- the example world's probe ----------------------------------------------------------------------------

def labels(caption):
    words = caption.split(" ")
    assert len(words) >= 7 and words[0] == "a" and words[-3] == "a", caption
    return [words[1], words[2], " ".join(words[3:-3]), words[-2], words[-1]]


def fit_probe(features, targets, l2, iterations, power_iterations):
    """SoftmaxRegression.fit in numpy: (classes, mean, scale, W [k, d + 1])."""
    X = np.asarray(features, dtype=np.float64)
    n, d = X.shape
    classes = sorted(set(targets))
    mean = X.mean(axis=0)
    deviation = np.sqrt(((X - mean) ** 2).sum(axis=0) / n)
    scale = np.where(deviation > 1e-12, deviation, 1.0)
    Z = np.hstack([(X - mean) / scale, np.ones((n, 1))])
    k, width = len(classes), d + 1
    W = np.zeros((k, width))
    if k > 1:
        Y = np.zeros((n, k))
        Y[np.arange(n), [classes.index(t) for t in targets]] = 1
        M = Z.T @ Z / n
        v = np.full(width, 1 / np.sqrt(width))
        for _ in range(power_iterations):
            nxt = M @ v
            v = nxt / np.linalg.norm(nxt)
        step = 1 / (0.5 * (v @ (M @ v)) + l2)
        previous, t = W.copy(), 1.0
        for _ in range(iterations):
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            momentum = (t - 1) / t_next
            Yw = W + momentum * (W - previous)
            logits = Z @ Yw.T
            P = np.exp(logits - logits.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            G = (P - Y).T @ Z / n
            G[:, :-1] += l2 * Yw[:, :-1]
            previous, W, t = W, Yw - step * G, t_next
    return classes, mean, scale, W


def probe_outcomes(train_x, train_labels, test_x, test_labels):
    results = []
    for a in range(5):
        classes, mean, scale, W = fit_probe(train_x, [l[a] for l in train_labels], **PROBE_SETTINGS)
        logits = ((np.asarray(test_x) - mean) / scale) @ W[:, :-1].T + W[:, -1]
        correct = []
        for row, l in zip(logits, test_labels):
            truth = classes.index(l[a]) if l[a] in classes else None
            correct.append(truth is not None and all(row[c] < row[truth] for c in range(len(classes)) if c != truth))
        results.append({"classes": classes, "weights": W, "outcomes": correct})
    return results


def world(judge, rng):
    folder = os.path.join(OUT, "world")
    for attempt in range(MAX_DRAWS):
        fresh_dir(folder)
        os.makedirs(os.path.join(folder, "images"))
        os.makedirs(os.path.join(folder, "test-images"))

        def sample(distinct):
            a, b = rng.sample(PROBE_COLOURS, 2)
            s = rng.choice(SHAPES)
            t = rng.choice([x for x in SHAPES if x != s] if distinct else SHAPES)
            return a, s, rng.choice(RELATIONS), b, t

        def draw(spec, path):
            a, s, relation, b, t = spec
            first, second = POSITIONS[relation]
            jitter = lambda p: (min(max(p[0] + rng.uniform(-0.1, 0.1), 0), 1), min(max(p[1] + rng.uniform(-0.1, 0.1), 0), 1))
            save(scene(rng, (32, 32), [(s, a, jitter(first)), (t, b, jitter(second))]), path, "PNG")
            return f"a {a} {s} {relation} a {b} {t}"

        train_rows, train = [], []
        for k in range(40):
            name = f"images/{k:05d}.png"
            caption = draw(sample(False), os.path.join(folder, name))
            train_rows.append({"image": name, "caption": caption})
            train.append((os.path.join(folder, name), caption))
        test_rows, test = [], []
        for k in range(8):
            a, s, relation, b, t = sample(True)
            swapped = (b, s, relation, a, t) if k % 3 == 0 else (a, t, relation, b, s) if k % 3 == 1 else (b, t, relation, a, s)
            row = {}
            for side, spec in enumerate([(a, s, relation, b, t), swapped]):
                name = f"test-images/{k:05d}_{side}.png"
                row[f"image_{side}"] = name
                row[f"caption_{side}"] = draw(spec, os.path.join(folder, name))
                test.append((os.path.join(folder, name), row[f"caption_{side}"]))
            test_rows.append({"image_0": row["image_0"], "image_1": row["image_1"], "caption_0": row["caption_0"], "caption_1": row["caption_1"]})
        image_embeds, _ = embed(judge, images=[(p, None) for p, _ in train + test])
        train_x = [unit(image_embeds[(p, None)].numpy()) for p, _ in train]
        test_x = [unit(image_embeds[(p, None)].numpy()) for p, _ in test]
        train_labels, test_labels = [labels(c) for _, c in train], [labels(c) for _, c in test]
        results = probe_outcomes(train_x, train_labels, test_x, test_labels)
        noise = np.random.default_rng(attempt)
        stable = True
        for trial in range(5):
            shake = lambda xs: [unit(x * (1 + PROBE_NOISE * noise.standard_normal(x.shape))) for x in xs]
            again = probe_outcomes(shake(train_x), train_labels, shake(test_x), test_labels)
            stable &= all(r["outcomes"] == s["outcomes"] for r, s in zip(results, again))
        if stable:
            break
    else:
        raise RuntimeError("no world whose probe predictions are stable under noise")
    write_jsonl(os.path.join(folder, "train.jsonl"), train_rows)
    write_jsonl(os.path.join(folder, "test-swaps.jsonl"), test_rows)
    attributes = ["first colour", "first shape", "relation", "second colour", "second shape"]
    return {
        "path": "world", "settings": PROBE_SETTINGS, "attributes": attributes,
        "train": [{"path": rel(p), "embedding": [float(x) for x in image_embeds[(p, None)]]} for p, _ in train],
        "test": [{"path": rel(p), "embedding": [float(x) for x in image_embeds[(p, None)]]} for p, _ in test],
        "probes": [{"attribute": name, "classes": r["classes"], "weights": [[float(x) for x in row] for row in r["weights"]],
                    "outcomes": [bool(x) for x in r["outcomes"]], "correct": int(sum(r["outcomes"]))}
                   for name, r in zip(attributes, results)],
        "draws": attempt + 1,
    }


def main():
    model = CLIPModel.from_pretrained(CLIP).eval()
    judge = Judge(model)
    rng = random.Random(20260402)
    zs, rt, pr = zeroshot(judge, rng), retrieval(judge, rng), world(judge, rng)
    expected = {
        "model": rel(CLIP), "generator": "tools/make_eval_general_fixtures.py",
        "libraries": {"torch": torch.__version__, "torchvision": torchvision.__version__, "transformers": transformers.__version__,
                      "open_clip": open_clip.__version__, "Pillow": PIL.__version__, "numpy": np.__version__},
        "zeroshot": zs, "retrieval": rt, "probe": pr,
    }
    write_json(os.path.join(OUT, "expected-general.json"), expected)
    for sub in ["zeroshot", "retrieval", "world"]:
        for root, _, files in os.walk(os.path.join(OUT, sub)):
            for name in files:
                size = os.path.getsize(os.path.join(root, name))
                assert size < MAX_FILE, f"{name} is {size} bytes"
    print("zeroshot", zs["metrics"], zs["correct"], "of", len(zs["outcomes"]), f"margin {zs['margin']:.2e}")
    print("retrieval images", rt["image_correct"], "of", len(rt["image_outcomes"]), "captions", rt["text_correct"], "of",
          len(rt["text_outcomes"]), f"margin {rt['margin']:.2e}")
    print("probe", [(p["attribute"], p["correct"], len(p["outcomes"])) for p in pr["probes"]], "draws", pr["draws"])


if __name__ == "__main__":
    main()
