"""Sweep batching: several members of a sweep trained at once, in one process, as one wide network.

A beta sweep (VAEs that differ only in beta) or a lambda sweep (LSR-GANs over
one VAE that differ only in lambda) trains M networks from the same initial
weights (same seed), on the same batches in the same order (same shuffle
seed), with the same noise (same noise seed). The kit stacks the M members
*side by side along the channels*:

* every ``Conv2d`` becomes one grouped convolution (``groups`` x M) whose
  weight is the members' weights concatenated;
* every ``BatchNorm`` holds the members' channels one after another (batch
  statistics are per channel, so per member: the same arithmetic);
* every ``Linear`` becomes a :class:`GroupedLinear` (one batched matmul);
* Adam is element-wise, so one Adam over the stacked tensors is M Adams.

One wide step then does the work of M narrow ones with M times fewer, M times
larger kernels, which is what a GPU at batch 32 needs. The losses are the
kit's own functions (:mod:`lsr_utils.losses`) applied to each member's slice,
each member with its own beta or lambda; their sum is minimised (the members
share no parameter, so each gets exactly its own gradient). At the end the
wide networks are cut back into M ordinary networks and each member's run
folder is written exactly as ``train_vae`` / ``train_lsr_gan`` would write it
(``tests/test_stacked.py`` checks losses and weights against separate runs).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .errors import LsrError


class GroupedLinear(nn.Module):
    """M independent ``Linear(in, out)`` layers on a (B, M * in) input -> (B, M * out)."""

    def __init__(self, linears: list[nn.Linear]):
        super().__init__()
        self.members = len(linears)
        self.in_features, self.out_features = linears[0].in_features, linears[0].out_features
        self.weight = nn.Parameter(torch.stack([lin.weight.detach() for lin in linears]).clone())
        self.bias = nn.Parameter(torch.stack([lin.bias.detach() for lin in linears]).clone()) \
            if linears[0].bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = torch.einsum("bmi,moi->bmo", x.reshape(b, self.members, self.in_features), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(b, self.members * self.out_features)


def _stack_conv(convs: list[nn.Conv2d]) -> nn.Conv2d:
    c, m = convs[0], len(convs)
    wide = nn.Conv2d(c.in_channels * m, c.out_channels * m, c.kernel_size, c.stride, c.padding, c.dilation,
                     c.groups * m, c.bias is not None, c.padding_mode, device=c.weight.device,
                     dtype=c.weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(torch.cat([k.weight for k in convs]))
        if c.bias is not None:
            wide.bias.copy_(torch.cat([k.bias for k in convs]))
    return wide


def _stack_bn(bns: list[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    b, m = bns[0], len(bns)
    ref = b.weight if b.affine else b.running_mean
    wide = type(b)(b.num_features * m, b.eps, b.momentum, b.affine, b.track_running_stats, device=ref.device,
                   dtype=ref.dtype)
    with torch.no_grad():
        if b.affine:
            wide.weight.copy_(torch.cat([k.weight for k in bns]))
            wide.bias.copy_(torch.cat([k.bias for k in bns]))
        if b.track_running_stats:
            wide.running_mean.copy_(torch.cat([k.running_mean for k in bns]))
            wide.running_var.copy_(torch.cat([k.running_var for k in bns]))
            wide.num_batches_tracked.copy_(b.num_batches_tracked)
    return wide


def stack_members(members: list[nn.Module]) -> nn.Module:
    """One wide network equal to ``members`` side by side (input and output channels concatenated).

    The members must be the same architecture. The wide network's input is the
    members' inputs concatenated along dim 1 (images: channels; latents:
    features); so is its output.
    """
    if len(members) < 1:
        raise LsrError("stack_members needs at least one network")
    names = [n for n, _ in members[0].named_modules()]
    for m in members[1:]:
        if [n for n, _ in m.named_modules()] != names or type(m) is not type(members[0]):
            raise LsrError("stack_members: the networks differ in architecture")
    wide = copy.deepcopy(members[0])
    mods = [dict(m.named_modules()) for m in members]
    for name, module in list(wide.named_modules()):
        same = [d[name] for d in mods]
        if isinstance(module, nn.Conv2d):
            new = _stack_conv(same)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            new = _stack_bn(same)
        elif isinstance(module, nn.Linear):
            new = GroupedLinear(same)
        elif isinstance(module, (nn.ConvTranspose2d, nn.LayerNorm, nn.GroupNorm, nn.Embedding)):
            raise LsrError(f"stack_members: {type(module).__name__} is not supported")
        else:
            continue
        parent, _, attr = name.rpartition(".")
        setattr(wide.get_submodule(parent) if parent else wide, attr, new)
    wide.members = len(members)
    return wide


def unstack_member(wide: nn.Module, template: nn.Module, i: int) -> dict:
    """Member ``i``'s state dict, cut from the wide network, in the layout of ``template``."""
    m = wide.members
    wide_state = wide.state_dict()
    out = {}
    for name, t in template.state_dict().items():
        w = wide_state[name]
        if w.dim() == 0 or w.shape == t.shape and name.endswith("num_batches_tracked"):
            out[name] = w.clone()
        elif w.dim() == t.dim() + 1 and w.shape[0] == m:  # GroupedLinear: (M, out, in), (M, out)
            out[name] = w[i].clone()
        elif w.shape[0] == m * t.shape[0]:  # conv / batch-norm: members concatenated along dim 0
            out[name] = w.chunk(m, 0)[i].clone().contiguous()
        else:
            raise LsrError(f"unstack_member: cannot cut {name} {tuple(w.shape)} into {m} x {tuple(t.shape)}")
        if out[name].shape != t.shape:
            raise LsrError(f"unstack_member: {name} is {tuple(out[name].shape)}, expected {tuple(t.shape)}")
    return out


def members_of(x: torch.Tensor, m: int) -> torch.Tensor:
    """(B, M * C, ...) -> (M, B, C, ...): each member's slice, members first."""
    b = x.shape[0]
    return x.reshape(b, m, x.shape[1] // m, *x.shape[2:]).transpose(0, 1)
