"""What ``make demo`` will cost on this machine, said before it starts: what the CPU (or GPU) can do and the expected
duration from a short measured probe of the training step.

The probe times a few training steps (forward, loss, backward, optimiser) of each distinct architecture among the
variants still to train (variants differing only in supervision are scaled by their training FLOPs), at the demo's
batch and resolution under the precision training will choose, on random tensors, with the threads the demo's
:class:`~hourglass.sweep.plan.TrainingPlan` gives each training. When the plan runs trainings side by side, as many
probes run at once, one per process, as the plan's trainings fill the cores, so the rate is the one a training gets
beside the others. A demo variant's training is its samples at that rate times :data:`TRAINING_OVERHEAD` (the real
data loader and the per-epoch validation, which the probe does not run; :data:`SIDE_BY_SIDE_OVERHEAD` for trainings
side by side); the trainings are then laid out as the plan
runs them (:func:`~hourglass.sweep.plan.makespan`), and the stages around training add :data:`OTHER_STAGES_S`.
Both constants come from measured parts (their comments say which). Against whole demos (NOTES.md): session 18,
batches of 32, 38 min expected and 45.1 measured (hg 3 % and hg_int 11 % over their estimates on a quiet machine);
session 19, batches of 8, 26 min expected and 25.1 measured for `dvc repro`; session 20, 5 epochs with fused Adam,
39 min expected (the first network probed at half its rate: the reason for the two probing rounds) and 29.7
measured; session 21, three 1-thread trainings at a time on 2 cores with the serial overhead, 21 min expected and
24.2 measured (native bf16), 32 and 39.3 under AVX2 caps: the reason for :data:`SIDE_BY_SIDE_OVERHEAD`.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from hourglass.bench.projection import train_gflop
from hourglass.config import ParamsConfig
from hourglass.data.workers import available_cores
from hourglass.family import family_of
from hourglass.model import create_model
from hourglass.precision import (
    Precision,
    cpu_isa,
    cpu_model,
    device_name,
    isa_caps_allow_bf16,
    select_device,
    select_precision,
)
from hourglass.sweep.plan import TrainingPlan, makespan
from hourglass.train.criterion import build_criterion
from hourglass.train.fastpath import resolve_fast_path
from hourglass.train.heap import kept_heap
from hourglass.train.optim import create_optimizer
from hourglass.train.run_config import resolve_variant

# A variant's training over its probed step time x samples: the data loading in the main process (2.5-4.2 % of a
# real step) and the per-epoch validation (3.5-3.8 % of an epoch), as `python -m hourglass.bench profile` measured
# them for the demo's variants (NOTES.md, session 17).
TRAINING_OVERHEAD = 1.08
# The same when the plan runs trainings side by side, one thread each: the probe's rate over each whole training's
# (17,600 samples over its seconds from start to exit, scaled to full speed where three shared two cores), measured
# in two whole demos on a 2-core AMD EPYC (session 21): 1.28-1.29 native bf16, 1.31 under AVX2 caps. Larger than
# the serial figure: a training's start-up, loading and validation are not in the probe, and there the probes' own
# processes do not all start at once.
SIDE_BY_SIDE_OVERHEAD = 1.30
# The stages around training, in seconds: generating and preprocessing the synthetic people (36 s measured), five
# evaluate stages with the flip test (about 15 s each: 573 people at about 80 people/s plus start-up), the report and
# the champion contest (about 30 s).
OTHER_STAGES_S = 140.0


@dataclass(frozen=True)
class DemoEstimate:
    """The machine, the precision chosen, and the probe's figures per network."""

    machine: str
    precision: Precision
    variants: tuple[str, ...]  # the variants whose training is still to run (once per seed)
    samples: int | None  # per variant; None: train.steps_per_epoch is null, so the data decides
    rates: dict[str, float] = field(default_factory=dict)  # samples/s per variant (shared by equal networks)
    plan: TrainingPlan = TrainingPlan(1, 1)  # how the trainings run: at a time, threads each
    cores: int = 1

    @property
    def minutes(self) -> float:
        assert self.samples is not None
        overhead = SIDE_BY_SIDE_OVERHEAD if self.plan.parallel else TRAINING_OVERHEAD
        durations = [self.samples / self.rates[v] * overhead for v in self.variants]
        return (makespan(durations, self.plan, self.cores) + OTHER_STAGES_S) / 60

    def first_line(self) -> str:
        """The line ``make demo`` opens with."""
        if not self.variants:
            return f"make demo on {self.machine}: every training is up to date; DVC reruns only what changed"
        if self.samples is None:
            return (f"make demo on {self.machine}; trains {self.precision.describe()}. No estimate: "
                    "train.steps_per_epoch is null, so an epoch's samples depend on the data")
        probe = ", ".join(f"{v} {rate:.0f}" for v, rate in self.rates.items())
        per = " per training" if self.plan.parallel else ""
        return (f"make demo on {self.machine}; trains {self.precision.describe()}, {self.plan.describe()}. "
                f"Expected about {self.minutes:.0f} min: {len(self.variants)} variant(s) x {self.samples:,} samples "
                f"at the probed samples/s{per} ({probe}), plus data, evaluation and report")


def machine_summary(precision: Precision) -> str:
    """The device in words: a CPU's model, cores and vector extensions, whether bf16 is native."""
    if precision.device.type == "cpu":
        native = "native bf16" if precision.name == "bf16" else "no native bf16"
        capped = "" if isa_caps_allow_bf16() else " capped below bf16 by ONEDNN_MAX_CPU_ISA/ATEN_CPU_CAPABILITY"
        return f"{cpu_model()} ({available_cores()} cores, {cpu_isa()}{capped}, {native})"
    return device_name(precision.device)


def probe_rate(params: ParamsConfig, precision: Precision, steps: int = 5, warmup: int = 2) -> float:
    """Training samples/s of ``params``' network at ``train.batch_size`` and ``model.input_res``: the median of
    ``steps`` timed steps after ``warmup`` untimed ones, with the allocator setting and the optimiser implementation
    training uses (:func:`~hourglass.train.heap.kept_heap`, :mod:`hourglass.train.fastpath`)."""
    torch.manual_seed(0)
    device, m, batch = precision.device, params.model, params.train.batch_size
    joints = family_of(params).joints.count
    network = create_model(**m.network_kwargs(), joints=joints).to(device, memory_format=precision.memory_format)
    network.train()
    optimizer = create_optimizer(network, params.train, resolve_fast_path(params.train, device).optimizer_flags())
    images = torch.rand(batch, 3, m.input_res, m.input_res, device=device).to(memory_format=precision.memory_format)
    target = torch.rand(batch, joints, m.input_res // 4, m.input_res // 4, device=device)
    criterion = build_criterion(m.supervision)
    times = []
    with kept_heap(device):
        for i in range(warmup + steps):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                outputs = network(images)
            criterion(outputs, target).backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def _probe_architectures(networks: list[ParamsConfig], steps: int, rounds: int, threads: int | None) -> list[float]:
    """Each of ``networks`` probed in ``rounds`` passes over them all, the fastest pass of each kept; with
    ``threads`` intra-op threads (None: as the process has them). Runs in a probe process of its own when the plan
    runs trainings side by side."""
    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device()
    fastest = [0.0] * len(networks)
    for _ in range(rounds):
        for i, network in enumerate(networks):
            precision = select_precision(network.train.precision, device, network.train.channels_last)
            fastest[i] = max(fastest[i], probe_rate(network, precision, steps=steps))
    return fastest


def _probe_side_by_side(networks: list[ParamsConfig], steps: int, rounds: int, plan: TrainingPlan,
                        cores: int) -> list[float]:
    """The networks' rates with as many probe processes at once as the plan's trainings fill the cores (each with the
    plan's threads), the mean over the processes: the rate a training gets beside the others."""
    processes = max(1, min(plan.workers, cores // plan.threads))
    if processes == 1:
        return _probe_architectures(networks, steps, rounds, plan.threads)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = [pool.submit(_probe_architectures, networks, steps, rounds, plan.threads) for _ in range(processes)]
        each = [future.result() for future in done]
    return [statistics.fmean(rates) for rates in zip(*each, strict=True)]


def estimate(params: ParamsConfig, variants: list[str], steps: int = 5, rounds: int = 2,
             plan: TrainingPlan | None = None) -> DemoEstimate:
    """The demo's expected duration for the ``variants`` still to train under ``plan`` (None: one at a time with the
    process's threads). Each architecture is probed in ``rounds`` passes over them all and keeps its fastest pass: in
    a fresh clone `make demo` probed its first network at half the rate it then trained at (hg 32 samples/s, trained
    at about 57, native bf16; the cause is not known, standalone probes were steady), so a second pass repeats every
    measurement. Variants that differ from a probed architecture only in supervision are scaled by their training
    FLOPs (their extra heads and losses)."""
    device = select_device()
    precision = select_precision(params.train.precision, device, params.train.channels_last)
    cores = available_cores()
    plan = plan or TrainingPlan(1, torch.get_num_threads())
    cfg = params.train
    samples = None if cfg.steps_per_epoch is None else cfg.epochs * cfg.steps_per_epoch * cfg.batch_size
    joints = family_of(params).joints.count
    # architecture -> (a variant of it, GFLOP per sample); then its samples/s
    architectures: dict[tuple[Any, ...], tuple[str, float]] = {}
    gflops: dict[str, tuple[tuple[Any, ...], float]] = {}
    for variant in dict.fromkeys(variants) if samples is not None else []:
        model = resolve_variant(params, variant).model
        key = (model.stacks, model.features, model.modules, model.stem_width, model.input_res)
        gflop = train_gflop(model, joints)
        architectures.setdefault(key, (variant, gflop))
        gflops[variant] = (key, gflop)
    networks = [resolve_variant(params, variant) for variant, _gflop in architectures.values()]
    if not networks:
        found: list[float] = []
    elif plan.parallel:
        found = _probe_side_by_side(networks, steps, rounds, plan, cores)
    else:
        found = _probe_architectures(networks, steps, rounds, None)
    probed = dict(zip(architectures, found, strict=True))
    rates = {variant: probed[key] * architectures[key][1] / gflop for variant, (key, gflop) in gflops.items()}
    return DemoEstimate(machine_summary(precision), precision, tuple(variants), samples, rates, plan, cores)
