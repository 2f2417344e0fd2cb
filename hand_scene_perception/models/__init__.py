"""Neural networks of the learned tier (torch): backbones, heads, checkpoint loading, ONNX export."""
