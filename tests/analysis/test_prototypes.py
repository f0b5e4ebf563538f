"""Prototype/criticism selectors (Adv, MMD-critic, Probs, Random) and the Table 3 computation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.prototypes.adversarial import bim_flip_steps
from analysis.prototypes.mmd_critic import median_gamma, mmd_critic, rbf_kernel_reference, reference_mmd_critic
from analysis.prototypes.selectors import (
    CONDITIONS,
    Selection,
    adv_select,
    probs_select,
    random_select,
    select_class,
    shown_images,
)
from analysis.prototypes.table import TimeFilter, accuracy_table, plot_accuracy

# --- MMD-critic against a brute force from the definitions --------------------------------------

def brute_force_mmd_critic(x, n_proto, n_crit, gamma, reg):
    """Greedy steps evaluating the objectives themselves with Python loops (no incremental formulas)."""
    n = len(x)

    def k(i, j):
        return float(np.exp(-gamma * np.sum((x[i] - x[j]) ** 2)))

    def j_proto(s):  # MMD objective J(S) = 2/(n|S|) sum_{i in S, j} k - 1/|S|^2 sum_{i, j in S} k
        return (2 / (n * len(s))) * sum(k(i, j) for i in s for j in range(n)) \
            - sum(k(i, j) for i in s for j in s) / len(s) ** 2

    protos: list[int] = []
    for _ in range(n_proto):
        scores = {c: j_proto(protos + [c]) for c in range(n) if c not in protos}
        protos.append(max(scores, key=scores.get))

    def witness(c):
        return sum(k(c, j) for j in range(n)) / n - sum(k(c, p) for p in protos) / len(protos)

    def j_crit(cs):  # sum |witness| + reg * log det K_CC
        gram = np.array([[k(a, b) for b in cs] for a in cs])
        return sum(abs(witness(c)) for c in cs) + reg * np.linalg.slogdet(gram)[1]

    crits: list[int] = []
    for _ in range(n_crit):
        scores = {c: j_crit(crits + [c]) for c in range(n) if c not in protos and c not in crits}
        crits.append(max(scores, key=scores.get))
    return protos, crits


@pytest.mark.parametrize("seed,reg", [(0, 1.0), (1, 0.1), (2, 3.0)])
def test_mmd_critic_matches_brute_force(seed, reg):
    rng = np.random.default_rng(seed)
    # two clusters and a few outliers, so that prototypes and criticisms are well apart
    x = np.concatenate([rng.normal(0, 1, (14, 5)), rng.normal(4, 1, (8, 5)), rng.normal(0, 6, (4, 5))])
    gamma = median_gamma(x)
    fast = mmd_critic(x, 4, 3, gamma=gamma, reg=reg)
    protos, crits = brute_force_mmd_critic(x, 4, 3, gamma, reg)
    assert fast.prototypes.tolist() == protos
    assert fast.criticisms.tolist() == crits
    ref = reference_mmd_critic(x, 4, 3, gamma=gamma, reg=reg)
    assert ref.prototypes.tolist() == protos and ref.criticisms.tolist() == crits


def test_mmd_kernel_width_default_and_the_papers_lambda():
    """Default gamma: the median heuristic; the paper's λ = 1e-5 is the RBF gamma, passed through the
    selector; a non-positive gamma is refused with its meaning in the message."""
    from analysis.prototypes.mmd_critic import DEFAULT_REG, PAPER_GAMMA

    x = np.random.default_rng(3).normal(0, 30, (40, 8))
    assert PAPER_GAMMA == 1e-5 and DEFAULT_REG == 1.0
    assert mmd_critic(x, 3, 3).gamma == pytest.approx(median_gamma(x))
    paper = mmd_critic(x, 3, 3, gamma=PAPER_GAMMA)
    assert paper.gamma == PAPER_GAMMA
    ref = reference_mmd_critic(x, 3, 3, gamma=PAPER_GAMMA)
    assert paper.prototypes.tolist() == ref.prototypes.tolist()
    sel = select_class("mmd", k=3, seed=0, features=x, probs=np.zeros(40), flips=None, mmd={"gamma": PAPER_GAMMA})
    assert sel.prototypes.tolist() == paper.prototypes.tolist()
    assert sel.criticisms.tolist() == paper.criticisms.tolist()
    with pytest.raises(ValueError, match="RBF kernel parameter, the paper's λ"):
        mmd_critic(x, 3, 3, gamma=0.0)


def test_mmd_critic_blockwise_kernel_and_reference_agree_on_a_larger_set():
    x = np.random.default_rng(5).normal(size=(700, 32)).astype(np.float32)
    fast = mmd_critic(x, 6, 6, block=128)
    ref = reference_mmd_critic(x, 6, 6, gamma=fast.gamma)
    assert fast.prototypes.tolist() == ref.prototypes.tolist()
    assert fast.criticisms.tolist() == ref.criticisms.tolist()
    assert not set(fast.prototypes) & set(fast.criticisms)
    assert np.allclose(np.diag(rbf_kernel_reference(x[:5], fast.gamma)), 1)


# --- Adv: iterative FGSM steps to flip ----------------------------------------------------------

class MeanModel:
    """logits = 100 * [m - 0.5, 0.5 - m] with m the image mean: class 0 while m > 0.5.

    Every FGSM step of size eps lowers every pixel, hence m, by exactly eps."""

    def logits(self, x):
        m = x.mean(dim=(1, 2, 3))
        return 100 * torch.stack([m - 0.5, 0.5 - m], 1)


def test_bim_counts_steps_to_flip():
    offsets = [0.0005, 0.0035, 0.05, -0.01, 0.0072]
    images = torch.stack([torch.full((3, 4, 4), 0.5 + d, dtype=torch.float64) for d in offsets])
    flips = bim_flip_steps(MeanModel(), images, torch.zeros(5, dtype=torch.long), max_steps=10, eps=0.001,
                           batch_size=2)
    assert flips.steps.tolist() == [1, 4, 11, 0, 8]  # 11 = not flipped after M=10; 0 = wrong from the start
    assert flips.margin[2] > 0 > flips.margin[0]
    sel = adv_select(flips, 2)
    assert sel.prototypes.tolist() == [2, 4]  # the most robust: never flipped, then 8 steps
    assert sel.criticisms.tolist() == [0, 1]  # flipped after one step first, then the fewest steps


def test_probs_and_random_selectors():
    probs = np.array([0.95, 0.5, 0.05, 0.99, 0.02, 0.6, 0.93, 0.3])
    sel = probs_select(probs, 2, seed=0)
    assert set(sel.prototypes) <= {0, 3, 6} and len(sel.prototypes) == 2
    assert set(sel.criticisms) == {2, 4}
    short = probs_select(probs, 3, seed=0)  # only two below 0.1: the least confident of the rest fills up
    assert set(short.criticisms) == {2, 4, 7}
    assert random_select(50, 6, seed=3).prototypes.tolist() == random_select(50, 6, seed=3).prototypes.tolist()
    assert random_select(50, 6, seed=3).prototypes.tolist() != random_select(50, 6, seed=4).prototypes.tolist()
    with pytest.raises(ValueError, match="unknown selector"):
        select_class("lime", k=2, seed=0, features=np.zeros((3, 2)), probs=probs[:3], flips=None)


def test_shown_images_p_and_pc():
    sel = Selection(np.arange(10, 16), np.arange(20, 26))
    assert shown_images(sel, "P", 6).tolist() == [10, 11, 12, 13, 14, 15]
    assert shown_images(sel, "PC", 6).tolist() == [10, 11, 12, 20, 21, 22]  # 3 prototypes + 3 criticisms
    assert len(CONDITIONS) == 7


# --- the time filter and Table 3 on a hand-made answer set --------------------------------------

def hand_made_answers():
    rows = []
    # adv-pc: 4 valid answers, 3 correct; plus one too fast (correct) and one too slow (wrong)
    for correct, seconds in [(1, 25), (1, 40), (1, 179.9), (0, 60), (1, 19.9), (0, 181)]:
        rows.append(("adv-pc", "Adv - Prototypes and Criticisms", bool(correct), seconds))
    # random-p: 2 valid answers, 1 correct; one answer exactly at each bound counts
    for correct, seconds in [(1, 20), (0, 180), (1, 3)]:
        rows.append(("random-p", "Random", bool(correct), seconds))
    return pd.DataFrame(rows, columns=["condition", "title", "correct", "seconds"])


def test_time_filter_discards_and_counts():
    reasons = TimeFilter(20, 180).reason(pd.Series([19.99, 20, 100, 180, 180.01, None]))
    assert reasons.tolist() == ["too_fast", "", "", "", "too_slow", "no_time"]
    assert TimeFilter(0, None).reason(pd.Series([0.01, 1e6])).tolist() == ["", ""]


def test_accuracy_table_on_hand_made_answers():
    conditions = [("adv-pc", "Adv - Prototypes and Criticisms"), ("mmd-p", "MMD - Prototypes only"),
                  ("random-p", "Random")]
    table, counts = accuracy_table(hand_made_answers(), TimeFilter(20, 180), conditions)
    assert counts == {"total": 9, "valid": 6, "too_fast": 2, "too_slow": 1, "no_time": 0}
    rows = table.set_index("condition")
    assert rows.loc["adv-pc", "n_valid"] == 4 and rows.loc["adv-pc", "n_correct"] == 3
    assert rows.loc["adv-pc", "accuracy"] == pytest.approx(75.0)
    assert rows.loc["adv-pc", "standard_error"] == pytest.approx(100 * np.sqrt(0.75 * 0.25 / 4))  # 21.65
    assert rows.loc["random-p", "accuracy"] == pytest.approx(50.0)
    assert rows.loc["random-p", "standard_error"] == pytest.approx(100 * np.sqrt(0.5 * 0.5 / 2))  # 35.36
    assert rows.loc["mmd-p", "n_valid"] == 0 and np.isnan(rows.loc["mmd-p", "accuracy"])
    assert table["condition"].tolist() == ["adv-pc", "mmd-p", "random-p"]
    png = plot_accuracy(table, chance=1 / 6)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_cue_share_table_counts_planted_cues_per_selector_and_role():
    from analysis.prototypes.cue_shares import cue_share_summary, cue_share_table

    labels = np.array([0] * 10 + [1] * 10)
    has_cue = np.zeros(20, bool)
    has_cue[[0, 1, 2, 3, 4, 5]] = True  # class 0: 60 % carry the cue; class 1: none
    selections = {
        "0": {"selections": {"adv": {"prototypes": [0, 1, 2], "criticisms": [7, 8, 9]},
                             "random": {"prototypes": [0, 6, 7], "criticisms": []}}},
        "1": {"selections": {"adv": {"prototypes": [10, 11, 12], "criticisms": [13, 14, 15]}}},
    }
    t = cue_share_table(selections, has_cue, labels, ["shirt", "coat"])
    assert len(t) == 5  # random has no criticisms
    row = t[(t["class"] == 0) & (t["selector"] == "adv")].set_index("role")
    assert row.loc["prototypes", "cue_share_percent"] == 100.0 and row.loc["criticisms", "cue_share_percent"] == 0.0
    assert (row["class_cue_percent"] == 60.0).all() and row.loc["prototypes", "class_name"] == "shirt"
    rnd = t[t["selector"] == "random"].iloc[0]
    assert (rnd["cue_images"], round(rnd["cue_share_percent"], 2)) == (1, 33.33)
    summary = cue_share_summary(t).set_index(["selector", "role"])
    assert summary.loc[("adv", "prototypes"), "classes"] == 1  # class 1 has no cue: left out
    with pytest.raises(ValueError, match="not images of that class"):
        cue_share_table({"1": {"selections": {"adv": {"prototypes": [0]}}}}, has_cue, labels, ["a", "b"])


def test_attribute_shares_count_the_crowds_yes_per_selector_role_and_class_with_wilson_intervals():
    """Stock & Cisse §3.4: the attribute's share among each selector's prototypes vs criticisms."""
    import pandas as pd

    from analysis.misclassification.aggregation import wilson_interval
    from analysis.prototypes.attribute_shares import (
        attribute_share_table, picked_images, pooled_attribute_shares, share_gap,
    )

    selections = {"0": {"selections": {"adv": {"prototypes": [1, 2], "criticisms": [3]},
                                       "mmd": {"prototypes": [2, 4], "criticisms": [5, 6]},
                                       "random": {"prototypes": [7], "criticisms": []}}},
                  "1": {"selections": {"adv": {"prototypes": [10], "criticisms": [11]},
                                       "mmd": {"prototypes": [10], "criticisms": [12]}}}}
    picked = picked_images(selections)
    assert [p["index"] for p in picked] == [1, 2, 3, 4, 5, 6, 10, 11, 12]  # random's picks are not asked about
    assert next(p for p in picked if p["index"] == 2)["roles"] == [["adv", "prototypes"], ["mmd", "prototypes"]]
    answers = {1: "yes", 2: "yes", 3: "no", 4: None, 5: "no", 6: "yes", 10: "yes", 11: "no", 12: "no"}
    images = pd.DataFrame([{"class": p["class"], "class_name": f"c{p['class']}", "label": answers[p["index"]],
                            "roles": p["roles"]} for p in picked])
    table = attribute_share_table(images).set_index(["class", "selector", "role"])
    mmd_p = table.loc[(0, "mmd", "prototypes")]
    assert (mmd_p["images"], mmd_p["decided"], mmd_p["yes"]) == (2, 1, 1)  # image 4 undecided (a tie)
    mmd_c = table.loc[(0, "mmd", "criticisms")]
    assert mmd_c["yes_share_percent"] == 50.0
    low, high = wilson_interval(1, 2)
    assert (mmd_c["wilson_low_percent"], mmd_c["wilson_high_percent"]) == pytest.approx((100 * low, 100 * high))
    pooled = pooled_attribute_shares(attribute_share_table(images)).set_index(["selector", "role"])
    assert tuple(pooled.loc[("adv", "prototypes"), ["classes", "images", "yes"]]) == (2, 3, 3)
    assert pooled.loc[("adv", "criticisms"), "yes_share_percent"] == 0.0
    gap = share_gap(pooled.reset_index())
    assert gap["adv"] == 100.0 and gap["mmd"] == pytest.approx(100 * 2 / 2 - 100 * 1 / 3)
