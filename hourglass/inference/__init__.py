"""Running a trained network: batched prediction (``runner``), users' images and videos (``predictor``), serving."""
