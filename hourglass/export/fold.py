"""BatchNorm folded into the convolution before it, in a copy of the network, before export.

In eval mode a BatchNorm is a per-channel scale and shift, so when it follows a convolution directly the two are one
convolution with rescaled weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``). torch 2.13's exporters
happen to fuse these pairs in their own optimisation passes, but that is not a contract; folding here makes it one,
for every runtime alike. The residual modules' pre-activation BatchNorms (after a sum, before a ReLU) have no
convolution to fold into and stay as a per-channel scale and shift (ONNX ``BatchNormalization`` in inference mode).
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """``(copy of model in eval mode with every Conv2d -> BatchNorm2d pair of a Sequential fused, pairs fused)``;
    ``model`` itself is not changed."""
    folded = copy.deepcopy(model).eval()
    count = 0
    for sequential in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(sequential) - 1):
            conv, norm = sequential[i], sequential[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats:
                sequential[i] = fuse_conv_bn_eval(conv, norm)
                sequential[i + 1] = nn.Identity()
                count += 1
    return folded, count


def count_batchnorms(model: nn.Module) -> int:
    """BatchNorm layers left in ``model`` (the pre-activation ones after folding)."""
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
