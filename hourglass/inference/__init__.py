"""Running a trained network: batched prediction (``runner``); users' images and videos (``predictor``, with who to
look at in ``people``, the inputs in ``inputs`` and what the model was trained on in ``trained_on``); where the
network runs (``runtimes``: torch, onnxruntime, openvino); serving."""
