"""Trained networks out of PyTorch: ONNX and OpenVINO files that carry what a runtime needs (``hourglass export``).

``metadata`` (what travels with an export), ``fold`` (BatchNorm folded into the convolutions before them), ``onnx``
and ``openvino`` (one writer each), ``exporter`` (a checkpoint or MLflow model to an export directory), ``deps``
(the optional packages, named when missing). Running an export: :mod:`hourglass.inference.runtimes`.
"""
