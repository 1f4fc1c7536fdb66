"""helpers.checkpoints on Google Drive in Colab, simulated: deleting without filling Drive's trash, room for the
checkpoints before training, and a failed mount that says so loudly.

Colab is `runtime.in_colab() -> True`; the Drive mount, the runtime's disk and the checkout's outputs are folders
under tmp_path; `google.colab.drive` is a stand-in module whose mount succeeds or raises. Drive's trash is
simulated too: every file deleted (shutil.rmtree, os.unlink, Path.unlink) is recorded with the size it had then,
which is what the trash would keep and count against the free 15 GB. CPU only, a few seconds.
"""
import json
import os
import shutil
import sys
import types
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from conftest import tiny_trainer

from helpers import checkpoints, faults, reload

GIB = 2**30
Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def colab(tmp_path, monkeypatch):
    """Colab, with Drive's mount in tmp_path/drive (MyDrive appears once mounted) and the runtime's disk in tmp_path."""
    monkeypatch.setattr(checkpoints.runtime, "in_colab", lambda: True)
    monkeypatch.setattr(checkpoints, "DRIVE_MOUNT", tmp_path / "drive")
    monkeypatch.setattr(checkpoints, "DRIVE_HOME", tmp_path / "drive" / "MyDrive")
    monkeypatch.setattr(checkpoints, "RUNTIME_DISK", tmp_path / "content", raising=False)  # (new with local_dir)
    monkeypatch.setattr(checkpoints.runtime, "scratch_dir", lambda profile: tmp_path / "content" / "repo" / profile)
    for name in (checkpoints.CHECKPOINT_ENV, checkpoints.DRIVE_ENV, faults.FAULT_ENV):  # conftest sets the first
        monkeypatch.delenv(name, raising=False)
    return types.SimpleNamespace(mount=tmp_path / "drive", home=tmp_path / "drive" / "MyDrive",
                                 disk=tmp_path / "content")


@pytest.fixture
def mounted(colab):
    colab.home.mkdir(parents=True)
    return colab


@pytest.fixture
def trash(monkeypatch):
    """{path: bytes it held when deleted} of every file deleted while the test runs: what Drive's trash would keep."""
    deleted = {}
    real_rmtree, real_unlink = shutil.rmtree, os.unlink

    def rmtree(path, *args, **kwargs):
        for f in Path(path).rglob("*"):
            if f.is_file():
                deleted[str(f)] = f.stat().st_size
        return real_rmtree(path, *args, **kwargs)

    def unlink(path, *args, dir_fd=None, **kwargs):
        if dir_fd is None and os.path.isfile(path):  # (rmtree's own unlinks pass dir_fd: counted above)
            deleted[str(path)] = os.stat(path).st_size
        return real_unlink(path, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "remove", unlink)
    return deleted


def on(root, trash):
    """The trash entries of files that were under `root`."""
    return {path: size for path, size in trash.items() if Path(path).is_relative_to(root)}


def fake_drive_module(monkeypatch, mount):
    """google.colab.drive as Colab has it, with `mount` standing in for drive.mount."""
    colab_module, drive_module = types.ModuleType("google.colab"), types.ModuleType("google.colab.drive")
    drive_module.mount = mount
    colab_module.drive = drive_module
    monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive_module)


def fill(path, n_bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"w" * n_bytes)


def disk_usage_by_place(monkeypatch, colab, drive_free_gib, disk_free_gib=100.0):
    """shutil.disk_usage answering `drive_free_gib` on the Drive mount and `disk_free_gib` elsewhere."""
    def usage(path):
        free = drive_free_gib if Path(path).resolve().is_relative_to(colab.mount.resolve()) else disk_free_gib
        return Usage(200 * GIB, 0, int(free * GIB))

    monkeypatch.setattr(shutil, "disk_usage", usage)


# ----------------------------------------------------------------------------- remove
def test_remove_empties_every_file_on_drive_before_deleting_it(mounted, trash, monkeypatch, capsys):
    folder = mounted.home / "ckpt" / "checkpoint-5"
    fill(folder / "model.safetensors", 3000)
    fill(folder / "nested" / "optimizer.pt", 2000)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 5}))
    single = mounted.home / "ckpt" / "step-00000005.pt"
    fill(single, 1000)
    emptied = []
    real_truncate = os.truncate
    monkeypatch.setattr(os, "truncate",
                        lambda path, length: (emptied.append(Path(path).name), real_truncate(path, length)))

    freed = checkpoints.remove(folder)
    assert freed == 5000 + len(json.dumps({"global_step": 5}))
    assert checkpoints.remove(single) == 1000
    assert not folder.exists() and not single.exists()
    assert len(trash) == 4 and set(trash.values()) == {0}, f"Drive's trash would keep bytes: {trash}"
    assert emptied[0] == "trainer_state.json", "a half-emptied checkpoint must not read as complete"
    printed = capsys.readouterr().out
    assert "freed on Google Drive" in printed and "KiB" in printed and len(printed.splitlines()) == 2


def test_remove_elsewhere_is_a_plain_delete(mounted, trash, tmp_path, capsys):
    folder = tmp_path / "local" / "checkpoint-5"
    fill(folder / "model.safetensors", 3000)
    assert checkpoints.remove(folder) == 3000 and not folder.exists()
    assert trash == {str(folder / "model.safetensors"): 3000}, "not on Drive: no need to empty anything first"
    assert checkpoints.remove(tmp_path / "missing") == 0
    printed = capsys.readouterr().out
    assert printed.count("removed") == 1 and "Google Drive" not in printed


# ----------------------------------------------------------------------------- what the helpers delete
class Model(torch.nn.Module):
    """Stands in for a model: save_pretrained writes 4 KiB."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def save_pretrained(self, directory):
        fill(Path(directory) / "model.safetensors", 4096)


def test_loop_checkpoint_rotation_on_drive_leaves_nothing_in_the_trash(mounted, trash, capsys):
    model = Model()
    directory = mounted.home / "loop"
    saver = checkpoints.LoopCheckpoint(directory, 1, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                       keep=1)
    for step in (1, 2, 3):
        saver.save(step)
    assert sorted(p.name for p in directory.iterdir()) == ["step-00000003.pt"]
    assert len(trash) == 2 and set(trash.values()) == {0}, f"Drive's trash would keep bytes: {trash}"
    fill(directory / ".step-00000004.pt.tmp", 500)              # a save that a disconnect cut short
    assert saver.restore()["step"] == 3
    assert sorted(p.name for p in directory.iterdir()) == ["step-00000003.pt"]
    assert len(trash) == 3 and set(trash.values()) == {0}, trash
    assert "freed on Google Drive" in capsys.readouterr().out


def test_run_store_on_drive_empties_what_it_replaces_and_a_finished_runs_checkpoints(mounted, trash):
    store = checkpoints.RunStore(mounted.home / "runs")
    fill(store.run_dir("LoRA") / "checkpoint-2" / "adapter_model.safetensors", 2048)
    store.save("LoRA", {"accuracy": 0.5}, model=Model())
    store.save("LoRA", {"accuracy": 0.6}, model=Model())        # run again: the saved model is replaced
    assert (store.model_dir("LoRA") / "model.safetensors").stat().st_size == 4096
    assert len(trash) == 2 and set(trash.values()) == {0}, trash


def test_claim_on_drive_says_how_much_the_set_aside_run_keeps_and_how_to_free_it(mounted, capsys, monkeypatch):
    folder = mounted.home / checkpoints.DRIVE_FOLDER / "04_nb" / "full" / "runs"
    checkpoints.claim(folder, {"data": "a.csv"})
    fill(folder / "batch 1" / "trainer" / "step-00000004.pt", 3 * 2**20)
    checkpoints.claim(folder, {"data": "b.csv"})
    aside = next(p for p in folder.parent.iterdir() if ".previous-" in p.name)
    printed = capsys.readouterr().out
    assert "different run (data)" in printed and "3 MiB of your Google Drive" in printed
    assert f"checkpoints.remove({str(aside)!r})" in printed
    disk_usage_by_place(monkeypatch, mounted, drive_free_gib=1.0)
    with pytest.raises(checkpoints.NotEnoughSpace, match=r"frees 3 MiB \(another run's, set aside\)"):
        checkpoints.require_space(mounted.home / "x", 5.0, "A model")


# ----------------------------------------------------------------------------- the Trainer's rotation
def folders(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("checkpoint-"))


def test_the_trainers_rotation_on_drive_empties_the_checkpoints_it_deletes(mounted, trash, tmp_path, capsys):
    on_drive, local = mounted.home / "trainer", tmp_path / "local" / "trainer"
    half_written = on_drive / "checkpoint-9"                       # cut short by a disconnect: no trainer_state.json
    fill(half_written / "model.safetensors", 1000)
    for output_dir in (on_drive, local):
        trainer = tiny_trainer(output_dir, [], max_steps=4, save_strategy="steps", save_steps=1, save_total_limit=1)
        checkpoints.train_or_resume(trainer)
    assert folders(on_drive) == folders(local) == ["checkpoint-4"], "the same rule as transformers' own rotation"
    assert checkpoints.last_checkpoint(on_drive) == str(on_drive / "checkpoint-4"), "the kept one is complete"
    rotated = on(on_drive, trash)
    assert {Path(p).parent.name for p in rotated} == {"checkpoint-1", "checkpoint-2", "checkpoint-3", "checkpoint-9"}
    assert set(rotated.values()) == {0}, f"Drive's trash would keep bytes: {rotated}"
    assert min(on(local, trash).values()) > 0, "off Drive: transformers' own rotation, a plain delete"
    assert "removing checkpoint-9: half-written" in capsys.readouterr().out


def test_the_trainers_final_clean_up_on_drive_empties_what_it_deletes(mounted, trash, tmp_path):
    """load_best_model_at_end with save_total_limit=1: at the end the Trainer deletes all but the best checkpoint."""
    on_drive, local = mounted.home / "trainer", tmp_path / "local" / "trainer"
    for output_dir in (on_drive, local):
        torch.manual_seed(0)
        trainer = tiny_trainer(output_dir, [], eval_rows=4, max_steps=3, save_strategy="steps", save_steps=1,
                               eval_strategy="steps", eval_steps=1, save_total_limit=1, load_best_model_at_end=True,
                               metric_for_best_model="loss", greater_is_better=True, learning_rate=0.1)
        checkpoints.train_or_resume(trainer)                   # the loss falls, so the "best" is the first one
    assert folders(on_drive) == folders(local) == ["checkpoint-1"]
    deleted = on(on_drive, trash)
    assert {Path(p).parent.name for p in deleted} == {"checkpoint-2", "checkpoint-3"}
    assert set(deleted.values()) == {0}, f"Drive's trash would keep bytes: {deleted}"


@pytest.mark.parametrize("limit,best", [(1, None), (2, None), (3, None), (1, 2), (2, 1), (2, 6)])
def test_rotation_on_drive_keeps_what_transformers_keeps(mounted, tmp_path, limit, best):
    from transformers import trainer_utils

    kept = {}
    for name, run_dir in (("drive", mounted.home / "run"), ("transformers", tmp_path / "run")):
        for step in range(1, 7):
            (run_dir / f"checkpoint-{step}").mkdir(parents=True)
        best_dir = str(run_dir / f"checkpoint-{best}") if best else None
        rotate = checkpoints._rotate_checkpoints_through_remove if name == "drive" else trainer_utils.rotate_checkpoints
        rotate(str(run_dir), save_total_limit=limit, best_model_checkpoint=best_dir)
        kept[name] = folders(run_dir)
    assert kept["drive"] == kept["transformers"]


# ----------------------------------------------------------------------------- room
def test_require_space_refuses_a_write_that_does_not_fit_and_says_how_to_make_room(mounted, monkeypatch):
    disk_usage_by_place(monkeypatch, mounted, drive_free_gib=2.0, disk_free_gib=50.0)
    with pytest.raises(checkpoints.NotEnoughSpace) as refused:
        checkpoints.require_space(mounted.home / "ckpt" / "merged", 6.7, "The merged model")
    message = str(refused.value)
    for words in ("The merged model needs about 6.7 GiB", "2.0 GiB is free", "(Google Drive)", "empty its trash",
                  "NB_DRIVE=0", "fewer checkpoints"):
        assert words in message, message
    assert isinstance(refused.value, checkpoints.FriendlyError)
    assert checkpoints.require_space(mounted.disk / "merged", 6.7, "The merged model") == 50.0
    with pytest.raises(checkpoints.NotEnoughSpace, match="this runtime's disk.*NB_CHECKPOINT_DIR"):
        checkpoints.require_space(mounted.disk / "merged", 60, "The merged model")


def test_plan_keeps_checkpoints_on_drive_when_they_fit_and_on_the_runtime_disk_loudly_when_not(mounted, monkeypatch,
                                                                                              capsys):
    drive_root = mounted.home / checkpoints.DRIVE_FOLDER / "04_nb" / "full"
    disk_usage_by_place(monkeypatch, mounted, drive_free_gib=20.0)
    assert checkpoints.plan("04_nb", "full", checkpoint_gib=6.7, kept=1, extra_gib=2.2) == drive_root
    assert "2 at once (1 kept + 1 being written) x 6.7 GiB + 2.2 GiB of other files = 15.6 GiB on " \
           "Google Drive, 20.0 GiB free: fits." in capsys.readouterr().out

    disk_usage_by_place(monkeypatch, mounted, drive_free_gib=9.1)
    root = checkpoints.plan("04_nb", "full", checkpoint_gib=6.7, kept=1, extra_gib=2.2)
    assert not checkpoints.on_drive(root) and root.is_relative_to(mounted.disk)
    printed = " ".join(capsys.readouterr().out.split())           # the framed notice wraps its lines
    for words in ("= 15.6 GiB on Google Drive, 9.1 GiB free: does NOT fit.", "Keeping them on the runtime's disk",
                  "LOST if the runtime disconnects", "empty its trash", "=" * 40):
        assert words in printed, printed
    assert "WARNING: checkpoints are NOT on Google Drive" in checkpoints.describe(root)

    # a checkpoint to resume from is room: training rotates it out (a sparse file: 6.7 GiB that take no disk)
    (drive_root / "runs").mkdir()
    with open(drive_root / "runs" / "step-00000100.pt", "wb") as f:
        f.truncate(int(6.7 * GIB))
    assert checkpoints.plan("04_nb", "full", checkpoint_gib=6.7, kept=1) == drive_root
    assert "9.1 GiB free + 6.7 GiB of checkpoints already there: fits." in capsys.readouterr().out


def test_plan_off_drive_refuses_what_does_not_fit(colab, monkeypatch, capsys):
    monkeypatch.setenv(checkpoints.DRIVE_ENV, "0")
    disk_usage_by_place(monkeypatch, colab, drive_free_gib=0.0, disk_free_gib=10.0)
    assert checkpoints.plan("05_nb", "full", checkpoint_gib=1.0, kept=1).is_relative_to(colab.disk)
    with pytest.raises(checkpoints.NotEnoughSpace, match="= 12.9 GiB on this runtime's disk, 10.0 GiB free: does NOT"):
        checkpoints.plan("05_nb", "full", checkpoint_gib=4.3, kept=2)


def test_checkpoint_size_counts_saved_weights_and_the_optimizer_state():
    from peft import LoraConfig, get_peft_model

    model = torch.nn.Sequential(torch.nn.Linear(16, 16))              # 272 fp32 parameters
    assert checkpoints.checkpoint_size_gib(model) * GIB == 272 * (4 + 8)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["0"]))  # 64 trainable; the base is not saved
    assert checkpoints.checkpoint_size_gib(lora) * GIB == 64 * (4 + 8)


def test_local_dir_is_the_runtime_disk(colab, monkeypatch, tmp_path):
    assert checkpoints.local_dir("01_nb", "full") == colab.disk / "outputs" / "full" / "01_nb-work"
    assert not checkpoints.on_drive(checkpoints.local_dir("01_nb", "full"))
    monkeypatch.setattr(checkpoints.runtime, "in_colab", lambda: False)
    assert checkpoints.local_dir("01_nb", "smoke") == colab.disk / "repo" / "smoke" / "01_nb-work"
    assert (colab.disk / "repo" / "smoke" / "01_nb-work").is_dir()


def test_a_merged_model_replaced_on_drive_is_emptied_first(mounted, trash, capsys):
    for _ in range(2):
        reload._save_atomic(Model(), mounted.home / "merged")
    assert (mounted.home / "merged" / "model.safetensors").stat().st_size == 4096
    assert len(trash) == 1 and set(trash.values()) == {0}, trash


def test_a_merge_to_drive_suggests_the_runtime_disk(mounted, monkeypatch, capsys):
    disk_usage_by_place(monkeypatch, mounted, drive_free_gib=1.0)
    with pytest.raises(checkpoints.NotEnoughSpace, match=r"checkpoints.local_dir\(NOTEBOOK, PROFILE\).*adapter folder"):
        reload._check_disk_for(mounted.home / "merged", 2.2 * GIB)
    disk_usage_by_place(monkeypatch, mounted, drive_free_gib=10.0)
    reload._check_disk_for(mounted.home / "merged", 2.2 * GIB)
    assert "counts against its 15 GB" in capsys.readouterr().out


# ----------------------------------------------------------------------------- mounting
def test_a_failed_mount_says_loudly_that_checkpoints_are_lost_on_a_disconnect(colab, monkeypatch, capsys):
    def times_out(path):
        raise ValueError("mount failed: timed out waiting for authorization")

    fake_drive_module(monkeypatch, times_out)
    assert checkpoints.mount_drive() is False
    printed = capsys.readouterr().out
    lines = printed.strip().splitlines()
    assert lines[0].startswith("=" * 40) and lines[-1].startswith("=" * 40), printed
    for words in ("GOOGLE DRIVE IS NOT MOUNTED", "timed out waiting for authorization",
                  "LOST if the runtime disconnects", "run this cell again", "NB_DRIVE=0"):
        assert words in printed, printed


def test_setup_mounts_picks_the_folder_and_says_where(colab, monkeypatch, capsys):
    asked = []
    fake_drive_module(monkeypatch, lambda path: (asked.append(path), colab.home.mkdir(parents=True)))
    root = checkpoints.setup("01_nb", "full")
    assert asked == [str(colab.mount)]
    assert root == colab.home / checkpoints.DRIVE_FOLDER / "01_nb" / "full" and root.is_dir()
    assert "on Google Drive: they survive a runtime disconnect" in capsys.readouterr().out


def test_setup_after_a_failed_mount_says_twice_and_loudly_that_checkpoints_are_not_on_drive(colab, monkeypatch, capsys):
    def refused(path):
        raise ValueError("mount failed")

    fake_drive_module(monkeypatch, refused)
    root = checkpoints.setup("01_nb", "full")
    assert root.is_relative_to(colab.disk)
    printed = capsys.readouterr().out
    assert "GOOGLE DRIVE IS NOT MOUNTED" in printed and "WARNING: checkpoints are NOT on Google Drive" in printed
    assert "NOT a runtime disconnect" in printed
    assert sum(line.startswith("=" * 40) for line in printed.splitlines()) == 4, "two framed notices"
    checkpoints.checkpoint_root("01_nb", "full")                     # older notebooks' call says so too
    assert "NOT to Google Drive: a runtime disconnect loses them" in capsys.readouterr().out


def test_nb_drive_0_keeps_drive_out_quietly(colab, monkeypatch, capsys):
    monkeypatch.setenv(checkpoints.DRIVE_ENV, "0")
    fake_drive_module(monkeypatch, lambda path: pytest.fail("NB_DRIVE=0 must not mount Drive"))
    root = checkpoints.setup("01_nb", "full")
    printed = capsys.readouterr().out
    assert root.is_relative_to(colab.disk) and "NOT a runtime disconnect" in printed and "=" * 40 not in printed
