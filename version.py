"""The version of vidseq, in one place: the package, the cache and every run record it."""

__version__ = "0.1.0"
