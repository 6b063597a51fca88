"""The engine behind the nodes, in three layers (imports point down only):

* ``backends/``: what each node does, outside the model calls: ``invert`` (DDIM Invert Reference), ``sample``
  (Appearance Transfer Sampler's loop and masked AdaIN), ``freeu`` (Authors' FreeU), ``masks`` and
  ``mask_files`` (Load Masks), ``pictures`` and ``previews`` (what the editor shows), ``sampling`` (running a
  loop inside ComfyUI's sampling stack), ``checks`` (input checks ComfyUI lets through);
* ``patch/``: the transfer inside a sampling run, by lifetime: ``plan`` (made once at patch time, never
  changed), ``sources`` (where the correspondence comes from: a part of the plan), ``run`` (one sampling run's
  device copies and correspondence), ``call`` (one model call's extra rows and layout), ``matches`` (the
  correspondence at a matched layer), the attention hooks ``unet`` and ``dit``, and ``install`` (the wrappers and
  hooks on a clone of the MODEL);
* ``models/``: what the pack knows about models: ``families`` (the one registry of model families), ``blocks``
  (a loaded network's attention blocks, projections and token maps), ``layers`` (the presets and the grammar),
  ``variant`` (what changes a denoiser), ``defaults`` (the authors' settings).

Imports ComfyUI; the pure maths is in ``matching`` and ``inversion``.
"""
