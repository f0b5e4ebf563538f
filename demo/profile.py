"""The demo's quick profile: the sizes ``manage.py demo`` runs by default, in one place (no Django).

``manage.py demo`` (``annotation/management/commands/demo.py``) and ``bench/validity.py`` read it.
"""
from __future__ import annotations

from analysis.reconstruction.effects import QUICK as RECONSTRUCTION_QUICK

#: The default (quick) demo: the same studies on a 32 px benchmark of 600 train images per class, width-16
#: models and shorter schedules, so a cold run fits ten minutes on 2 cores. ``--full`` (``make demo FULL=1``)
#: runs today's full sizes (64 px, 1,000 per class, width 32; about 27 minutes).
QUICK = {
    "benchmark": {"train_per_class": 600, "test_per_class": 100, "image_size": 32, "garment_size": 16},
    "training": {"standard": {"width": 16, "epochs": 6},
                 "robust": {"width": 16, "epochs": 2, "eps": 0.25, "robust_eval_images": 200}},
    "salient": {"pool": 40, "attack_steps": 40},
    "spray": {"per_class": 300},
    "unhans": {"epochs": 2, "train_per_class": 100},
    "misclassification": {"lime_samples": 300},
    # the same sizes as the validity bench's recovered-sample effects (analysis.reconstruction.effects.QUICK)
    "reconstruction": {**{key: RECONSTRUCTION_QUICK[key] for key in ("per_side", "hidden", "steps")}, "review_k": 4},
}
