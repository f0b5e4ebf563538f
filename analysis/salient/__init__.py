"""Salient ImageNet (Singla & Feizi, ICLR 2022, §3-§5): neural features of a robust model,
their importance per class, NAM heatmaps, feature attacks, soft core/spurious masks and the
core/spurious accuracy under Gaussian noise.

Modules: ``importance`` (r(x), IV_c, top images), ``nam`` (NAMs, heatmaps), ``attack`` (feature
attack at the reference's step), ``evidence`` (what the panel and validation HITs show),
``dataset`` (D(c, i) and the Salient dataset), ``masks`` (samples and their export), ``noise``
(core/spurious accuracy, Fig. 5/6 data), ``plots`` (the figures as PNG), ``ground_truth`` and
``benchmark_inputs`` (the planted-bias benchmark as input).
"""
