"""Workflow building blocks (training with Lightning, loading bundles) shared by the CLIs."""
