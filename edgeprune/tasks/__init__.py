"""What "accuracy" means for each kind of model: classification (top-1), detection (mAP50, mAP50-95),
segmentation (mIoU); with labels, the task's metric; without, agreement with the original model's outputs.
"""
