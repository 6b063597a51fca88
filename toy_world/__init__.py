"""The toy world: a procedural world of creatures (``world``), a toy VAE (``toy_vae``) and the small models this
pack trained on them (``models``; the weights and their cards in ``weights/``), so that a transfer runs with no
checkpoint at all (the Toy nodes, the demo) and can be measured against ground truth.

This is the part of the toy world the nodes use. The tools that made and measure the models (training,
evaluation, figures) are in ``bench/toy_tools/``; nothing here imports them.
"""
