"""Training loop and ONNX export of the demo network (needs the `train` extra: PyTorch)."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from defectline.training.dataset import CLASS_NAMES, normalize
from defectline.training.network import SurfaceNet

logger = logging.getLogger(__name__)


def train(
    torch_module: ModuleType,
    train_split: tuple[np.ndarray, np.ndarray],
    val_split: tuple[np.ndarray, np.ndarray],
    epochs: int,
    batch_size: int,
    learning_rate: float,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train `SurfaceNet` and return the weights of the epoch with the best validation accuracy."""
    del torch_module  # The caller checked that PyTorch imports; this module uses it directly.
    frames, labels = train_split
    network = SurfaceNet(len(CLASS_NAMES))
    optimizer = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=1e-4)
    steps_per_epoch = (len(labels) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    generator = torch.Generator().manual_seed(0)

    best_accuracy, best_state, history = -1.0, None, []
    for epoch in range(1, epochs + 1):
        started = time.monotonic()
        network.train()
        order = torch.randperm(len(labels), generator=generator).numpy()
        total_loss = 0.0
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            images = _flip_randomly(torch.from_numpy(normalize(frames[index])), generator)
            loss = loss_fn(network(images), torch.from_numpy(labels[index]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += float(loss) * len(index)

        val_accuracy = accuracy(network, val_split)
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(total_loss / len(labels), 4),
                "val_accuracy": round(val_accuracy, 4),
            }
        )
        logger.info(
            "epoch=%d train_loss=%.4f val_accuracy=%.4f epoch_s=%.1f",
            epoch,
            total_loss / len(labels),
            val_accuracy,
            time.monotonic() - started,
        )
        if val_accuracy > best_accuracy:
            best_accuracy, best_state = val_accuracy, copy.deepcopy(network.state_dict())

    network.load_state_dict(best_state)
    network.eval()
    return network, history


def accuracy(
    network: nn.Module, split: tuple[np.ndarray, np.ndarray], batch_size: int = 256
) -> float:
    frames, labels = split
    network.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = network(torch.from_numpy(normalize(frames[start : start + batch_size])))
            correct += int(
                (logits.argmax(dim=1).numpy() == labels[start : start + batch_size]).sum()
            )
    return correct / len(labels)


def export_onnx(
    torch_module: ModuleType,
    network: nn.Module,
    path: Path,
    input_name: str,
    output_name: str,
    opset: int,
    size_px: int,
) -> None:
    """Export to a single ONNX file with a dynamic batch dimension."""
    del torch_module
    network.eval()
    example = torch.zeros(2, 3, size_px, size_px, dtype=torch.float32)
    program = torch.onnx.export(
        network,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=4096)}},
        external_data=False,
    )
    program.optimize()
    program.save(str(path), external_data=False)


def _flip_randomly(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally and vertically with probability 0.5 each."""
    count = images.shape[0]
    horizontal = torch.rand(count, generator=generator) < 0.5
    vertical = torch.rand(count, generator=generator) < 0.5
    images = torch.where(horizontal[:, None, None, None], images.flip(3), images)
    return torch.where(vertical[:, None, None, None], images.flip(2), images)
