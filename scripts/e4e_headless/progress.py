"""Progress lines, the same in both modes: ``[12 Appearance Transfer Sampler] step 30/68``."""

from __future__ import annotations

import time

from .workflow_fill import node_label


class ProgressLines:
    """Writes a node's first and last step, and at most one line every ``every`` seconds between; the node is
    named by its id and its title in the workflow (``_meta.title``)."""

    def __init__(self, prompt: dict, log, suffix: str = "", every: float = 5.0):
        self.prompt, self.log, self.suffix, self.every = prompt, log, suffix, every
        self.node, self.last = None, 0.0

    def step(self, node_id, value, total):
        if self.log is None or node_id is None or value is None or total is None:
            return
        now = time.monotonic()
        if node_id != self.node or value >= total or now - self.last >= self.every:
            self.node, self.last = node_id, now
            self.log(f"{node_label(self.prompt, node_id)} step {value:g}/{total:g}{self.suffix}")
