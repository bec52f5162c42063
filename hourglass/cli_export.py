"""``hourglass export``: a trained model as ONNX or OpenVINO IR, with its metadata inside (:mod:`hourglass.export`)."""

from __future__ import annotations

import argparse
import sys

from hourglass.export.deps import MissingPackageError
from hourglass.export.metadata import MetadataError
from hourglass.io.checkpoint import CheckpointError

EXPORT_DESCRIPTION = """\
Export a trained network to ONNX (DIR/model.onnx) or OpenVINO IR (DIR/model.xml + model.bin) for ONNX Runtime,
OpenVINO, or any engine that reads them.

The graph is the network only, in eval mode with BatchNorm folded into the convolutions before it: input 'images'
(N, 3, R, R) float32 RGB in [0, 1] with a dynamic batch N, output 'heatmaps' (N, stacks, joints, R/4, R/4), every
stack. The crop, the flip test and the decoding stay in the runner ('hourglass predict --runtime ...'), which reads
what it needs from the model file's metadata (ONNX metadata_props / OpenVINO rt_info, keys hourglass.*): input size,
keypoint names and flip permutation, train.target_scale, flip test, the dataset card's name and digest, variant,
epoch, the source checkpoint's SHA-256 and the training config. Files are written under temporary names and
renamed. Needs the 'export' extra (onnx, onnxscript, onnxruntime, openvino), which 'make install' installs."""

EXPORT_EXAMPLES = """\
examples:
  hourglass export models/hg_stacked_int/seed-0 --format onnx --out exports/hg-onnx
  hourglass export models:/hourglass-mpii@champion --format openvino --out exports/hg-ov
  hourglass predict photo.jpg --model exports/hg-onnx --runtime onnxruntime --json -"""


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hourglass export``."""
    parser.add_argument("model", metavar="MODEL",
                        help="a checkpoint file, a models/<variant>/seed-<n>/ directory holding checkpoint.pt, or an "
                             "MLflow model URI such as models:/hourglass-mpii@champion or runs:/<run id>/model")
    parser.add_argument("--format", required=True, choices=["onnx", "openvino"],
                        help="onnx: DIR/model.onnx (ONNX Runtime, and OpenVINO reads it too); openvino: "
                             "DIR/model.xml + model.bin (OpenVINO IR, fp32 weights)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the export directory (created; a model file of the same name in it is replaced)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store for models:/ and runs:/ URIs (default: MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the current directory)")


def run_export(args: argparse.Namespace) -> int:
    """Export; 0: written, 1: the model or a package is missing (nothing written)."""
    from hourglass.export.exporter import export_model

    try:
        result = export_model(args.model, args.format, args.out, args.tracking_uri)
    except (MissingPackageError, CheckpointError, MetadataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    meta = result.metadata
    print(f"exported {args.model} -> {result.path} ({result.format}; {meta.input_res} px in, "
          f"{len(meta.keypoints)} keypoints of card {meta.dataset_card}, {meta.network.get('stacks')} stack(s); "
          f"BatchNorm folded into {result.folded} convolutions, {result.batchnorms_left} pre-activation ones left "
          "as scale and shift)", file=sys.stderr)
    return 0
