"""SpRAy: spectral relevance analysis of LRP heatmaps (Lapuschkin et al.; Anders et al.).

One module per step: :mod:`.lrp` (zennit relevance), :mod:`.preprocess`,
:mod:`.distances` (euclidean, Gromov-Wasserstein; the batched GW solver is :mod:`.gromov`),
:mod:`.embedding` (kNN graph,
spectral embedding), :mod:`.clustering` (k-means, agglomerative, UMAP),
:mod:`.fisher` (Fisher discriminant score tau) and :mod:`.pipeline`; over a data set
:mod:`.dataset` (LRP + SpRAy per class, tau ranking, cluster purity), then :mod:`.artifacts`
(paste/remove tests of a found artifact), :mod:`.unhans` (the paper's fine-tuning on subsets A
and B, or retraining without the artifact samples) and :mod:`.plots` (PNG figures).
"""
from .pipeline import SprayResult, rank_classes, spray_class

__all__ = ["SprayResult", "rank_classes", "spray_class"]
