"""The checks of the bottleneck path, one module per concern; path.py declares their order."""
