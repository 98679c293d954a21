"""Running a model: checkpoints, MINDIR, ONNX Runtime and MindSpore Lite behind one checked predict function."""
