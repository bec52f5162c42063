"""Files on disk: annotation and evaluation files, COCO keypoints files (``coco``), checkpoints, the MPII
submission, the one atomic writer, strict-JSON values (``json_values``), the one file digest, the git checkout and
the one image decode."""
