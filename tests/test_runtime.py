import pytest

from helpers import runtime
from helpers.errors import FriendlyError


def test_profile_from_environment(monkeypatch):
    for name in runtime.PROFILES:
        monkeypatch.setenv("NB_PROFILE", name.upper())
        assert runtime.choose_profile() == name


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("NB_PROFILE", "fast")
    with pytest.raises(runtime.ProfileError, match="smoke, real, bench, full"):
        runtime.choose_profile()


def test_default_profile_is_smoke_without_gpu(monkeypatch):
    monkeypatch.delenv("NB_PROFILE", raising=False)
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    assert runtime.choose_profile() == "smoke"
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    assert runtime.choose_profile() == "full"


def test_cpu_precision_is_fp32():
    if runtime.cuda_available():
        pytest.skip("CPU-only check")
    assert runtime.precision() == "fp32"
    assert runtime.trainer_precision_kwargs() == {"bf16": False, "fp16": False}
    assert runtime.device() == "cpu"


@pytest.mark.parametrize("capability,expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_precision_follows_compute_capability(monkeypatch, capability, expected):
    import torch

    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
    # a T4 reports bf16 "supported" through emulation; the decision must ignore that
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.precision() == expected


def test_versions_name_the_libraries():
    found = runtime.versions()
    for name in ("torch", "transformers", "peft", "trl", "bitsandbytes", "python"):
        assert found[name], name


def test_banner_is_loud_about_smoke_by_default(monkeypatch, capsys):
    monkeypatch.delenv("NB_PROFILE", raising=False)
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    text = runtime.banner("04_test", "smoke")
    assert "SMOKE" in text and "NOTE" in text and "04_test" in text
    assert text in capsys.readouterr().out


def test_output_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NB_OUTPUT_DIR", str(tmp_path / "out"))
    assert runtime.output_dir("bench") == tmp_path / "out"
    assert (tmp_path / "out").is_dir()


def test_seed_everything_repeats():
    import torch

    runtime.seed_everything(7)
    a = torch.rand(3)
    runtime.seed_everything(7)
    assert torch.equal(a, torch.rand(3))


def test_friendly_error_renders_one_line():
    err = FriendlyError("the column 'txt' is missing; did you mean 'text'?")
    assert err._render_traceback_() == ["FriendlyError: the column 'txt' is missing; did you mean 'text'?"]


def test_chosen_runs_picks_by_name_in_table_order_and_rejects_unknown_names():
    names = ["batch 1", "batch 1 × 16", "LoRA q,v", "LoRA all-linear"]
    assert runtime.chosen_runs(names, "") == names
    assert runtime.chosen_runs(names, "lora all-linear, Batch 1 x 16") == ["batch 1 × 16", "LoRA all-linear"]
    assert runtime.chosen_runs(names, "LoRA q,v,batch 1") == ["batch 1", "LoRA q,v"]   # a name holding a comma
    with pytest.raises(FriendlyError, match="'QLoRA' is not a run.*'LoRA q,v'"):
        runtime.chosen_runs(names, "QLoRA")
