"""raymtl: mixup based multitask learning and cross-task fusion for environmental sound
analysis (Zheng, Jiang, Zhao), trained as a distributed ensemble on Ray."""

__version__ = "0.1.0"
