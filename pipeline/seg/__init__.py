"""Semantic segmentation through mmsegmentation and MMEngine: data from manifests, model configs, the methods
(source-only, naive, DRSF, DIDEX, DiGA) as mmseg segmentors and MMEngine hooks, training and evaluation."""
