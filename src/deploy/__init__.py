"""Deployment: export to MINDIR / AIR / ONNX, the Ascend 310 file flow, and predicting on image files."""
