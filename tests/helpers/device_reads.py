"""A dispatch mode that records every operation that reads a device's values back on the host.

On a GPU each such read (``.item()``, ``float()``, ``.tolist()``, a boolean mask, ``.cpu()``)
makes the host wait for all queued work. On the ``meta`` device they cannot run at all, so a
step that runs there under this mode and records nothing performs no such read.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

# Operations whose result depends on device values that the host must know.
HOST_READS = frozenset({"aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::equal",
                        "aten::nonzero", "aten::masked_select", "aten::_unique2", "aten::unique_dim",
                        "aten::unique_consecutive", "aten::repeat_interleave"})


class DeviceReads(TorchDispatchMode):
    """Records (op name) of each read of ``device_type`` values on the host."""

    def __init__(self, device_type: str) -> None:
        super().__init__()
        self.device_type, self.reads = device_type, []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = func._schema.name
        on_device = [leaf for leaf in tree_leaves((args, kwargs))
                     if isinstance(leaf, torch.Tensor) and leaf.device.type == self.device_type]
        copied_out = ((name == "aten::_to_copy" and str(kwargs.get("device", "")).startswith("cpu"))
                      or (name == "aten::copy_" and args[0].device.type == "cpu"))
        # Indexing with a boolean mask must first count its True values.
        masked = name.startswith("aten::index") and any(leaf.dtype == torch.bool for leaf in on_device)
        if on_device and (name in HOST_READS or copied_out or masked):
            self.reads.append(name)
        return func(*args, **kwargs)
