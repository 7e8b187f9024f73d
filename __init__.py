"""vidseq: CNN-RNN video classification on cached frozen-CNN features."""

__version__ = "0.1.0"
