"""``hourglass export``: a trained model as ONNX or OpenVINO IR, with its metadata inside (:mod:`hourglass.export`)."""

from __future__ import annotations

import argparse
import sys

from hourglass.export.deps import MissingPackageError
from hourglass.export.int8_options import DEFAULT_CALIBRATION, DEFAULT_MAX_DROP, Int8Options
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
renamed. Needs the 'export' extra (onnx, onnxscript, onnxruntime, openvino), which 'make install' installs.

--int8 writes an int8 graph instead (ONNX Runtime's post-training static quantisation, QDQ, per-channel int8
weights, uint8 activations; OpenVINO runs the same graph in int8), calibrated on --calibration training crops of the
preprocessed data the model was trained on (--data, or data/processed/<dataset> as its config says). Before
writing, the fp32 and int8 graphs are scored on that data's validation split (the evaluate stage's headline metric
for the model's card, flip test as the model's config says, on the format's runtime); a drop of more than
--max-drop points is refused with both scores and nothing is written. The calibration set (file, rows, digest of
the crops) and both scores go into the metadata (key hourglass.quantization)."""

EXPORT_EXAMPLES = """\
examples:
  hourglass export models/hg_stacked_int/seed-0 --format onnx --out exports/hg-onnx
  hourglass export models:/hourglass-mpii@champion --format openvino --out exports/hg-ov
  hourglass predict photo.jpg --model exports/hg-onnx --runtime onnxruntime --json -
  hourglass export models/hg_stacked_int/seed-0 --format openvino --int8 --out exports/hg-ov-int8"""


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
    parser.add_argument("--int8", action="store_true",
                        help="write an int8 graph (post-training static quantisation), refused when its validation "
                             "score drops more than --max-drop points below fp32's; needs the preprocessed data")
    parser.add_argument("--calibration", type=int, default=None, metavar="N",
                        help=f"--int8: calibrate on N training crops spread evenly over the training split "
                             f"(default: {DEFAULT_CALIBRATION}, or all when fewer)")
    parser.add_argument("--max-drop", type=float, default=None, metavar="POINTS",
                        help="--int8: the largest accuracy drop accepted, in points of the card's headline metric "
                             f"on the validation split, fp32 minus int8 (default: {DEFAULT_MAX_DROP:g})")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="--int8: the preprocessed data the model was trained on (default: data/processed/"
                             "<dataset> as the model's config names it, if its fingerprint matches the model's "
                             "lineage)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store for models:/ and runs:/ URIs (default: MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the current directory)")


def run_export(args: argparse.Namespace) -> int:
    """Export; 0: written, 1: the model, a package or the data is missing, or int8's drop is above --max-drop
    (nothing written)."""
    from hourglass.data.table import PreprocessError
    from hourglass.export.exporter import export_model
    from hourglass.export.int8 import export_int8_model

    int8_only = [name for name in ("calibration", "max_drop", "data") if getattr(args, name) is not None]
    if int8_only and not args.int8:
        print(f"error: --{int8_only[0].replace('_', '-')} is an option of --int8", file=sys.stderr)
        return 1
    try:
        if args.int8:
            options = Int8Options(args.data, DEFAULT_CALIBRATION if args.calibration is None else args.calibration,
                                  DEFAULT_MAX_DROP if args.max_drop is None else args.max_drop)
            result = export_int8_model(args.model, args.format, args.out, options, args.tracking_uri)
        else:
            result = export_model(args.model, args.format, args.out, args.tracking_uri)
    except (MissingPackageError, CheckpointError, MetadataError, PreprocessError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    meta = result.metadata
    if meta.quantization is not None:
        check = meta.quantization["validation"]
        print(f"int8: calibrated on {meta.quantization['calibration']['crops']} training crops; {check['metric']} "
              f"{check['fp32']:.2f} (fp32) -> {check['int8']:.2f} (int8) on {check['people']} validation people, "
              f"drop {check['drop']:.2f} <= {check['max_drop']:g}", file=sys.stderr)
    print(f"exported {args.model} -> {result.path} ({result.format}; {meta.input_res} px in, "
          f"{len(meta.keypoints)} keypoints of card {meta.dataset_card}, {meta.network.get('stacks')} stack(s); "
          f"BatchNorm folded into {result.folded} convolutions, {result.batchnorms_left} pre-activation ones left "
          "as scale and shift)", file=sys.stderr)
    return 0
