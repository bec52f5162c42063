"""Benchmarks: ``python -m hourglass.bench {model,loader,preprocess,predict,profile,device,peer}``.

Each benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> dict``; the dict is printed as the last line,
one JSON object, so scripts and CI can read the figures. Figures are throughputs and ratios measured in one run on
one machine; compare them only within a run.
"""
