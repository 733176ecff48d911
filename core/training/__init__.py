"""Training of the bundled demo model on rendered surfaces; PyTorch parts need the `train` extra."""
