"""Compute units and dollars: the dated Colab rates and the post's GB-hour rule."""
import math
import warnings

import pytest

from helpers import cost
from helpers.errors import FriendlyError


def test_an_hour_on_a_t4_costs_its_rate():
    assert cost.compute_units(3600, "T4", table="colab-2026-03") == pytest.approx(1.19)
    assert cost.compute_units(3600, "T4", table="colab-2024-04") == pytest.approx(1.84)
    assert cost.compute_units(1800, "A100-80GB") == pytest.approx(7.52 / 2)


def test_dollars_per_unit_by_how_they_are_bought():
    assert cost.dollars(100) == pytest.approx(9.99)
    assert cost.dollars(500, price="payg-500") == pytest.approx(49.99)


def test_colab_cost_names_rate_source_and_date():
    out = cost.colab_cost(2 * 3600, "L4")
    assert out["units"] == pytest.approx(2 * 1.71)
    assert out["dollars"] == pytest.approx(2 * 1.71 * 0.0999)
    assert out["rate"] == 1.71
    assert out["date"] == "2026-03"
    assert "docs/sources.md" in out["source"]


def test_gpu_names_as_torch_reports_them():
    assert cost.rate("NVIDIA A100-SXM4-40GB") == 5.40
    assert cost.rate("Tesla T4") == 1.19
    assert cost.rate("G4") == 8.71


def test_a_gpu_colab_does_not_offer_gets_a_clear_error():
    with pytest.raises(FriendlyError, match="V100.*2026-03|T4, L4"):
        cost.compute_units(3600, "V100", table="colab-2026-03")
    assert cost.compute_units(3600, "V100", table="colab-2024-04") == pytest.approx(4.91)
    with pytest.raises(FriendlyError, match="colab-2024-04"):
        cost.compute_units(60, "T4", table="colab-1999")
    with pytest.raises(FriendlyError):
        cost.compute_units(-1, "T4")


def test_the_posts_gb_hour_rule_reproduces_its_figure_and_warns():
    with pytest.warns(UserWarning, match="does not bill"):
        out = cost.gb_hour_rule(9, 15)
    assert out["units"] == 135
    assert round(out["dollars"], 2) == 13.49
    assert "not bill that way" in out["warning"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cost.gb_hour_rule(1, 1, warn=False)


def test_what_colab_bills_for_the_posts_run_is_far_from_the_gb_hour_figure():
    # 9 hours on a V100 at the 2024 rate, the billing rule Colab uses
    billed = cost.colab_cost(9 * 3600, "V100", table="colab-2024-04")
    assert billed["units"] == pytest.approx(9 * 4.91)
    assert not math.isclose(billed["units"], 135, rel_tol=0.5)


def test_plans():
    assert cost.plan_runs(3600, "T4", plan="pro") == pytest.approx(100 / 1.19)
    with pytest.raises(FriendlyError, match="pro"):
        cost.plan_runs(3600, plan="free")


def test_is_colab_gpu():
    assert cost.is_colab_gpu("Tesla T4")
    assert cost.is_colab_gpu("A100-80GB")
    assert not cost.is_colab_gpu("NVIDIA H200")
    assert not cost.is_colab_gpu("V100")  # not in the 2026-03 table
    assert cost.is_colab_gpu("V100", table="colab-2024-04")
    assert not cost.is_colab_gpu(None)
