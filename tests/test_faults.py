"""helpers.faults: NB_FAULT's forms, its errors, and when each fault fires (Trainer and hand-written loop).
CPU only, a few seconds (a two-layer network in the Trainer, no model download)."""
import json

import pytest
import torch
from transformers import Trainer, TrainingArguments

from helpers import faults, oom
from helpers.errors import FriendlyError


@pytest.fixture(autouse=True)
def no_fault_from_outside(monkeypatch):
    """A fault set for a whole test session (e.g. to run the notebooks with it) must not leak in here."""
    monkeypatch.delenv(faults.FAULT_ENV, raising=False)


class Net(torch.nn.Module):
    """The smallest model the Trainer trains and checkpoints: a regression with dropout."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))

    def forward(self, x, y):
        return {"loss": torch.nn.functional.mse_loss(self.layers(x).squeeze(-1), y)}


def trainer(output_dir, **overrides):
    torch.manual_seed(0)
    rows = [{"x": torch.randn(4), "y": torch.randn(())} for _ in range(32)]
    settings = dict(output_dir=str(output_dir), per_device_train_batch_size=4, max_steps=6, save_steps=2,
                    learning_rate=1e-2, report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=100,
                    dataloader_pin_memory=False)
    return Trainer(model=Net(), args=TrainingArguments(**{**settings, **overrides}), train_dataset=rows)


def test_unset_or_empty_means_no_fault(monkeypatch):
    monkeypatch.delenv(faults.FAULT_ENV, raising=False)
    assert faults.from_env() is None and faults.callback() is None
    monkeypatch.setenv(faults.FAULT_ENV, "  ")
    assert faults.from_env() is None
    faults.before_step(1)
    faults.after_step(5, saved=True)


@pytest.mark.parametrize("text, kind, step", [("disconnect@3", "disconnect", 3), (" OOM @ 12 ", "oom", 12)])
def test_accepted_forms(monkeypatch, text, kind, step):
    monkeypatch.setenv(faults.FAULT_ENV, text)
    assert faults.from_env() == faults.Fault(kind, step)


@pytest.mark.parametrize("text", ["disconnect", "crash@2", "oom@0", "oom@two", "disconnect@3,oom@4"])
def test_malformed_fault_names_the_accepted_forms(monkeypatch, text):
    monkeypatch.setenv(faults.FAULT_ENV, text)
    with pytest.raises(FriendlyError) as caught:
        faults.from_env()
    message = str(caught.value)
    assert repr(text) in message and "disconnect@N" in message and "oom@N" in message


def test_the_disconnect_says_what_to_do():
    assert str(faults.SimulatedDisconnect(4)) == (
        "simulated runtime disconnect after step 4 (NB_FAULT); run the notebook again to resume")
    assert faults.SimulatedDisconnect(4)._render_traceback_() == [
        "SimulatedDisconnect: simulated runtime disconnect after step 4 (NB_FAULT); run the notebook again to resume"]


def test_loop_disconnect_fires_after_a_save_at_or_after_its_step_unless_resumed_past_it(monkeypatch):
    monkeypatch.setenv(faults.FAULT_ENV, "disconnect@4")
    faults.after_step(4, saved=False)  # no checkpoint yet: a disconnect now would lose the step
    faults.after_step(3, saved=True)
    with pytest.raises(faults.SimulatedDisconnect, match="after step 5"):
        faults.after_step(5, saved=True)  # the first checkpoint at or after step 4
    faults.after_step(6, saved=True, resumed_from=4)  # the run survived it already: it finishes


def test_oom_is_pytorchs_own_error_at_the_start_of_its_step(monkeypatch):
    monkeypatch.setenv(faults.FAULT_ENV, "oom@3")
    faults.before_step(2)
    with pytest.raises(torch.cuda.OutOfMemoryError, match="^CUDA out of memory") as caught:
        faults.before_step(3)
    assert oom.is_out_of_memory(caught.value) and "simulated" in str(caught.value)
    faults.before_step(3, resumed_from=3)


def test_trainer_disconnects_right_after_the_checkpoint_is_written(monkeypatch, tmp_path):
    monkeypatch.setenv(faults.FAULT_ENV, "disconnect@3")
    t = trainer(tmp_path)
    t.add_callback(faults.callback())
    with pytest.raises(faults.SimulatedDisconnect, match="after step 4"):
        t.train()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4


def test_trainer_resumed_past_the_fault_finishes(monkeypatch, tmp_path):
    t = trainer(tmp_path, max_steps=4)
    t.train()
    monkeypatch.setenv(faults.FAULT_ENV, "disconnect@3")
    t = trainer(tmp_path)
    t.add_callback(faults.callback())
    t.train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
    assert t.state.global_step == 6


def test_trainer_runs_out_of_memory_at_the_start_of_the_step(monkeypatch, tmp_path):
    monkeypatch.setenv(faults.FAULT_ENV, "oom@3")
    t = trainer(tmp_path, save_strategy="no")
    t.add_callback(faults.callback())
    with pytest.raises(torch.cuda.OutOfMemoryError, match="step 3"):
        t.train()
    assert t.state.global_step == 2
