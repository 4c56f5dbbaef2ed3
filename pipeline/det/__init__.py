"""Detection: manifests as mmdet datasets (`data`), Faster R-CNN configs (`models`), the methods as mmdet detectors
(`methods`), the `det` training task (`config`) and mAP evaluation (`evaluate`)."""
