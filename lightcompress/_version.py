"""The package version, in one place (read by setuptools and by ``lightcompress --version``)."""

__version__ = "0.3.0"
