"""Reads a ViRelAy project the way ViRelAy does (``virelay/virelay`` at 4e87821,
``source/backend/virelay/model.py``), for the export tests: every key below is one ViRelAy's reader uses,
with its line there."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import yaml


def read_project(project_file) -> dict:
    """The project as ViRelAy's ``Project``, ``LabelMap``, ``Hdf5Dataset``, ``AttributionDatabase`` and
    ``AnalysisDatabase`` see it: plain arrays, by the names ViRelAy asks for."""
    project_file = Path(project_file)
    folder = project_file.parent
    project = yaml.safe_load(project_file.read_text())["project"]  # l. 73-74
    out = {"name": project["name"], "model": project["model"]}  # l. 75-76
    labels = json.loads((folder / project["label_map"]).read_text())  # l. 80, 1133-1136
    out["label_map"] = [(entry["index"], entry["word_net_id"], entry["name"]) for entry in labels]
    by_wnid = {wnid: name for _, wnid, name in out["label_map"]}
    dataset = project["dataset"]
    assert dataset["type"] == "hdf5"  # l. 85
    for key in ("name", "path"):  # l. 87-88
        assert key in dataset
    with h5py.File(folder / dataset["path"], "r") as f:  # Hdf5Dataset l. 774-853
        assert isinstance(f["label"], h5py.Dataset) and f["label"].dtype != np.bool_  # l. 781-783: single label
        out["data"] = f["data"][()]  # l. 807-809
        out["label"] = f["label"][()]  # l. 813-815
    attributions = project["attributions"]  # l. 108-110
    assert attributions["attribution_strategy"] in ("true_label", "predicted_label")
    out["attribution_method"] = attributions["attribution_method"]
    out["attributions"] = []
    for source in attributions["sources"]:
        with h5py.File(folder / source, "r") as f:  # AttributionDatabase l. 341-425
            out["attributions"].append({"has_index": "index" in f.keys(),  # l. 370
                                        "attribution": f["attribution"][()],  # l. 407-409
                                        "prediction": f["prediction"][()],  # l. 414-416
                                        "label": f["label"][()]})  # l. 421-423
    out["analyses"] = {}
    for analysis in project["analyses"]:  # l. 118-127
        for source in analysis["sources"]:
            with h5py.File(folder / source, "r") as f:  # AnalysisDatabase l. 515-669
                categories = {}
                for category in f.keys():  # l. 534
                    group = f[category]
                    embeddings = {name: group["embedding"][name][()] for name in group["embedding"]}  # l. 650
                    eigenvalues = {name: group["embedding"][name].attrs["eigenvalue"]  # l. 653-654
                                   for name in group["embedding"] if "eigenvalue" in group["embedding"][name].attrs}
                    categories[category] = {
                        "human_readable": by_wnid.get(category, ""),  # l. 536-539
                        "index": group["index"][()],  # l. 651
                        "cluster": {name: group["cluster"][name][()] for name in group["cluster"]},  # l. 562, 649
                        "embedding": embeddings, "eigenvalue": eigenvalues,
                        "cluster_attrs": {name: dict(group["cluster"][name].attrs) for name in group["cluster"]}}
                out["analyses"].setdefault(analysis["analysis_method"], []).append(categories)
    return out
