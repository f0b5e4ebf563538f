"""Prototypes and criticisms (Stock & Cisse, ECCV 2018, §3.3-3.4): selectors and the study table.

Pure code (numpy/torch, no Django): ``adversarial`` (IFGSM steps to flip), ``mmd_critic``
(Kim et al. 2016, vectorised, with a plain-numpy reference), ``selectors`` (Adv, MMD, Probs,
Random per class), ``table`` (time filter, accuracy per condition, bar plot) and ``cue_shares``
(planted-cue share among prototypes and criticisms, the paper's §3.4).
"""
