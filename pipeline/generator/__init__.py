"""The embedded default's image generator: a small Stable Diffusion trained on a captioned world corpus.

No Stable Diffusion weights ship with dgsynth, so the embedded default trains one with the real architecture
(`pipeline.sd`) on the CPU, in LAION's role a corpus of city c rendered under captioned conditions
(`corpus.py`): first the VAE, then the UNet with the CLIP text encoder (`train.py`). The folder it writes loads
with the same `from_pretrained` code as real weights; `samples.py` draws a contact sheet per caption condition.
"""
