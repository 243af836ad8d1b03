"""The package version, in one place: setuptools and the command line read it here."""

__version__ = "0.3.0"
