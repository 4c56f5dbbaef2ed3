"""Domain-generalization methods as mmseg segmentors; importing this package registers them (and the teacher hook).

`source` and `naive` use mmseg's EncoderDecoder; `drsf`, `didex` and `diga` their own segmentors here."""

from pipeline.seg.methods import didex, diga, drsf, teacher  # noqa: F401
