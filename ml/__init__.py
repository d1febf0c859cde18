"""The detector in pure PyTorch: architectures, preprocessing, inference with Grad-CAM, weights, training.

This package never imports Django, so training and benchmarks run anywhere and the web app stays a thin caller.
"""

# The architecture names of ml.architectures.ARCHITECTURES, importable without PyTorch (for forms and settings).
ARCHITECTURE_NAMES = ("resnet50", "resnet18", "mobilenet_v2")
