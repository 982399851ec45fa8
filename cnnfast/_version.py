"""cnnfast's version, defined here and nowhere else: pyproject.toml reads it at build time
(scikit-build-core's regex metadata provider) and ``cnnfast.__version__`` imports it."""

__version__ = "0.1.0"
