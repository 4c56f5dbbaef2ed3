"""Detection methods as mmdet detectors; importing this package registers them (and the teacher hook).

`source` uses mmdet's FasterRCNN; `naive` the `LabeledDetector` (supervised losses on labeled images only), `drsf`
and `mt` their own detectors here."""

from pipeline.adapt import teacher  # noqa: F401  (registers EMATeacherHook)
from pipeline.det.methods import drsf, labeled, mt  # noqa: F401
