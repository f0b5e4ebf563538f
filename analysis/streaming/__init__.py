"""Streamed, sharded evidence passes: images read through a DataLoader, results that do not grow with the data.

A pass is a :class:`PassSpec` (kind, model, images, parameters) over an index of images, split
into shards (:func:`plan_shards`).  :func:`run_shard` turns one shard into a :class:`Partial`
(npz bytes, stored under :func:`shard_name`); :func:`merge` joins partials; :func:`finish` reads
the result.  :func:`run_pass` does it all in this process.  Kinds: ``salient`` (IV and top images
per class and feature), ``predictions`` (top-k classes), ``prototype_features`` and ``lrp``
(SpRAy heatmaps).  Salient panels (NAMs, feature attacks) are a second fan-out: :mod:`.panels`.

Typical use::

    spec = PassSpec(kind="salient", model=ModelSource("robust.pt", "resnet50"),
                    data=DataSource("image_folder", {"root": "train"}), params={"pool": 65})
    stats = run_pass(spec, n_shards=8, execution=Execution(batch_size=256, num_workers=8))
    stats.top_features(5), stats.top_images(c, f, 5, by="prediction")
"""
from .device import DEVICE_ENV, autocast, resolve_device
from .lrp import Heatmaps, LrpPass
from .panels import (
    PanelJob,
    PanelsSpec,
    assemble_evidence,
    class_examples,
    default_attack_step,
    panel_jobs,
    panels_digest,
    run_panels,
    salient_evidence,
    work_from_dict,
)
from .partial import Partial
from .predictions import Predictions, PredictionsPass
from .prototype_features import PrototypeFeatures, PrototypeFeaturesPass
from .salient import SalientPass, SalientStats
from .shards import (
    DirectoryShardStore,
    ProgressSum,
    Shard,
    ShardStore,
    finish,
    image_loader,
    merge,
    plan_shards,
    run_pass,
    run_shard,
    run_work,
    shard_name,
)
from .sources import DataSource, ModelSource, register_data_source
from .spec import Batch, Execution, PassSpec, PerImagePass, StreamPass, pass_kinds, register_pass
from .topk import GroupedTopK

__all__ = [
    "DEVICE_ENV", "Batch", "DataSource", "DirectoryShardStore", "Execution", "GroupedTopK", "Heatmaps", "LrpPass",
    "ModelSource", "PanelJob", "PanelsSpec", "Partial", "PassSpec", "PerImagePass", "Predictions", "PredictionsPass",
    "ProgressSum",
    "PrototypeFeatures", "PrototypeFeaturesPass", "SalientPass", "SalientStats", "Shard", "ShardStore",
    "StreamPass", "assemble_evidence", "autocast", "class_examples", "default_attack_step", "finish",
    "image_loader", "merge", "panel_jobs", "panels_digest", "pass_kinds", "plan_shards", "register_data_source",
    "register_pass",
    "resolve_device", "run_pass", "run_panels", "run_shard", "run_work", "salient_evidence", "shard_name",
    "work_from_dict",
]
