"""What segmentation and detection training share: the checked settings of a params section (`settings`), the
MMEngine Runner config around a task's model and data (`runner`), and the resumable run with its export (`run`).
A task (`pipeline.seg.task.SEG`, `pipeline.det.task.DET`) supplies its methods, models, data and evaluation."""
