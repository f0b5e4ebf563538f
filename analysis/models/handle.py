"""A uniform view on any image classifier: logits, features, last linear layer, maps.

The handle finds, once per model, the graph nodes that hold

* the penultimate features r(x) -- the input of the last ``nn.Linear``;
* the last convolutional block's output -- walking back from r(x) past the
  classifier head and the spatial pooling to the last 4-D map;

and builds one :func:`torchvision.models.feature_extraction.create_feature_extractor`
returning logits, features and maps in a single pass.  This works for ResNet,
VGG, DenseNet, ConvNeXt-style models and the demo ResNet without per-architecture
hooks.  Input normalization lives in the handle: callers always pass images in
[0, 1], shape ``(N, 3, H, W)``.
"""
from __future__ import annotations

import inspect
import math
from typing import Sequence

import attrs
import torch
import torchvision
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torchvision.models.feature_extraction import NodePathTracer, create_feature_extractor

from .architectures import last_linear_name

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Operations that reduce the spatial extent (global/local pooling).
_POOLING_MODULES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)
_POOLING_CALLS = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d", "max_pool2d", "mean", "amax"}


def _tracer_kwargs() -> dict:
    """The tracer settings torchvision's feature extraction uses by default.

    torchvision treats its ``torchvision.ops`` modules (e.g. ``Conv2dNormActivation``)
    as leaves; node names must be found with the same settings to be accepted by
    :func:`create_feature_extractor`.
    """
    leaf_modules = [obj for _, obj in inspect.getmembers(torchvision.ops)
                    if inspect.isclass(obj) and issubclass(obj, nn.Module)]
    return {"autowrap_modules": (math, torchvision.ops), "leaf_modules": leaf_modules}


class FeatureMapsUnavailableError(RuntimeError):
    """The model has no convolutional map in front of its classifier (e.g. a ViT)."""


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` for images in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError("mean and std need the same number of channels")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NormalizedClassifier(nn.Module):
    """``model(normalize(x))``: a classifier taking [0, 1] images.

    Useful for attacks and attribution code that needs one ``nn.Module``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))


@attrs.frozen
class FeatureNodes:
    """Graph node names (as in :func:`get_graph_node_names`) used by a handle.

    Attributes
    ----------
    linear : str
        Qualified name of the last ``nn.Linear`` module.
    features : str
        Node whose output is the penultimate representation r(x).
    feature_maps : str or None
        Node whose output is the last convolutional block's maps; None if absent.
    logits : str
        Node producing the model output.
    """

    linear: str
    features: str
    feature_maps: str | None
    logits: str


@attrs.frozen
class FeatureOutput:
    """Result of :meth:`ModelHandle.features_and_maps`.

    Attributes
    ----------
    logits : Tensor, shape (N, classes)
    features : Tensor, shape (N, D)
        Penultimate activations r(x).
    feature_maps : Tensor, shape (N, C, h, w) or None
        Last convolutional block's output (C == D for ResNet/DenseNet).
    """

    logits: torch.Tensor
    features: torch.Tensor
    feature_maps: torch.Tensor | None


def _is_pooling(node: fx.Node, root: nn.Module) -> bool:
    if node.op == "call_module":
        return isinstance(root.get_submodule(str(node.target)), _POOLING_MODULES)
    if node.op in ("call_function", "call_method"):
        name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        return name in _POOLING_CALLS
    return False


def _first_node_arg(node: fx.Node) -> fx.Node | None:
    for arg in node.args:
        if isinstance(arg, fx.Node):
            return arg
    return None


def find_feature_nodes(model: nn.Module, input_size: int = 224, in_channels: int = 3) -> FeatureNodes:
    """Locate penultimate-feature, last-conv-map and logits nodes of ``model``.

    Parameters
    ----------
    model : nn.Module
        A classifier whose last ``nn.Linear`` is its classification layer.
    input_size : int
        Side of the square probe input used to learn tensor shapes; use the
        size the model will be fed so that maps are not pooled to 1x1.
    in_channels : int
        Input channels of the probe.

    Returns
    -------
    FeatureNodes
    """
    linear = last_linear_name(model)
    was_training = model.training
    model.eval()
    try:
        tracer = NodePathTracer(**_tracer_kwargs())
        graph = tracer.trace(model)
        graph_module = fx.GraphModule(tracer.root, graph)
        with torch.no_grad():
            param = next(model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
            ShapeProp(graph_module).propagate(torch.rand(1, in_channels, input_size, input_size, device=device))
    finally:
        model.train(was_training)
    qualname = tracer.node_to_qualname

    linear_nodes = [n for n in graph.nodes if n.op == "call_module" and n.target == linear]
    if not linear_nodes:
        raise ValueError(f"could not find the call of {linear!r} in the traced graph")
    linear_node = linear_nodes[-1]
    feature_node = _first_node_arg(linear_node)
    if feature_node is None or feature_node not in qualname:
        raise ValueError(f"the input of {linear!r} is not a traced node")

    output = next(n for n in graph.nodes if n.op == "output")
    out_arg = output.args[0]
    logits_node = out_arg if isinstance(out_arg, fx.Node) and out_arg in qualname else linear_node

    # Walk back from r(x); the maps are the first 4-D output found upstream of the
    # (global) pooling, i.e. skipping flatten/head layers that follow the pooling.
    maps_name = None
    passed_pooling = False
    node = feature_node
    while node is not None:
        if _is_pooling(node, graph_module):
            passed_pooling = True
        elif passed_pooling:
            meta = node.meta.get("tensor_meta")
            shape = tuple(getattr(meta, "shape", ()) or ())
            if len(shape) == 4 and node in qualname:
                maps_name = qualname[node]
                break
        node = _first_node_arg(node)
    return FeatureNodes(
        linear=linear,
        features=qualname[feature_node],
        feature_maps=maps_name,
        logits=qualname[logits_node],
    )


class ModelHandle:
    """Uniform access to a classifier that takes [0, 1] images.

    Parameters
    ----------
    model : nn.Module
        The bare classifier (expects normalized input).
    mean, std : sequence of float
        Normalization applied inside the handle.
    arch : str
        Architecture name (informative).
    class_names : sequence of str, optional
        Names in output order; defaults to ``"0", "1", ...``.
    input_size : int
        Square image side the model expects (probe size for node search).
    nodes : FeatureNodes, optional
        Override the automatically found nodes.

    Examples
    --------
    >>> handle = load_model("resnet50", "robust_resnet50.pth")   # doctest: +SKIP
    >>> out = handle.features_and_maps(images)                    # doctest: +SKIP
    >>> out.features.shape, out.feature_maps.shape                # doctest: +SKIP
    (torch.Size([8, 2048]), torch.Size([8, 2048, 7, 7]))
    """

    def __init__(self, model: nn.Module, *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, arch: str = "",
                 class_names: Sequence[str] | None = None, input_size: int = 224,
                 nodes: FeatureNodes | None = None) -> None:
        model.eval()
        self.arch = arch
        self.input_size = int(input_size)
        self.module = NormalizedClassifier(model, mean, std).eval()
        self.nodes = nodes or find_feature_nodes(model, self.input_size)
        linear = model.get_submodule(self.nodes.linear)
        self.num_classes = int(linear.out_features)
        self.feature_dim = int(linear.in_features)
        if class_names is None:
            class_names = [str(i) for i in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(
                f"{len(class_names)} class names given for a model with {self.num_classes} outputs"
            )
        self.class_names = list(class_names)
        return_nodes = {self.nodes.logits: "logits", self.nodes.features: "features"}
        if self.nodes.feature_maps is not None:
            return_nodes[self.nodes.feature_maps] = "feature_maps"
        self._extractor = create_feature_extractor(
            model, return_nodes=return_nodes, tracer_kwargs=_tracer_kwargs()
        ).eval()

    # -- properties ---------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The bare classifier (expects normalized input)."""
        return self.module.model

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.module.normalize.mean.flatten().tolist())

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.module.normalize.std.flatten().tolist())

    @property
    def device(self) -> torch.device:
        return self.module.normalize.mean.device

    @property
    def last_linear(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(W, b)`` of the classification layer; W has shape (classes, D)."""
        linear = self.model.get_submodule(self.nodes.linear)
        return linear.weight, linear.bias

    def to(self, device: str | torch.device) -> "ModelHandle":
        """Move the model in place and return ``self``."""
        self.module.to(device)
        self._extractor.to(device)
        return self

    # -- computations ---------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}")
        return x.to(self.device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the model's input normalization to [0, 1] images."""
        return self.module.normalize(self._check(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores for [0, 1] images, shape (N, classes)."""
        return self.module(self._check(x))

    __call__ = logits

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted class indices, shape (N,)."""
        return self.logits(x).argmax(dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations r(x), shape (N, D)."""
        return self.features_and_maps(x).features

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional block's maps, shape (N, C, h, w)."""
        maps = self.features_and_maps(x).feature_maps
        if maps is None:
            raise FeatureMapsUnavailableError(
                f"{self.arch or type(self.model).__name__} has no spatial feature map before its classifier"
            )
        return maps

    def features_and_maps(self, x: torch.Tensor) -> FeatureOutput:
        """Logits, r(x) and the last conv maps from one forward pass."""
        out = self._extractor(self.normalize(x))
        features = out["features"]
        return FeatureOutput(
            logits=out["logits"],
            features=features.reshape(features.shape[0], -1),
            feature_maps=out.get("feature_maps"),
        )

    def __repr__(self) -> str:
        return (f"ModelHandle(arch={self.arch!r}, classes={self.num_classes}, "
                f"feature_dim={self.feature_dim}, nodes={self.nodes})")
