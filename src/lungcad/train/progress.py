"""The training progress bar, with the epoch numbers ``status.json`` uses (1-based)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class EpochProgressBar(RichProgressBar):
    """Lightning's rich bar, titled "Epoch 1/40" for the first of 40 epochs.

    Lightning titles it with the 0-based ``current_epoch`` over ``max_epochs - 1`` ("Epoch 0/39"), while
    ``status.json`` and ``lungcad runs`` count from 1: the same epoch must read the same everywhere.
    """

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None:
            description += f"/{self.trainer.max_epochs}"
        # pad like Lightning does, so the line does not flicker against the "Validation" bar
        return f"{description:{len(self.validation_description)}}"
