"""ablation-bench: three CNN ablation studies on CIFAR-10 as a regression benchmark."""

__version__ = "0.1.0"
