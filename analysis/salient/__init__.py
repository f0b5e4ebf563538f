"""Salient ImageNet (Singla & Feizi, ICLR 2022; SPEC §3): neural features of a robust model,
their importance per class, NAM heatmaps, feature attacks, soft core/spurious masks and the
core/spurious accuracy under Gaussian noise."""
