"""Configuration, legacy params bridge, data loading/validation, grouping, the simulator and file checksums (NumPy/SciPy only)."""
