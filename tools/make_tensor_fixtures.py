#!/usr/bin/env python3
"""Reference fixtures for the Tensors engine (forward values and torch.autograd gradients).

Run: HF_HUB_OFFLINE=1 /work/main/.pyref/bin/python tools/make_tensor_fixtures.py
Writes fixtures/tensors/{ops,composite,adamw}.safetensors.

Naming inside a file: `<case>.input.<name>` (f32 or i64), `<case>.output` (f32 or i64),
`<case>.upstream` (the gradient fed into backward), `<case>.grad.<name>`.
Inputs are drawn in float32; every reference (except AdamW, which is checked in its native
float32 arithmetic) is computed by torch in float64 from those exact values and rounded to
float32 once, so the fixtures carry no float32 accumulation error of their own.
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tensors")
gen = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0, offset=0.0):
    return (torch.randn(tuple(shape), generator=gen, dtype=torch.float32) * scale + offset)


def rand(*shape, low=0.0, high=1.0):
    return torch.rand(tuple(shape), generator=gen, dtype=torch.float32) * (high - low) + low


class Cases:
    def __init__(self):
        self.tensors = {}

    def add(self, name, fn, inputs, consts=None, grads=True):
        """inputs: dict name -> f32 tensor (differentiable); consts: name -> tensor passed as is."""
        consts = consts or {}
        leaves = {k: v.double().requires_grad_(grads) for k, v in inputs.items()}
        out = fn(**leaves, **consts)
        for k, v in inputs.items():
            self.tensors[f"{name}.input.{k}"] = v.contiguous()
        for k, v in consts.items():
            if isinstance(v, torch.Tensor):
                self.tensors[f"{name}.input.{k}"] = (v.float() if v.is_floating_point() else v).contiguous()
        if out.is_floating_point():
            self.tensors[f"{name}.output"] = out.detach().float().contiguous()
        else:
            self.tensors[f"{name}.output"] = out.detach().contiguous()
        if grads and out.is_floating_point():
            upstream = randn(*out.shape)
            self.tensors[f"{name}.upstream"] = upstream.contiguous()
            out.backward(upstream.double())
            for k, v in leaves.items():
                self.tensors[f"{name}.grad.{k}"] = v.grad.float().contiguous()


def op_cases():
    c = Cases()
    # Broadcasting arithmetic.
    c.add("add", lambda a, b: a + b, {"a": randn(2, 3, 4), "b": randn(3, 1)})
    c.add("sub", lambda a, b: a - b, {"a": randn(2, 3, 4), "b": randn(4)})
    c.add("mul", lambda a, b: a * b, {"a": randn(2, 1, 4), "b": randn(3, 1)})
    c.add("div", lambda a, b: a / b, {"a": randn(2, 3, 4), "b": rand(1, 4, low=0.5, high=2.0)})
    c.add("scalar_chain", lambda x: (x * 2.5 + 1.5) / 3.0 - 0.25, {"x": randn(3, 4)})
    # Unary.
    c.add("exp", lambda x: torch.exp(x), {"x": randn(3, 5)})
    c.add("log", lambda x: torch.log(x), {"x": rand(3, 5, low=0.1, high=3.0)})
    c.add("sqrt", lambda x: torch.sqrt(x), {"x": rand(3, 5, low=0.1, high=3.0)})
    c.add("pow", lambda x: torch.pow(x, 1.7), {"x": rand(3, 5, low=0.1, high=3.0)})
    c.add("gelu", lambda x: F.gelu(x), {"x": randn(4, 6, scale=2.0)})
    c.add("quick_gelu", lambda x: x * torch.sigmoid(1.702 * x), {"x": randn(4, 6, scale=2.0)})
    c.add("silu", lambda x: F.silu(x), {"x": randn(4, 6, scale=2.0)})
    c.add("sigmoid", lambda x: torch.sigmoid(x), {"x": randn(4, 6, scale=2.0)})
    c.add("sin", lambda x: torch.sin(x), {"x": randn(3, 5, scale=3.0)})
    c.add("cos", lambda x: torch.cos(x), {"x": randn(3, 5, scale=3.0)})
    c.add("tanh", lambda x: torch.tanh(x), {"x": randn(3, 5, scale=2.0)})
    c.add("geglu", lambda x: (lambda h, g: h * F.gelu(g))(*x.chunk(2, dim=-1)), {"x": randn(2, 3, 8)})
    # Matrix products.
    c.add("matmul_2d", lambda a, b: a @ b, {"a": randn(5, 7), "b": randn(7, 3)})
    c.add("matmul_batched", lambda a, b: a @ b, {"a": randn(2, 3, 4, 5), "b": randn(2, 3, 5, 6)})
    c.add("matmul_bcast", lambda a, b: a @ b, {"a": randn(2, 1, 4, 5), "b": randn(3, 5, 6)})
    c.add("linear", lambda x, w, b: F.linear(x, w, b), {"x": randn(2, 3, 6), "w": randn(4, 6), "b": randn(4)})
    c.add("linear_nobias", lambda x, w: F.linear(x, w), {"x": randn(5, 6), "w": randn(3, 6)})
    # Convolutions. conv2d_asym pads (top 0, bottom 1, left 0, right 1) like the VAE downsampler.
    c.add("conv2d_s2p1", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
          {"x": randn(2, 3, 7, 6), "w": randn(4, 3, 3, 3), "b": randn(4)})
    c.add("conv2d_s1p1", lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
          {"x": randn(2, 3, 5, 4), "w": randn(2, 3, 3, 3), "b": randn(2)})
    c.add("conv2d_asym", lambda x, w, b: F.conv2d(F.pad(x, (0, 1, 0, 1)), w, b, stride=2),
          {"x": randn(1, 2, 6, 6), "w": randn(3, 2, 3, 3), "b": randn(3)})
    c.add("conv2d_1x1", lambda x, w, b: F.conv2d(x, w, b),
          {"x": randn(2, 5, 4, 3), "w": randn(3, 5, 1, 1), "b": randn(3)})
    c.add("conv2d_rect", lambda x, w: F.conv2d(x, w, None, stride=(1, 2), padding=(2, 0)),
          {"x": randn(1, 2, 5, 7), "w": randn(3, 2, 2, 3)})
    c.add("pad", lambda x: F.pad(x, (0, 1, 0, 1)), {"x": randn(1, 2, 3, 3)})
    # Normalisations.
    c.add("group_norm", lambda x, w, b: F.group_norm(x, 3, w, b, eps=1e-5),
          {"x": randn(2, 6, 3, 4, scale=3.0, offset=1.0), "w": randn(6), "b": randn(6)})
    c.add("group_norm_eps6", lambda x, w, b: F.group_norm(x, 2, w, b, eps=1e-6),
          {"x": randn(1, 4, 5), "w": randn(4), "b": randn(4)})
    c.add("layer_norm", lambda x, w, b: F.layer_norm(x, (8,), w, b, eps=1e-5),
          {"x": randn(2, 3, 8, scale=2.0, offset=-1.0), "w": randn(8), "b": randn(8)})
    # Softmax family.
    c.add("softmax_last", lambda x: torch.softmax(x, dim=-1), {"x": randn(3, 7, scale=3.0)})
    c.add("softmax_axis1", lambda x: torch.softmax(x, dim=1), {"x": randn(2, 4, 3, scale=3.0)})
    c.add("log_softmax", lambda x: torch.log_softmax(x, dim=-1), {"x": randn(3, 7, scale=3.0)})
    # Attention.
    c.add("attention", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.5),
          {"q": randn(2, 2, 5, 4), "k": randn(2, 2, 6, 4), "v": randn(2, 2, 6, 4)})
    c.add("attention_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
          {"q": randn(1, 2, 6, 3), "k": randn(1, 2, 6, 3), "v": randn(1, 2, 6, 3)})
    mask = torch.where(rand(2, 1, 5, 6) > 0.7, torch.tensor(-1e4), torch.tensor(0.0)) + randn(2, 1, 5, 6, scale=0.5)
    c.add("attention_mask", lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask.double()),
          {"q": randn(2, 3, 5, 4), "k": randn(2, 3, 6, 4), "v": randn(2, 3, 6, 4)}, consts={"mask": mask})
    c.add("attention_long", lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
          {"q": randn(1, 1, 37, 8), "k": randn(1, 1, 41, 8), "v": randn(1, 1, 41, 8)})
    # Shape ops.
    c.add("upsample", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), {"x": randn(1, 2, 3, 4)})
    c.add("concat", lambda a, b: torch.cat([a, b], dim=1), {"a": randn(2, 3), "b": randn(2, 5)})
    c.add("chunk", lambda x: (lambda p, q, r: p * q + r)(*x.chunk(3, dim=1)), {"x": randn(2, 6)})
    c.add("permute_reshape", lambda x: x.permute(2, 0, 1).reshape(4, 6), {"x": randn(2, 3, 4)})
    c.add("transpose", lambda x: x.transpose(1, 2), {"x": randn(2, 3, 4)})
    c.add("index_select", lambda x, index: x.index_select(1, index), {"x": randn(4, 3, 2)},
          consts={"index": torch.tensor([2, 0, 2], dtype=torch.int64)})
    c.add("expand", lambda x: x.expand(2, 3, 4), {"x": randn(3, 1)})
    c.add("sum_keep", lambda x: x.sum(dim=1, keepdim=True), {"x": randn(2, 3, 4)})
    c.add("mean_02", lambda x: x.mean(dim=(0, 2)), {"x": randn(2, 3, 4)})
    c.add("sum_all", lambda x: x.sum(), {"x": randn(3, 4)})
    x = randn(3, 5)
    x[0, 1] = 5.0; x[0, 3] = 5.0   # tie: the first occurrence must win
    x[2, :] = 1.0                  # all equal: index 0
    c.add("argmax", lambda x: x.argmax(dim=1), {"x": x}, grads=False)
    ids = torch.tensor([[0, 3, 6], [3, 3, 1]], dtype=torch.int64)
    c.add("embedding", lambda table, ids: F.embedding(ids, table), {"table": randn(7, 4)}, consts={"ids": ids})
    c.add("l2_normalize", lambda x: F.normalize(x, dim=-1), {"x": randn(3, 5)})
    targets = torch.tensor([2, 0, 5, 1], dtype=torch.int64)
    c.add("cross_entropy", lambda logits, targets: F.cross_entropy(logits, targets),
          {"logits": randn(4, 6, scale=2.0)}, consts={"targets": targets})
    c.add("mse", lambda a, b: F.mse_loss(a, b), {"a": randn(3, 4), "b": randn(3, 4)})
    c.add("matmul_shared_rhs", lambda a, b: a @ b, {"a": randn(2, 3, 4, 5), "b": randn(5, 6)})
    return c.tensors


def composite_cases():
    """Two pre-LN transformer layers (QuickGELU MLP, causal attention) as in CLIP's text tower."""
    width, heads, mlp = 8, 2, 32
    inputs = {"x": randn(2, 5, width)}
    for l in range(2):
        p = f"l{l}_"
        inputs.update({
            p + "ln1_w": 1 + randn(width, scale=0.1), p + "ln1_b": randn(width, scale=0.1),
            p + "q_w": randn(width, width, scale=0.3), p + "q_b": randn(width, scale=0.1),
            p + "k_w": randn(width, width, scale=0.3), p + "k_b": randn(width, scale=0.1),
            p + "v_w": randn(width, width, scale=0.3), p + "v_b": randn(width, scale=0.1),
            p + "o_w": randn(width, width, scale=0.3), p + "o_b": randn(width, scale=0.1),
            p + "ln2_w": 1 + randn(width, scale=0.1), p + "ln2_b": randn(width, scale=0.1),
            p + "fc1_w": randn(mlp, width, scale=0.3), p + "fc1_b": randn(mlp, scale=0.1),
            p + "fc2_w": randn(width, mlp, scale=0.2), p + "fc2_b": randn(width, scale=0.1),
        })

    def block(x, **w):
        b, n, _ = x.shape
        for l in range(2):
            g = lambda k: w[f"l{l}_{k}"]
            h = F.layer_norm(x, (width,), g("ln1_w"), g("ln1_b"), eps=1e-5)
            split = lambda t: t.reshape(b, n, heads, width // heads).transpose(1, 2)
            q, k, v = (split(F.linear(h, g(f"{s}_w"), g(f"{s}_b"))) for s in "qkv")
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            a = a.transpose(1, 2).reshape(b, n, width)
            x = x + F.linear(a, g("o_w"), g("o_b"))
            h = F.layer_norm(x, (width,), g("ln2_w"), g("ln2_b"), eps=1e-5)
            h = F.linear(h, g("fc1_w"), g("fc1_b"))
            h = h * torch.sigmoid(1.702 * h)
            x = x + F.linear(h, g("fc2_w"), g("fc2_b"))
        return x

    c = Cases()
    c.add("block", block, inputs)

    # A diffusers ResnetBlock2D (GroupNorm → SiLU → conv3x3 → + time embedding → GroupNorm → SiLU →
    # conv3x3, 1×1 shortcut), then a 2× nearest upsample and the VAE's asymmetric-pad stride-2 conv.
    # 8 groups of 4 channels: with one channel per group the conv bias and time embedding would be
    # normalised away and their gradients would be exactly zero (nothing to check).
    cin, cout, temb_dim = 32, 32, 16
    res = {
        "x": randn(2, cin, 6, 5), "temb": randn(2, temb_dim),
        "n1_w": 1 + randn(cin, scale=0.1), "n1_b": randn(cin, scale=0.1),
        "c1_w": randn(cout, cin, 3, 3, scale=0.05), "c1_b": randn(cout, scale=0.1),
        "t_w": randn(cout, temb_dim, scale=0.2), "t_b": randn(cout, scale=0.1),
        "n2_w": 1 + randn(cout, scale=0.1), "n2_b": randn(cout, scale=0.1),
        "c2_w": randn(cout, cout, 3, 3, scale=0.05), "c2_b": randn(cout, scale=0.1),
        "s_w": randn(cout, cin, 1, 1, scale=0.2), "s_b": randn(cout, scale=0.1),
        "d_w": randn(cout, cout, 3, 3, scale=0.05), "d_b": randn(cout, scale=0.1),
    }

    def resblock(x, temb, **w):
        h = F.silu(F.group_norm(x, 8, w["n1_w"], w["n1_b"], eps=1e-5))
        h = F.conv2d(h, w["c1_w"], w["c1_b"], padding=1)
        h = h + F.linear(F.silu(temb), w["t_w"], w["t_b"])[:, :, None, None]
        h = F.silu(F.group_norm(h, 8, w["n2_w"], w["n2_b"], eps=1e-5))
        h = F.conv2d(h, w["c2_w"], w["c2_b"], padding=1)
        y = F.conv2d(x, w["s_w"], w["s_b"]) + h
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        return F.conv2d(F.pad(y, (0, 1, 0, 1)), w["d_w"], w["d_b"], stride=2)

    c.add("resblock", resblock, res)
    return c.tensors


def adamw_cases():
    """Five torch.optim.AdamW steps (float32, weight decay 0.1) on loss = mean((p1 @ X + p2 - T)^2)."""
    p1 = randn(3, 4)
    p2 = randn(5)
    X = randn(4, 5)
    T = randn(3, 5)
    out = {"adamw.p1.initial": p1.clone(), "adamw.p2.initial": p2.clone(), "adamw.X": X, "adamw.T": T}
    a, b = p1.clone().requires_grad_(True), p2.clone().requires_grad_(True)
    opt = torch.optim.AdamW([a, b], lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    for step in range(1, 6):
        opt.zero_grad()
        loss = ((a @ X + b - T) ** 2).mean()
        loss.backward()
        out[f"adamw.step{step}.loss"] = loss.detach().reshape(1)
        out[f"adamw.step{step}.grad.p1"] = a.grad.clone()
        out[f"adamw.step{step}.grad.p2"] = b.grad.clone()
        opt.step()
        out[f"adamw.step{step}.p1"] = a.detach().clone()
        out[f"adamw.step{step}.p2"] = b.detach().clone()
    st = opt.state[a]
    out["adamw.final.exp_avg.p1"] = st["exp_avg"].clone()
    out["adamw.final.exp_avg_sq.p1"] = st["exp_avg_sq"].clone()
    return out


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, tensors in [("ops", op_cases()), ("composite", composite_cases()), ("adamw", adamw_cases())]:
        path = os.path.join(OUT_DIR, f"{name}.safetensors")
        # One metadata key: safetensors writes metadata from a hash map, so several keys come out in
        # random order and the bytes would differ between otherwise identical runs.
        save_file(tensors, path + ".tmp", metadata={"generator": f"tools/make_tensor_fixtures.py, torch {torch.__version__}"})
        os.replace(path + ".tmp", path)
        print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)   # fixed reduction order: byte-identical fixtures on every run
    main()
