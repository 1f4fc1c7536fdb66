"""What a run costs on Google Colab: compute units (CU) and dollars, from wall time and GPU.

Colab bills compute units per hour that a runtime is attached, at a rate that depends on the GPU
type, not on the memory a notebook uses. The rates move, so they are data here, each table with
its date and its source; pass `table=` to use an older one.

The original complaint-classification post priced its run with a different rule, GB of GPU
memory x hours = compute units (9 h x 15 GB = 135 units, about $13.49). `gb_hour_rule`
reproduces that figure by name, with a warning that Colab does not bill that way.
"""
from __future__ import annotations

import warnings

from . import gpus
from .errors import FriendlyError

_RATES_SOURCE = ("Colab compute-unit rates per GPU type as read by an outside observer, "
                 "collected in docs/sources.md 'Cost and hardware facts'")

# CU per hour by GPU type. A table is keyed by the month its rates were read.
RATE_TABLES = {
    "colab-2024-04": {
        "date": "2024-04",
        "source": _RATES_SOURCE,
        "rates": {"T4": 1.84, "V100": 4.91, "L4": 4.82, "A100-40GB": 11.77},
    },
    "colab-2026-03": {
        "date": "2026-03",
        "source": _RATES_SOURCE + "; V100 no longer offered",
        "rates": {"T4": 1.19, "L4": 1.71, "A100-40GB": 5.40, "A100-80GB": 7.52,
                  "G4": 8.71},  # G4 = RTX PRO 6000, 96 GB
    },
}
DEFAULT_TABLE = "colab-2026-03"

# Dollars per compute unit, by how the units are bought (docs/sources.md, Cost and hardware facts).
PRICES = {
    "payg": 9.99 / 100,  # $9.99 per 100 CU
    "payg-500": 49.99 / 500,  # $49.99 per 500 CU
}

# Colab's subscription plans: units included per month; units expire after 90 days.
PLANS = {
    "pro": {"units_per_month": 100, "expire_days": 90},
    "pro+": {"units_per_month": 500, "expire_days": 90},
}

GB_HOUR_WARNING = (
    "The GB-hour rule (GB of GPU memory x hours = compute units) is how the original post priced "
    "its run; Colab does not bill that way. Colab charges compute units per hour the runtime is "
    "attached, at a rate set by the GPU type (see cost.colab_cost)."
)


def _table(table: str) -> dict:
    if table not in RATE_TABLES:
        raise FriendlyError(f"Unknown rate table {table!r}; choose one of {', '.join(RATE_TABLES)}.")
    return RATE_TABLES[table]


def rate(gpu: str, table: str = DEFAULT_TABLE) -> float:
    """Compute units per hour for `gpu` in `table`."""
    rates = _table(table)["rates"]
    key = gpu if gpu in rates else None
    if key is None:
        try:
            key = gpus.get(gpu).name
        except FriendlyError:
            key = str(gpu).strip().upper()
    if key not in rates:
        raise FriendlyError(
            f"No Colab rate for {gpu!r} in table {table!r} (dated {RATE_TABLES[table]['date']}). "
            f"That table has: {', '.join(rates)}. Other tables: {', '.join(RATE_TABLES)}."
        )
    return rates[key]


def is_colab_gpu(gpu: str | None, table: str = DEFAULT_TABLE) -> bool:
    """Whether Colab rents `gpu` in `table` ('Tesla T4' -> True, 'NVIDIA H200' -> False)."""
    if not gpu:
        return False
    try:
        rate(gpu, table)
        return True
    except FriendlyError:
        return False


def compute_units(wall_s: float, gpu: str = "T4", table: str = DEFAULT_TABLE) -> float:
    """Compute units used by a runtime attached for `wall_s` seconds with `gpu`."""
    if wall_s < 0:
        raise FriendlyError(f"wall_s must be >= 0 seconds, got {wall_s}.")
    return wall_s / 3600 * rate(gpu, table)


def dollars(units: float, price: str = "payg") -> float:
    """Dollars for `units` compute units bought at `price` ('payg': $9.99 per 100 CU)."""
    if price not in PRICES:
        raise FriendlyError(f"Unknown price {price!r}; choose one of {', '.join(PRICES)}.")
    return units * PRICES[price]


def colab_cost(wall_s: float, gpu: str = "T4", table: str = DEFAULT_TABLE, price: str = "payg") -> dict:
    """Units, dollars, the rate used and where it comes from, for one run on Colab."""
    units = compute_units(wall_s, gpu, table)
    info = _table(table)
    return {
        "gpu": gpu,
        "hours": wall_s / 3600,
        "units": units,
        "dollars": dollars(units, price),
        "rate": rate(gpu, table),
        "table": table,
        "date": info["date"],
        "source": info["source"],
        "price": price,
    }


def colab_cost_range(low_s: float, high_s: float, gpu: str = "T4", table: str = DEFAULT_TABLE,
                     price: str = "payg") -> dict:
    """colab_cost of a run whose time is a range: hours, units and dollars as (low, high) pairs."""
    if high_s < low_s:
        raise FriendlyError(f"colab_cost_range: the high end ({high_s} s) is below the low end ({low_s} s).")
    low, high = colab_cost(low_s, gpu, table, price), colab_cost(high_s, gpu, table, price)
    return {**low, **{key: (low[key], high[key]) for key in ("hours", "units", "dollars")}}


def gb_hour_rule(hours: float, gib: float, price: str = "payg", warn: bool = True) -> dict:
    """The original post's rule: units = GB of GPU memory x hours (not how Colab bills).

    >>> round(gb_hour_rule(9, 15)["dollars"], 2)   # the post's 9 h x 15 GB
    13.49
    """
    units = hours * gib
    if warn:
        warnings.warn(GB_HOUR_WARNING, stacklevel=2)
    return {"units": units, "dollars": dollars(units, price), "warning": GB_HOUR_WARNING}


def plan_runs(wall_s: float, gpu: str = "T4", plan: str = "pro", table: str = DEFAULT_TABLE) -> float:
    """How many such runs a month of `plan` ('pro': 100 CU, 'pro+': 500 CU) pays for."""
    if plan not in PLANS:
        raise FriendlyError(f"Unknown plan {plan!r}; choose one of {', '.join(PLANS)}.")
    units = compute_units(wall_s, gpu, table)
    return float("inf") if units == 0 else PLANS[plan]["units_per_month"] / units



def bill_of_this_run(wall_s: float, gpu_name: str | None, table: str = DEFAULT_TABLE) -> dict | None:
    """colab_cost of a measured run if Colab rents the GPU it really ran on (runtime.physical_gpu()), else None."""
    from . import estimate

    key = estimate.gpu_key(gpu_name) if gpu_name else None
    return colab_cost(wall_s, gpu=key, table=table) if key and is_colab_gpu(key, table) else None
