"""The CUDA/C sources of pyproc, installed as package data ``pyproc._kernels``.

Nothing to import here: use :mod:`pyproc.kernels` to list and compile them."""
