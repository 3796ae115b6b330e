"""Embedded PtychoPINN PyTorch backend: physics, model, data, Lightning training, reconstruction, bundles and CLIs."""
