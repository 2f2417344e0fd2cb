"""Real datasets with 3D hand ground truth: the evaluation layout and converters from public datasets."""
