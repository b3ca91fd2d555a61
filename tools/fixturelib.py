"""Shared pieces of the tensor-kernel fixture generators (make_*_kernel_fixtures.py).

An op case stores `<name>.input.<arg>`, `<name>.output`, `<name>.upstream` (a seeded output gradient)
and `<name>.grad.<arg>` (torch.autograd in float64 from the float32 inputs, stored as float32).
"""
import torch


def seeded_randn(generator):
    """randn(*shape, scale=1, offset=0) drawing from `generator` (float32)."""
    def randn(*shape, scale=1.0, offset=0.0):
        return torch.randn(tuple(shape), generator=generator, dtype=torch.float32) * scale + offset
    return randn


def record_op(tensors, name, fn, inputs, randn, constants=None):
    """Runs fn(**inputs) in float64 with gradients, then records inputs, output, upstream and grads.
    `constants` are extra inputs stored for the Swift side but given no gradient (e.g. a mask)."""
    leaves = {n: t.double().requires_grad_(True) for n, t in inputs.items()}
    out = fn(**leaves)
    for n, t in list(inputs.items()) + list((constants or {}).items()):
        tensors[f"{name}.input.{n}"] = t.contiguous()
    tensors[f"{name}.output"] = out.detach().float().contiguous()
    upstream = randn(*out.shape)
    tensors[f"{name}.upstream"] = upstream.contiguous()
    out.backward(upstream.double())
    for n, leaf in leaves.items():
        tensors[f"{name}.grad.{n}"] = leaf.grad.float().contiguous()
