"""Where a training step's time goes: the network's parts as torch.profiler ranges, and the profile's events summed
per part, forward and backward.

Forward: each part's modules open a ``part::<name>`` ``record_function`` range for the duration of their forward (a
pre-hook enters it, a hook leaves it), so every operator inside counts to that part. Backward: on the CPU the
autograd engine runs the backward pass on the calling thread, and each backward node's
``autograd::engine::evaluate_function`` event carries the sequence number of the forward operator that created it;
the part that ran that operator gets the node's time. Nodes without a forward operator (gradient accumulation into
the parameters) count as ``grad accumulation``. Nothing here changes the arithmetic: hooks only open and close ranges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.autograd.profiler import record_function

from hourglass.model import Hourglass, StackedHourglass

PREFIX = "part::"
NETWORK = "network"  # the range of the whole network's forward; what no part claims is "other forward"
OTHER_FORWARD = "other forward (merges, stacking)"
POOL = "pool + upsample"
GRAD_ACCUMULATION = "grad accumulation"
EVALUATE = "autograd::engine::evaluate_function: "


def _hourglass_parts(hourglass: Hourglass, size: int) -> Iterator[tuple[str, nn.Module]]:
    """(part, module) of one hourglass whose input is ``size`` px: residuals named by the resolution they run at."""
    yield f"residuals {size}px", hourglass.up1
    yield POOL, hourglass.pool
    yield f"residuals {size // 2}px", hourglass.low1
    if isinstance(hourglass.low2, Hourglass):
        yield from _hourglass_parts(hourglass.low2, size // 2)
    else:
        yield f"residuals {size // 2}px", hourglass.low2
    yield f"residuals {size // 2}px", hourglass.low3
    yield POOL, hourglass.upsample


def network_parts(network: StackedHourglass, input_res: int) -> list[tuple[str, nn.Module]]:
    """Every part of ``network`` as (name, module): the stem (its convolution, residuals and pooling), the
    hourglasses' residuals per resolution, their pooling and upsampling, and the heads (each stack's residuals and
    1x1 layers, heatmap convolutions, the remaps between stacks and HG-Int's auxiliary heatmaps)."""
    parts: list[tuple[str, nn.Module]] = [("stem", network.stem)]
    for hourglass in network.hourglasses:
        parts.extend(_hourglass_parts(hourglass, input_res // 4))
    heads: Iterable[nn.Module] = (*network.heads, *network.heatmaps, *network.remap_features,
                                  *network.remap_heatmaps, *network.auxiliary_heatmaps)
    parts.extend(("heads", module) for module in heads)
    return parts


@contextmanager
def part_ranges(network: StackedHourglass, input_res: int) -> Iterator[None]:
    """While open, every forward of ``network`` and of its parts runs inside a profiler range of the part's name."""
    handles = []
    for name, module in [(NETWORK, network), *network_parts(network, input_res)]:
        opened: list[Any] = []  # this module's open range (the module never runs inside itself)

        def enter(_module: nn.Module, _args: Any, name: str = name, opened: list[Any] = opened) -> None:
            scope = record_function(PREFIX + name)
            scope.__enter__()
            opened.append(scope)

        def leave(_module: nn.Module, _args: Any, _out: Any, opened: list[Any] = opened) -> None:
            opened.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _duration_ms(event: Any) -> float:
    return (event.time_range.end - event.time_range.start) / 1e3


def _innermost_part(event: Any) -> str | None:
    """The name of the innermost ``part::`` range around ``event`` (None outside every part)."""
    parent = event
    while parent is not None:
        if parent.name.startswith(PREFIX):
            return parent.name[len(PREFIX):]
        parent = parent.cpu_parent
    return None


def attribute(events: Iterable[Any], backward_range: str = PREFIX + "backward") -> dict[str, dict[str, float]]:
    """Milliseconds per part, ``{"forward": {...}, "backward": {...}}``, summed over every profiled step.

    Forward: each ``part::`` range's own time (without the parts nested in it); the network range's own time is
    ``other forward``, any other top-level range's own time goes under its name (data, loss, optimiser...).
    Backward: the ``evaluate_function`` events directly inside ``backward_range``, by the part of their forward
    operator; the rest of the range (the engine between nodes) joins ``grad accumulation``.
    """
    events = sorted(events, key=lambda e: e.time_range.start)
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    owner: dict[int, str] = {}  # forward sequence number -> part
    skip = backward_range[len(PREFIX):]
    for event in events:
        if event.name.startswith(PREFIX) and event.name != backward_range:
            name = event.name[len(PREFIX):]
            nested = sum(_duration_ms(c) for c in event.cpu_children if c.name.startswith(PREFIX))
            forward[OTHER_FORWARD if name == NETWORK else name] += _duration_ms(event) - nested
        elif event.sequence_nr >= 0:
            part = _innermost_part(event)
            # An operator that creates no autograd node shares the next one's number; the creator comes last.
            if part is not None and part != skip:
                owner[event.sequence_nr] = OTHER_FORWARD if part == NETWORK else part
    for event in events:
        if event.name != backward_range:
            continue
        covered = 0.0
        for child in event.cpu_children:
            if child.name.startswith(EVALUATE):
                part = owner.get(child.sequence_nr, GRAD_ACCUMULATION)
                backward[part] += _duration_ms(child)
                covered += _duration_ms(child)
        backward[GRAD_ACCUMULATION] += _duration_ms(event) - covered
    return {"forward": dict(forward), "backward": dict(backward)}
