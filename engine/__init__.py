"""The engine behind the nodes: the transfer plan, per-run state, model-call hooks, sampling loops, FreeU,
mask files and previews. Imports ComfyUI; the pure maths is in ``matching`` and ``inversion``."""
