"""Configuration, legacy params bridge, data loading/validation, grouping and the simulator (NumPy/SciPy only)."""
