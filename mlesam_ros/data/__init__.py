"""Data: the synthetic multi-sensor world, DELIVER/MUSES loaders, encodings and transforms.

Importing this package stays light (numpy only); the torch datasets and the bag writer live
in submodules that import their heavy dependencies themselves.
"""
