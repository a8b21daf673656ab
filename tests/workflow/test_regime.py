"""Tests of the regime table's arithmetic (`workflow.regime`): KL shares above δ, relative changes,
the targets per seed, the premise row."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sgpo_lib.workflow import regime


def test_kl_shares_pool_tokens_and_count_only_tokens_strictly_above_delta():
    kl = [[0.1, 0.25, 3.0], [0.5, 4.0, 0.15]]  # total 8.0
    table = regime.kl_shares(kl, deltas=(0.25, 1.0, 4.0)).set_index("delta")
    assert table.loc[0.25, "tokens"] == 6
    assert table.loc[0.25, "token share above"] == pytest.approx(3 / 6)  # 0.5, 3.0, 4.0 (0.25 is not above)
    assert table.loc[0.25, "KL mass share above"] == pytest.approx(7.5 / 8)
    assert table.loc[1.0, "token share above"] == pytest.approx(2 / 6)
    assert table.loc[1.0, "KL mass share above"] == pytest.approx(7.0 / 8)
    assert table.loc[4.0, "token share above"] == 0 and table.loc[4.0, "KL mass share above"] == 0


def test_kl_shares_without_tokens_or_mass_are_nan():
    assert regime.kl_shares([], deltas=(1.0,))["token share above"].isna().all()
    assert regime.kl_shares([[0.0, 0.0]], deltas=(1.0,))["KL mass share above"].isna().all()


def test_relative_change():
    assert regime.relative(0.2, 0.22) == pytest.approx(0.1)
    assert regime.relative(0.4, 0.3) == pytest.approx(-0.25)
    assert math.isnan(regime.relative(0.0, 0.1))


def test_targets_hold_only_when_they_hold_on_every_seed():
    per_seed = pd.DataFrame({"seed": [0, 1, 2], "SFT": [0.20, 0.21, 0.19], "SFT+GRPO": [0.24, 0.24, 0.21]})
    table = regime.accuracy_table(0.20, per_seed, n_problems=256)
    assert table.loc["SFT", "holds"] and table.loc["SFT", "avg@k"] == pytest.approx(20.0)
    assert table.loc["SFT", "per seed"] == [0.0, 5.0, -5.0]
    assert table.loc["SFT+GRPO", "holds"]  # +20%, +14.3%, +10.5% ...
    assert table.loc["SFT+GRPO", "per seed"] == [20.0, 14.3, 10.5]
    assert table.loc["SFT", "holds on the mean"] and table.loc["SFT+GRPO", "holds on the mean"]
    per_seed.loc[2, "SFT+GRPO"] = 0.20  # ... but +5.3% on seed 2 breaks the target on every seed, not on the mean
    table = regime.accuracy_table(0.20, per_seed, 256)
    assert not table.loc["SFT+GRPO", "holds"] and table.loc["SFT+GRPO", "holds on the mean"]  # mean +13.2%
    per_seed.loc[2, "SFT+GRPO"] = 0.30
    per_seed.loc[2, "SFT"] = 0.25  # +25% over base: outside the ±10% band
    table = regime.accuracy_table(0.20, per_seed, 256)
    assert not table.loc["SFT", "holds"] and table.loc["SFT+GRPO", "holds"]
    far = per_seed.assign(SFT=[0.20, 0.21, 0.28])  # 0%, +5%, +40%: the mean, +15%, is out too
    assert not regime.accuracy_table(0.20, far, 256).loc["SFT", "holds on the mean"]
    assert table.loc["SFT", "SE seeds"] == pytest.approx(100 * per_seed["SFT"].std() / math.sqrt(3))
    assert table.loc["SFT", "SE binomial"] == pytest.approx(100 * math.sqrt(0.22 * 0.78 / (256 * 3)))
    assert table["SE seeds × problems"].isna().all()  # not given
    given = regime.accuracy_table(0.20, per_seed, n_problems=256, crossed_se={"SFT": 1.2, "SFT+GRPO": 1.4})
    assert given["SE seeds × problems"].tolist()[1:] == [1.2, 1.4] and math.isnan(given.loc["base", "SE seeds × problems"])


def test_premise_needs_a_gap_and_an_unguided_accuracy_above_zero():
    def row(u, g):
        return regime.premise_row(pd.DataFrame([{"split": "test", "family": "mean", "size": "small",
                                                 "unguided": u, "guided": g}]), "small")
    assert row(0.1, 0.7)["holds"] and not row(0.0, 0.7)["holds"] and not row(0.3, 0.45)["holds"]
    with pytest.raises(ValueError, match="size 'base'"):
        regime.premise_row(pd.DataFrame([{"split": "test", "family": "mean", "size": "small",
                                          "unguided": 0.1, "guided": 0.7}]), "base")


def test_report_tables_read_regime_json_with_both_rules_and_the_premise(tmp_path):
    assert regime.report_tables(tmp_path) == {}  # no regime.json: the report says why instead
    per_seed = pd.DataFrame({"seed": [0, 1, 2], "SFT": [0.20, 0.21, 0.19], "SFT+GRPO": [0.24, 0.24, 0.20]})
    accuracy = regime.accuracy_table(0.20, per_seed, 256).reset_index().to_dict("records")
    kl = regime.kl_shares([[0.5, 2.0]], deltas=(1.0,)).to_dict("records")
    (tmp_path / regime.REGIME_FILE).write_text(pd.Series({
        "world_seed": 3, "strong_skip_rate": 0.25, "rl_steps": 100, "accuracy": accuracy, "kl": kl,
        "premise": {"unguided": 0.4, "guided": 0.9, "holds": True}}).to_json())
    tables = regime.report_tables(tmp_path)
    table = tables["regime"]
    assert table.index.name == "world seed 3, strong_skip_rate 0.25, 100 RL steps"
    assert table.index.tolist() == ["premise (greedy test, unguided → guided)", "base", "SFT", "SFT+GRPO"]
    assert table.iloc[0]["avg@k"] == "40.0 → 90.0" and table.iloc[0]["holds"]
    assert table.loc["SFT+GRPO", "change, mean (per seed)"] == "+13.2% (+20.0, +14.3, +5.3)"
    assert not table.loc["SFT+GRPO", "holds"] and table.loc["SFT+GRPO", "holds on the mean"]
    assert tables["regime_kl"].loc[1.0].tolist() == [2, 50.0, 80.0]
