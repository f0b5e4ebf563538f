"""The model-based studies of ``make screenshots``: one study of every model-based kind on a researcher's own data
made on the spot under the output folder (``demo/own_data.py``: a folder of 4 classes of small JPEGs with a
validation folder, and a randomly initialised ResNet-18 in both checkpoint layouts), registered as a researcher
would. No real model is trained and nothing is read from or written to ``var/``; the settings are the smallest the
kinds accept, as in ``tests/test_own_model_and_images.py``, so the whole set computes in a few minutes on 2 cores.
"""
from __future__ import annotations

from pathlib import Path

from annotation import services
from annotation.models import Study

#: The registered models' input size: small, so that every pass over the images is quick on a CPU.
SIZE = 64
DATASET = "screenshot-photos"
PLAIN, ROBUST = "screenshot-resnet18", "screenshot-resnet18-robust"

#: Settings per model-based kind (the researcher's registered dataset and models; everything else tiny).
KIND_SETTINGS = {
    "feature_panel": {"model": ROBUST, "eval_models": [ROBUST, PLAIN], "k_features": 2, "k_images": 3, "pool": 6,
                      "attack_steps": 2, "spurious_threshold": 2, "reason_min_length": 5},
    "heatmap_validation": {"model": ROBUST, "eval_models": [ROBUST], "k_features": 2, "k_images": 3, "pool": 6,
                           "attack_steps": 0, "spurious_threshold": 2, "reason_min_length": 0},
    "misclassification": {"variant": "top5", "models": [PLAIN], "split": "test", "top_k": 5, "max_images": 6,
                          "threshold": 2, "fgsm_step": 0.001, "fgsm_max_steps": 2, "lime_samples": 20},
    "class_assignment": {"model": PLAIN, "n_classes": 3, "images_per_class": 2, "targets_per_class": 1,
                         "pool_per_class": 12, "attack_steps": 2, "attack_eps": 0.001, "mmd_reg": 1.0,
                         "min_answer_time": 0, "max_answer_time": 600, "seed": 0},
    "cluster_review": {"model": PLAIN, "per_class": 12, "size": 8, "metric": "euclidean", "max_k": 3,
                       "review_classes": 1, "examples": 3, "min_cluster_size": 2, "reason_min_length": 5},
    # The recovered-sample study trains its own small MLP by design (Haim et al.): 32 units, 30 steps, 10 px.
    "reconstruction_review": {"source": "dataset", "classes": [0, 2], "variant": "contrast", "per_side": 6,
                              "size": 10, "hidden": 32, "steps": 30, "review_k": 1},
}


def register_own_data(owner, folder: Path) -> None:
    """Make the images and checkpoints under ``folder`` and register them as ``owner``'s."""
    # demo.own_data imports torch: deferred, so that importing this module (and the command) loads no torch.
    from demo.own_data import image_folder, metadata_csv, resnet18_checkpoints

    train = image_folder(folder / "train")
    val = image_folder(folder / "val", per_class=4, seed=1)
    meta = metadata_csv(folder / "classes.csv")
    checkpoints = resnet18_checkpoints(folder / "checkpoints")
    services.registry.model_register(owner=owner, name=PLAIN, architecture="resnet18",
                                     checkpoint=str(checkpoints["plain"]), input_size=SIZE)
    services.registry.model_register(owner=owner, name=ROBUST, architecture="resnet18",
                                     checkpoint=str(checkpoints["robust"]), format="robustness", input_size=SIZE)
    services.registry.dataset_register(owner=owner, name=DATASET, root=str(train), val_root=str(val),
                                       class_metadata=str(meta))


def model_studies(owner, folder: Path, log=print) -> dict[str, Study]:
    """One computed and launched study per model-based kind (kind -> study), on data registered under ``folder``."""
    register_own_data(owner, folder)
    studies = {}
    for kind, settings in KIND_SETTINGS.items():
        log(f"computing the {kind} study")
        study = services.study_create(owner=owner, name=f"Own photos: {kind.replace('_', ' ')}", kind=kind,
                                      settings={"dataset": DATASET, **settings}, workers_per_task=3)
        services.study_start_computing(study=study)
        study.refresh_from_db()
        if study.state != Study.State.READY:
            raise RuntimeError(f"the {kind} study did not compute: {study.state} {study.error}")
        services.study_launch(study=study)
        studies[kind] = study
    return studies


def finish(studies: dict[str, Study]) -> None:
    """Close and aggregate the answered studies (the outputs job runs in this process without a broker)."""
    for study in studies.values():
        services.study_close(study=Study.objects.get(pk=study.pk))
        services.study_aggregate(study=Study.objects.get(pk=study.pk))
