"""Embedded PtychoPINN PyTorch backend: physics, model, data, Lightning training, bundles and CLIs."""
