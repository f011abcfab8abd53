"""Dataset layouts, synthetic data, features, divisions and the mixup transform."""
