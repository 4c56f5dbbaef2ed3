"""dgsynth: domain generalization with Stable Diffusion pseudo-domains, as one DVC pipeline.

`pipeline` is the library; `stages` holds one thin entry per DVC stage; `pipeline.cli` exposes both as `dgsynth`.
"""

__version__ = "0.1.0"
