"""The authors' settings (their released code, `sooyeon-go/eye_for_an_eye`), defined once.

The nodes' widget defaults, the shipped workflows, the headless runner and the tests all read them from here;
each model family's own schedule (steps, skipped steps, scheduler, CFG) is in the family registry
(``families.py``), which takes the SD families' from here. Plain data with no imports: the runner loads this file
by path, without ComfyUI.
"""

# DDIM Invert Reference
STEPS = 100  # 1000-step DDPM spacing, timesteps 991..1 (ComfyUI's ddim_uniform)
SKIP_STEPS = 32  # sampling starts at step 32 of 100 (a denoise of about 0.68)
INVERSION_CFG = 3.5
INVERSION_METHOD = "ddpm_edit_friendly"
SCHEDULER = "ddim_uniform"
INVERSION_SEED = 0
ETA = 1.0  # edit-friendly DDPM inversion and sampling: the DDPM posterior (the authors' eta)

# Semantic Match Patch. Their step counter lags one step: structure injection at run steps 11, 16, ..., 36 of 68,
# matching from run step 12 to the end (their config says 10..35 and 10).
START_PERCENT = 0.16
END_PERCENT = 1.0
STRUCTURE_EVERY = 5
STRUCTURE_END_PERCENT = 0.60
STRENGTH = 1.0
HINT_STRENGTH = 1.0  # correspondence hints (not the authors'): the bonus near where the hints' map sends a token

# Appearance Transfer Sampler
CFG = 2.5
ADAIN = True
ADAIN_START_PERCENT = 0.73  # after run steps 49..67 of 68
ENDING = "authors"  # the last step lands on the clean posterior mean (their zeroed last noise map)

# Authors' FreeU (SD1.5: backbone x1.2 / x1.4 at the decoder stage entries, Fourier filter scales 0.9 / 0.2)
FREEU_B1 = 1.2
FREEU_B2 = 1.4
FREEU_S1 = 0.9
FREEU_S2 = 0.2
FREEU_THRESHOLD = 1
# SDXL: the authors never ran it; FreeU's own recommendation for SDXL (b1 1.3, b2 1.4, s1 0.9, s2 0.2).
FREEU_SDXL = (1.3, 1.4, 0.9, 0.2)

# Prompts: the same "A photo of a {domain}" for every branch, an empty negative.
PROMPT_TEMPLATE = "A photo of a {domain}"
NEGATIVE = ""
