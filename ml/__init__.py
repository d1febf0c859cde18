"""The detector in pure PyTorch: architectures, preprocessing, inference with Grad-CAM, weights, training.

This package never imports Django, so training and benchmarks run anywhere and the web app stays a thin caller.
"""

# Choices importable without PyTorch, for forms and settings: the names of ml.architectures.ARCHITECTURES, and the
# inference engine's backends and precisions (ml.detector).
ARCHITECTURE_NAMES = ("resnet50", "resnet18", "mobilenet_v2")
BACKENDS = ("auto", "openvino", "torch")
INFERENCE_PRECISIONS = ("auto", "bf16", "fp32")
