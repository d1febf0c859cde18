"""Self-blended images: pseudo-fakes made from a real face alone, after Shiohara & Yamasaki, "Detecting Deepfakes with
Self-Blended Images" (CVPR 2022), itself after Face X-ray (Li et al., CVPR 2020). Written from the paper.

A real picture is copied twice; one copy (the source) is altered a little: its colours, brightness and contrast
jittered, its sharpness changed (blurred, sharpened, or down- and up-scaled), then shifted and scaled by a few per
cent. A face-shaped mask is drawn from the face's box and five landmarks, sized, deformed (smooth random warps,
grown or shrunk) and blurred at its edge, and the source is blended into the other copy (the target) inside it
with a random strength r:

    blended = target · (1 − r·M) + source · r·M

Outside the mask the picture is untouched; inside, it differs by at most what the source's alterations allow. A
detector taught to tell such blends from the real pictures learns the traces nearly every face manipulation leaves
(blending boundaries, mismatched colour and sharpness statistics) rather than one generator's artifacts.

Everything draws from a numpy Generator, so a seed gives the same blend every time.
"""

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from PIL import Image

from ml.faces import Face


@dataclass(frozen=True)
class BlendConfig:
    hue_shift: float = 6.0  # degrees of hue, ±
    saturation: float = 0.15  # relative change, ±
    brightness: float = 0.1  # of the value range, ±
    contrast: float = 0.15  # relative change, ±
    channel_shift: float = 8.0  # per-channel RGB shift in 0-255 levels, ±
    shift: float = 0.03  # of the face's side, ±, in x and y
    scale: float = 0.05  # relative, ±
    mask_grow: float = 0.06  # the mask's edge moves out or in by up to this share of the face's side
    warp: float = 0.04  # smooth random warp of the mask, up to this share of the face's side
    edge_blur: tuple[float, float] = (0.01, 0.05)  # the two edge blurs' sigma, as shares of the face's side
    mask_scale: tuple[float, float] = (0.85, 1.1)  # the ellipse's size, relative to the face box
    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Blend:
    image: Image.Image
    mask: np.ndarray  # float32 (height, width) in [0, 1]: r·M, how much of the source each pixel holds
    ratio: float


def face_mask(face: Face, size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """A hard face-shaped mask (float32 0/1): an ellipse from the brows to the chin, tilted with the eyes.

    With five landmarks (eyes, nose, mouth corners) the face's outline is not known, so the ellipse is built from
    what is: centred between the eyes and the mouth, nine tenths of the box's width and its height, at the angle of
    the line through the eyes. Deformed and blurred (_deform), its soft edge stays within about a fifth of the face's
    side around the box, so the blend's boundary lies inside the frame the model sees (ml.faces.FRAMING).
    """
    width, height = size
    left, top, right, bottom = face.box
    box_w, box_h = right - left, bottom - top
    if len(face.landmarks) == 5:
        (rx, ry), (lx, ly), _nose, (mrx, mry), (mlx, mly) = face.landmarks
        centre = (np.array([rx + lx, ry + ly]) + np.array([mrx + mlx, mry + mly])) / 4  # between eyes and mouth
        angle = float(np.degrees(np.arctan2(ly - ry, lx - rx)))
    else:  # no landmarks (no face was found): an upright ellipse in the box
        centre, angle = np.array([(left + right) / 2, (top + bottom) / 2]), 0.0
    axes = (max(1, round(box_w * 0.45 * scale)), max(1, round(box_h * 0.5 * scale)))
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(mask, (round(centre[0]), round(centre[1])), axes, angle, 0, 360, 1, thickness=-1)
    return mask.astype(np.float32)


def _deform(mask: np.ndarray, side: float, config: BlendConfig, rng: np.random.Generator) -> np.ndarray:
    """Warp the mask smoothly, grow or shrink it, and soften its edge: blend boundaries of many shapes."""
    height, width = mask.shape
    amplitude = config.warp * side
    coarse = rng.uniform(-amplitude, amplitude, size=(2, 4, 4)).astype(np.float32)
    dx, dy = (cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped = cv2.remap(mask, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderValue=0)
    grow = round(rng.uniform(-config.mask_grow, config.mask_grow) * side)
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(grow) + 1,) * 2)
        warped = (cv2.dilate if grow > 0 else cv2.erode)(warped, kernel)
    for _ in range(2):  # two blurs of random width: edges from sharp to very soft
        sigma = rng.uniform(*config.edge_blur) * side
        warped = cv2.GaussianBlur(warped, (0, 0), sigmaX=max(sigma, 0.5))
    top = warped.max()
    return (warped / top).clip(0.0, 1.0) if top > 0 else warped


def _alter(pixels: np.ndarray, side: float, config: BlendConfig, rng: np.random.Generator) -> np.ndarray:
    """The source copy: colours, brightness, contrast and sharpness changed, then shifted and scaled a little."""
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-1, 1) * config.hue_shift * 256 / 360) % 256
    hsv[..., 1] *= 1 + rng.uniform(-config.saturation, config.saturation)
    source = cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    source += rng.uniform(-config.channel_shift, config.channel_shift, size=3)
    mean = source.mean()
    source = (source - mean) * (1 + rng.uniform(-config.contrast, config.contrast)) + mean
    source += rng.uniform(-config.brightness, config.brightness) * 255
    source = source.clip(0, 255)
    sharpness = rng.integers(3)
    if sharpness == 0:
        source = cv2.GaussianBlur(source, (0, 0), sigmaX=rng.uniform(0.5, 1.5))
    elif sharpness == 1:
        blurred = cv2.GaussianBlur(source, (0, 0), sigmaX=1.0)
        source = (source + rng.uniform(0.3, 1.0) * (source - blurred)).clip(0, 255)
    else:
        height, width = source.shape[:2]
        factor = rng.uniform(0.4, 0.8)
        small = cv2.resize(source, (max(1, round(width * factor)), max(1, round(height * factor))), cv2.INTER_AREA)
        source = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    scale = 1 + rng.uniform(-config.scale, config.scale)
    shift_x, shift_y = rng.uniform(-config.shift, config.shift, size=2) * side
    height, width = source.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, scale)
    matrix[:, 2] += (shift_x, shift_y)
    return cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def self_blend(image: Image.Image, face: Face, *, rng: np.random.Generator, config: BlendConfig | None = None) -> Blend:
    """A self-blended copy of `image` around `face` (see the module's docstring)."""
    config = config or BlendConfig()
    target = np.asarray(image.convert("RGB"), dtype=np.float32)
    side = face.side
    source = _alter(target.astype(np.uint8), side, config, rng)
    mask = _deform(face_mask(face, image.size, rng.uniform(*config.mask_scale)), side, config, rng)
    ratio = float(rng.choice(config.blend_ratios))
    weight = (mask * ratio)[..., None]
    blended = target * (1 - weight) + source * weight
    return Blend(image=Image.fromarray(blended.round().clip(0, 255).astype(np.uint8)), mask=weight[..., 0], ratio=ratio)
