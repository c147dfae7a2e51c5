"""Pages and plots people read: the training report, the evaluation page, Grad-CAM overlays."""
