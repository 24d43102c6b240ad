"""Commands that stand on both sides: the torch side (models, train) and the torch-free runtime
(infer): export to ONNX, the eval command, the studies, the benchmarks."""
