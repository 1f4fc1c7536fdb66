"""helpers.checkpoints: resuming after a disconnect ends with the weights of an uninterrupted run.

The Trainer case trains a tiny BLOOM classifier with LoRA (dropout 0.3), gradient accumulation 2,
paged 8-bit AdamW (its 8-bit state in use: the LoRA matrices have >= 4096 values), a warm-up and
linear schedule and `group_by_length` batches, for 2 epochs; the disconnect comes in the second
epoch, half-way through it. The controls show the check can fail: without the RNG state, or with
transformers' own resume under group_by_length, the weights differ. CPU only, about 10 s.
"""
import contextlib
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
import transformers
from peft import LoraConfig, PromptEncoderConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments

from helpers import checkpoints, faults
from helpers.errors import FriendlyError


@pytest.fixture(autouse=True)
def no_fault_from_outside(monkeypatch):
    """A fault set for a whole test session (e.g. to run the notebooks with it) must not leak in here."""
    monkeypatch.delenv(faults.FAULT_ENV, raising=False)


# Three recipes, each with a trap of its own for resuming (see train_or_resume's helpers):
# LoRA under group_by_length (data order), LoRA trained in bf16 as TRL does for QLoRA (dtype on reload),
# P-tuning (peft saves the prompt encoder's output, not the encoder).
RECIPES = {
    "lora": dict(optim="paged_adamw_8bit", train_sampling_strategy="group_by_length"),
    "lora-bf16": dict(optim="adamw_torch", train_sampling_strategy="group_by_length"),
    "ptuning": dict(optim="adamw_torch", train_sampling_strategy="random"),
}


def make_trainer(path, output_dir, recipe="lora"):
    """The same model and Trainer every time, as a notebook run again from the top builds them."""
    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(5, 500, rng.integers(4, 14)).tolist(), "labels": int(rng.integers(2))}
            for _ in range(24)]
    transformers.set_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    base.config.pad_token_id = 3
    if recipe == "ptuning":
        model = get_peft_model(base, PromptEncoderConfig(task_type="SEQ_CLS", num_virtual_tokens=4))
    else:
        model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=64, lora_alpha=16, lora_dropout=0.3,
                                                target_modules=["query_key_value"]))
    if recipe == "lora-bf16":
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.data = p.data.to(torch.bfloat16)
    args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=4, gradient_accumulation_steps=2, num_train_epochs=2,
        learning_rate=1e-2, lr_scheduler_type="linear", warmup_steps=1, save_strategy="steps", save_steps=2, seed=0,
        report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=100, dataloader_pin_memory=False,
        **RECIPES[recipe])
    collator = DataCollatorWithPadding(transformers.PreTrainedTokenizerFast.from_pretrained(path))
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    trainer.remove_callback(transformers.PrinterCallback)
    return trainer


def trained(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def run(path, directory, recipe, helper=True, fault=None, resume_from=None):
    """Train into `directory`: (trainable weights or None after a disconnect, what it printed).

    helper: through train_or_resume (NB_FAULT set to `fault`); else transformers alone, resuming from
    `resume_from` when given. The fault stays set for a resumed run, which must not fire again.
    """
    mp = pytest.MonkeyPatch()
    if fault:
        mp.setenv(faults.FAULT_ENV, fault)
    else:
        mp.delenv(faults.FAULT_ENV, raising=False)
    printed = io.StringIO()
    try:
        trainer = make_trainer(path, directory, recipe)
        with contextlib.redirect_stdout(printed):
            if helper:
                checkpoints.train_or_resume(trainer)
            else:
                if fault:
                    trainer.add_callback(faults.callback())
                trainer.train(resume_from_checkpoint=resume_from)
        return trained(trainer), printed.getvalue()
    except faults.SimulatedDisconnect:
        return None, printed.getvalue()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def runs(tiny_bloom, tmp_path_factory):
    """{scenario: (weights, printed)}: each recipe uninterrupted, and cut after step 4 (second epoch) then resumed."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for recipe in RECIPES:
        whole, cut = root / recipe / "whole", root / recipe / "cut"
        out[recipe] = run(tiny_bloom, whole, recipe)
        assert run(tiny_bloom, cut, recipe, fault="disconnect@4")[0] is None
        if recipe == "lora":
            shutil.copytree(cut / "checkpoint-4", root / "no-rng" / "checkpoint-4")
            (root / "no-rng" / "checkpoint-4" / "rng_state.pth").unlink()
            out["lora without rng state"] = run(tiny_bloom, root / "no-rng", recipe)
            half = cut / "checkpoint-6"  # a save cut short by the disconnect: no trainer_state.json
            half.mkdir()
            (half / "adapter_model.safetensors").write_bytes(b"\0" * 10)
        else:  # transformers alone, resuming from a copy of the same checkpoint
            shutil.copytree(cut / "checkpoint-4", root / recipe / "plain" / "checkpoint-4")
            out[f"{recipe} plain resumed"] = run(tiny_bloom, root / recipe / "plain", recipe, helper=False,
                                                 resume_from=str(root / recipe / "plain" / "checkpoint-4"))
        out[f"{recipe} resumed"] = run(tiny_bloom, cut, recipe, fault="disconnect@4")
    # group_by_length under transformers alone: its own uninterrupted run, cut and resumed
    out["lora plain"] = run(tiny_bloom, root / "plain-whole", "lora", helper=False)
    run(tiny_bloom, root / "plain-cut", "lora", helper=False, fault="disconnect@4")
    out["lora plain cut and resumed"] = run(tiny_bloom, root / "plain-cut", "lora", helper=False,
                                            resume_from=str(root / "plain-cut" / "checkpoint-4"))
    return {name: weights for name, (weights, _) in out.items()}, {name: text for name, (_, text) in out.items()}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_resumed_run_ends_with_the_uninterrupted_runs_weights(runs, recipe):
    weights, _ = runs
    assert same(weights[f"{recipe} resumed"], weights[recipe])


def test_the_8_bit_optimizer_state_is_exercised(runs):
    weights, _ = runs
    assert any("lora_A" in name and w.numel() >= 4096 for name, w in weights["lora"].items()), \
        "bitsandbytes keeps 32-bit state for tensors under 4096 values"


def test_it_says_where_it_starts(runs):
    _, printed = runs
    assert printed["lora"].startswith("no checkpoint: starting at step 0")
    assert "resuming from step 4 of 6" in printed["lora resumed"]
    assert "removing checkpoint-6: half-written" in printed["lora resumed"]


def test_without_the_rng_state_the_weights_differ(runs):
    """LoRA dropout draws random masks: the check above would catch a resume that lost them."""
    weights, _ = runs
    assert not same(weights["lora without rng state"], weights["lora"])


def test_transformers_alone_does_not_resume_group_by_length_exactly(runs):
    """Why train_or_resume seeds the length-grouped sampler by epoch."""
    weights, _ = runs
    assert not same(weights["lora plain cut and resumed"], weights["lora plain"])


def test_transformers_alone_resumes_bf16_adapters_in_fp32(runs):
    """TRL trains QLoRA adapters in bf16; peft reloads a checkpoint's adapter in fp32 unless told otherwise."""
    weights, _ = runs
    lora = [name for name in weights["lora-bf16"] if "lora_" in name]
    assert {weights["lora-bf16"][name].dtype for name in lora} == {torch.bfloat16}
    assert {weights["lora-bf16 plain resumed"][name].dtype for name in lora} == {torch.float32}


def test_transformers_alone_cannot_resume_p_tuning(runs):
    """peft saves the prompt encoder's output, not the encoder: a resumed run trains another model."""
    weights, _ = runs
    assert not same(weights["ptuning plain resumed"], weights["ptuning"])


def write_checkpoint(folder, step, state=True, text=None):
    folder.mkdir(parents=True)
    if state:
        (folder / "trainer_state.json").write_text(text if text is not None else json.dumps({"global_step": step}))


def test_last_checkpoint_skips_half_written_ones(tmp_path):
    assert checkpoints.last_checkpoint(tmp_path / "missing") is None
    assert checkpoints.last_checkpoint(tmp_path) is None
    write_checkpoint(tmp_path / "checkpoint-2", 2)
    write_checkpoint(tmp_path / "checkpoint-10", 10)
    write_checkpoint(tmp_path / "checkpoint-12", 12, state=False)  # stopped before the state was written
    write_checkpoint(tmp_path / "checkpoint-14", 14, text='{"global_st')  # stopped while writing it
    write_checkpoint(tmp_path / "checkpoint-16", 16, text='{"global_step": 8}')  # not its own state
    (tmp_path / "checkpoint-20.tmp").mkdir()
    assert checkpoints.last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_checkpoint_root_env_then_drive_then_outputs(tmp_path, monkeypatch):
    monkeypatch.delenv(checkpoints.CHECKPOINT_ENV, raising=False)
    monkeypatch.setattr(checkpoints.runtime, "in_colab", lambda: False)
    monkeypatch.setattr(checkpoints.runtime, "scratch_dir", lambda profile: tmp_path / "outputs" / profile)
    local = checkpoints.checkpoint_root("04_nb", "smoke")
    assert local == tmp_path / "outputs" / "smoke" / "checkpoints" / "04_nb" and local.is_dir()
    assert "survive a kernel restart" in checkpoints.describe(local)

    drive = tmp_path / "drive"
    monkeypatch.setattr(checkpoints, "DRIVE_MOUNT", drive)
    monkeypatch.setattr(checkpoints, "DRIVE_HOME", drive / "MyDrive")
    monkeypatch.setattr(checkpoints.runtime, "in_colab", lambda: True)
    on_runtime_disk = checkpoints.checkpoint_root("04_nb", "full")  # Colab, Drive not mounted
    assert "NOT a runtime disconnect" in checkpoints.describe(on_runtime_disk)
    (drive / "MyDrive").mkdir(parents=True)
    root = checkpoints.checkpoint_root("04_nb", "full")
    assert root == drive / "MyDrive" / "finetune-on-a-budget" / "checkpoints" / "04_nb" / "full" and root.is_dir()
    assert "Google Drive: they survive a runtime disconnect" in checkpoints.describe(root)
    monkeypatch.setenv(checkpoints.DRIVE_ENV, "0")
    assert checkpoints.checkpoint_root("04_nb", "full") == on_runtime_disk
    monkeypatch.delenv(checkpoints.DRIVE_ENV)

    monkeypatch.setenv(checkpoints.CHECKPOINT_ENV, str(tmp_path / "mine"))
    assert checkpoints.checkpoint_root("04_nb", "full") == tmp_path / "mine" / "04_nb" / "full"


def test_mount_drive_only_in_colab_and_not_when_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints.runtime, "in_colab", lambda: False)
    assert checkpoints.mount_drive() is False
    monkeypatch.setattr(checkpoints.runtime, "in_colab", lambda: True)
    monkeypatch.setattr(checkpoints, "DRIVE_HOME", tmp_path / "MyDrive")
    (tmp_path / "MyDrive").mkdir()
    assert checkpoints.mount_drive() is True  # already mounted: nothing to ask
    monkeypatch.setenv(checkpoints.DRIVE_ENV, "0")
    assert checkpoints.mount_drive() is False


class Saved:
    """Stands in for a model: save_pretrained writes a file."""

    def save_pretrained(self, directory):
        os.makedirs(directory)
        open(os.path.join(directory, "adapter_model.safetensors"), "wb").close()


def test_run_store_skips_finished_runs_and_says_so(tmp_path, capsys):
    store = checkpoints.RunStore(tmp_path)
    assert store.finished("batch 1 × 16") is None
    write_checkpoint(store.run_dir("batch 1 × 16") / "checkpoint-2", 2)
    record = store.save("batch 1 × 16", {"wall_s": np.float32(1.5), "losses": np.array([0.5, 0.25])}, model=Saved())
    assert record == {"wall_s": 1.5, "losses": [0.5, 0.25]}, "what a restarted notebook will read back"
    assert not store.run_dir("batch 1 × 16").exists(), "a finished run's checkpoints are dead weight"
    assert (store.model_dir("batch 1 × 16") / "adapter_model.safetensors").exists()
    capsys.readouterr()
    assert store.finished("batch 1 × 16") == {"wall_s": 1.5, "losses": [0.5, 0.25]}
    assert "batch 1 × 16: finished before" in capsys.readouterr().out
    assert store.folder("batch 1 x 16") != store.folder("batch 1 × 16"), "names that slug alike stay apart"
    (store.folder("batch 16")).mkdir()
    (store.folder("batch 16") / "record.json").write_text('{"name": "batch')  # cut short while saving
    assert store.finished("batch 16") is None


# ----------------------------------------------------------------------------- a hand-written loop
class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.drop, self.head = torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.inp(x)))).squeeze(-1)


def loop(directory, peft=False, every=4):
    """Two epochs of 6 updates (accumulation 2), resumable; returns the trainable weights and losses."""
    torch.manual_seed(0)
    model = MLP()
    if peft:
        lora = LoraConfig(r=4, lora_dropout=0.3, target_modules=["inp"], modules_to_save=["head"])
        model = get_peft_model(model, lora)
    data = torch.utils.data.TensorDataset(torch.randn(48, 4, generator=torch.Generator().manual_seed(1)),
                                          torch.randn(48, generator=torch.Generator().manual_seed(2)))
    order = torch.Generator()
    loader = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, generator=order)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / 12)
    ckpt = checkpoints.LoopCheckpoint(directory, every, model=model, optimizer=optimizer, scheduler=scheduler)
    progress = ckpt.restore() or {"step": 0, "epoch": 0, "batch": -1, "losses": []}
    step, losses = progress["step"], progress["losses"]
    for epoch in range(progress["epoch"], 2):
        order.manual_seed(100 + epoch)  # the epoch's order depends on the epoch alone
        for i, (x, y) in enumerate(loader):
            if (epoch, i) <= (progress["epoch"], progress["batch"]):
                continue  # done before the disconnect
            loss = torch.nn.functional.mse_loss(model(x), y)
            (loss / 2).backward()
            if (i + 1) % 2 == 0:
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                losses.append(loss.item())
                ckpt.after_step(step, epoch=epoch, batch=i, losses=losses)
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, losses


@pytest.mark.parametrize("peft", [False, True], ids=["full-state", "peft-trainable-only"])
def test_loop_resumed_after_a_disconnect_ends_with_the_same_weights(tmp_path, monkeypatch, peft):
    whole, whole_losses = loop(tmp_path / "whole", peft)
    monkeypatch.setenv(faults.FAULT_ENV, "disconnect@7")  # the first save after it: step 8, in the second epoch
    with pytest.raises(faults.SimulatedDisconnect, match="after step 8"):
        loop(tmp_path / "cut", peft)
    saved = torch.load(tmp_path / "cut" / "step-00000008.pt", weights_only=True)
    assert saved["model_kind"] == ("trainable" if peft else "full")
    if peft:
        assert all("lora_" in n or "modules_to_save" in n for n in saved["model"])
    resumed, resumed_losses = loop(tmp_path / "cut", peft)
    assert same(resumed, whole) and resumed_losses == whole_losses
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["step-00000008.pt", "step-00000012.pt"]


def test_loop_without_the_rng_restore_differs(tmp_path, monkeypatch):
    whole, _ = loop(tmp_path / "whole")
    monkeypatch.setenv(faults.FAULT_ENV, "disconnect@8")
    with pytest.raises(faults.SimulatedDisconnect):
        loop(tmp_path / "cut")
    monkeypatch.setattr(checkpoints, "_restore_rng", lambda states: None)
    resumed, _ = loop(tmp_path / "cut")
    assert not same(resumed, whole)


def test_loop_falls_back_when_the_newest_checkpoint_is_unreadable(tmp_path, capsys):
    loop(tmp_path)  # saves at 4, 8, 12; keeps 8 and 12
    (tmp_path / "step-00000012.pt").write_bytes(b"cut short")
    (tmp_path / ".step-00000016.pt.tmp").write_bytes(b"a save in progress")
    model = MLP()
    optimizer = torch.optim.AdamW(model.parameters())
    progress = checkpoints.LoopCheckpoint(tmp_path, 4, model=model, optimizer=optimizer).restore()
    assert progress["step"] == 8 and "skipping step-00000012.pt: unreadable" in capsys.readouterr().out


def test_loop_progress_must_be_plain_values(tmp_path):
    model = MLP()
    ckpt = checkpoints.LoopCheckpoint(tmp_path, 1, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(FriendlyError, match="float"):
        ckpt.save(1, history={"loss": [np.float32(0.5)]})
    assert not list(tmp_path.iterdir())


def test_save_timer_counts_the_seconds_spent_writing_checkpoints(tmp_path):
    """Notebook 04 reports training speed without checkpoint writes: the timer must see each save."""
    import time as clock

    from transformers import TrainerCallback

    from conftest import tiny_trainer

    class SlowSave(TrainerCallback):       # a save that takes 0.2 s longer (runs before the timer's on_save)
        def on_save(self, args, state, control, **kwargs):
            clock.sleep(0.2)

    timer = checkpoints.SaveTimer()
    tiny_trainer(tmp_path, [SlowSave(), timer], max_steps=4, save_strategy="steps", save_steps=2).train()
    assert len(list(tmp_path.glob("checkpoint-*"))) == 2
    assert 0.4 <= timer.seconds < 5.0      # both saves, each with its 0.2 s


def test_run_identity_counts_a_files_content_and_the_data_variables(tmp_path, monkeypatch):
    data_file = tmp_path / "mine.csv"
    data_file.write_text("text,label\na,1\n")
    monkeypatch.delenv("NB_TEXT_COLUMN", raising=False)
    first = checkpoints.run_identity(settings={"lr": 1e-3}, data=str(data_file))
    assert first == checkpoints.run_identity(settings={"lr": 1e-3}, data=str(data_file))
    data_file.write_text("text,label\nb,0\n")                       # same name, other content
    assert checkpoints.run_identity(settings={"lr": 1e-3}, data=str(data_file)) != first
    monkeypatch.setenv("NB_TEXT_COLUMN", "review")
    assert checkpoints.run_identity(settings={"lr": 1e-3}, data=str(data_file))["data_variables"] == \
        {"NB_TEXT_COLUMN": "review"}


def test_claim_moves_another_runs_checkpoints_aside(tmp_path, capsys):
    folder = tmp_path / "trainer"
    mine, other = {"settings": {"lr": 1e-3}}, {"settings": {"lr": 2e-3}}
    checkpoints.claim(folder, mine)
    (folder / "checkpoint-5").mkdir()
    checkpoints.claim(folder, mine)                               # the same run: its checkpoints stay
    assert (folder / "checkpoint-5").is_dir()
    checkpoints.claim(folder, other)                              # another run: they must not be resumed
    assert not (folder / "checkpoint-5").exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("trainer.previous-")]
    assert len(aside) == 1 and (aside[0] / "checkpoint-5").is_dir()
    assert "different run (settings)" in capsys.readouterr().out
    legacy = tmp_path / "legacy"
    (legacy / "checkpoint-3").mkdir(parents=True)                 # from before identities were recorded
    checkpoints.claim(legacy, mine)
    assert not (legacy / "checkpoint-3").exists() and "no identity recorded" in capsys.readouterr().out


def test_resume_step_names_the_step_and_never_resumes_another_run(tmp_path, capsys):
    folder = tmp_path / "trainer"
    assert checkpoints.resume_step(folder, identity={"data": "a.csv"}) is None     # fresh
    write_checkpoint(folder / "checkpoint-4", 4)
    assert checkpoints.resume_step(folder, identity={"data": "a.csv"}) == 4
    assert checkpoints.resume_step(folder) == 4                                    # no identity: as it is
    assert checkpoints.resume_step(folder, identity={"data": "b.csv"}) is None     # another run's: set aside
    assert "different run (data)" in capsys.readouterr().out


def test_run_store_does_not_reuse_a_run_of_other_data(tmp_path, capsys):
    store = checkpoints.RunStore(tmp_path / "runs", identity={"data": "a.csv"})
    store.save("LoRA", {"test_accuracy": 0.9})
    assert checkpoints.RunStore(tmp_path / "runs", identity={"data": "a.csv"}).finished("LoRA") == {"test_accuracy": 0.9}
    assert checkpoints.RunStore(tmp_path / "runs", identity={"data": "b.csv"}).finished("LoRA") is None
    assert "different run (data)" in capsys.readouterr().out


def test_every_training_notebook_ties_its_checkpoints_to_its_settings_and_data():
    """Each notebook names the run its checkpoints belong to, so changed data is never resumed or reused."""
    from pathlib import Path

    import nbformat

    for path in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        # the identity names the profile's settings and the data's source (run_identity hashes a file's content)
        assert re.search(r"run_identity\((?=[^)]*\b(settings|training)=)(?=[^)]*\bdata=source\b)", code), path.name
        # ... and reaches what claims the checkpoint folder: the measured run, a run store, the loop's study
        assert re.search(r"(RunStore|resume_step|training\.measured|Study)\([\s\S]{0,400}?identity=", code), path.name
        assert "last_checkpoint(" not in code, f"{path.name}: resume_step says where a run resumes"
