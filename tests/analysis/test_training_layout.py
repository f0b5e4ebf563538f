"""Narrow models train in the NCHW layout: oneDNN's 1x1 backward-weights kernel with an NHWC source and fewer input
channels than its block writes past its workspace (uxlfoundation/oneDNN#6035) -- a width-4 model hung in channels-last
training on this project's machines (2 of 3 runs of 40 steps)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from analysis.training.trainer import CHANNELS_LAST_MIN_WIDTH, training_memory_format
from tests.celery_processes import ROOT

#: What train_model does to a width-4 model, step after step, in the layout it picks (a process of its own: a hang in
#: native code cannot be interrupted by pytest-timeout's signal).
STEPS = """
import torch
from analysis.models.demo_resnet import SmallResNet
from analysis.training.trainer import training_memory_format
torch.set_num_threads(2)
torch.manual_seed(0)
layout = training_memory_format(4)
model = SmallResNet(num_classes=5, width=4).to(memory_format=layout)
images = torch.randn(128, 3, 32, 32).contiguous(memory_format=layout)
for _ in range(100):
    model.zero_grad()
    model(images).logsumexp(1).mean().backward()
print("done")
"""


def test_the_layout_follows_the_width():
    assert CHANNELS_LAST_MIN_WIDTH >= 16  # AVX-512's channel block
    assert training_memory_format(4) == training_memory_format(8) == torch.contiguous_format
    assert training_memory_format(16) == training_memory_format(32) == torch.channels_last


@pytest.mark.slow
def test_a_width_4_model_trains_without_hanging():
    try:
        done = subprocess.run([sys.executable, "-c", STEPS], cwd=ROOT, capture_output=True, text=True, timeout=180,
                              check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("100 training steps of a width-4 model did not finish in 180 s (oneDNN's NHWC 1x1 kernel hung)")
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
