"""Task-neutral parts of the domain-generalization methods, shared by segmentation (`pipeline.seg.methods`) and
detection (`pipeline.det.methods`): DRSF's DFDR (`dfdr`) and MDSF (`mdsf`: gradient reversal, discriminators,
interpolation between domains with soft labels), and the EMA mean teacher with its hook and MIC's masking (`teacher`).
They take tensors (feature maps, RoI features, images) and return tensors or losses; they know no task."""
