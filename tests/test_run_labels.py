"""The `epoch_<e>` convention: names made by the trainer parse back in fine-tuning and match the
workflow's label pattern."""

import re

from lamm.run_labels import (
    EPOCH_PREFIX,
    EPOCH_VALUE_PATTERN,
    checkpoint_file,
    epoch_label,
    epoch_of_checkpoint,
    epoch_run_label,
    run_label_of_checkpoint,
)
from lamm.training.finetune import checkpoint_label


def test_epoch_labels_are_the_shortest_decimal():
    assert [epoch_label(e) for e in (0, 0.1, 2.0, 0.25, 1e-7, 36)] == [
        "0",
        "0.1",
        "2",
        "0.25",
        "0",
        "36",
    ]


def test_a_checkpoint_file_parses_back_to_its_epoch_and_run_label():
    for epoch in (0, 0.5, 2.0, 36):
        name = checkpoint_file(epoch)
        assert name == f"epoch_{epoch_label(epoch)}.pt"
        assert epoch_of_checkpoint(f"results/pretrain/x/checkpoints/{name}") == epoch_label(epoch)
        assert checkpoint_label(f"checkpoints/{name}") == epoch_label(epoch)
        assert (
            run_label_of_checkpoint(name) == epoch_run_label(epoch) == f"epoch_{epoch_label(epoch)}"
        )
        assert re.fullmatch(EPOCH_PREFIX + EPOCH_VALUE_PATTERN, epoch_run_label(epoch))
    assert epoch_run_label("0.5") == "epoch_0.5"  # a label is taken as it is


def test_other_files_are_not_epochs():
    assert epoch_of_checkpoint("last.pt") is None
    assert epoch_of_checkpoint("epoch_2.pt.partial") is None
    assert run_label_of_checkpoint("last.pt") == "epoch_last"
    assert not re.fullmatch(EPOCH_PREFIX + EPOCH_VALUE_PATTERN, "epoch_last")
