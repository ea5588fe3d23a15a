"""Tiny-shapes: small synthetic datasets in the real COCO, ADE20K and
ImageNet file formats, generated deterministically from a seed.

Every image shows one or more filled shapes (:data:`CLASSES`: circles,
rectangles, stars, triangles) in random colours, sizes, positions and
rotations on a textured background (colour noise, stripes, gradients,
checkerboards), with mild sensor noise on top. Objects of the detection /
segmentation images may overlap: later shapes hide part of earlier ones, and
every instance keeps most of its area visible. Colour never tells the class,
so a model has to learn shape.

Layout written by :func:`make_tiny_datasets` (``out_dir`` =
``data/tiny_shapes`` by default)::

    coco/annotations/instances_{train,val}.json   bboxes + polygon masks
    coco/images/{train,val}/000000.jpg
    ade/images/{training,validation}/000000.jpg
    ade/annotations/{training,validation}/000000.png   0 = background,
                                                       1..4 = CLASSES
    imagenet/{train,val}/<class>/000000.png        one shape per image

Read by mmdet's ``CocoDataset``, mmseg's ``BaseSegDataset`` and
mmpretrain's ``CustomDataset`` with ``metainfo`` from :data:`METAINFO`.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

CLASSES = ('circle', 'rectangle', 'star', 'triangle')
PALETTE = [(220, 20, 60), (0, 130, 230), (250, 170, 30), (20, 180, 80)]
METAINFO = dict(
    det=dict(classes=CLASSES, palette=PALETTE),
    seg=dict(
        classes=('background', ) + CLASSES, palette=[(0, 0, 0)] + PALETTE),
    cls=dict(classes=CLASSES))

# (images, image side) per split; sized so that a tiny model trains on a
# 2-core CPU in minutes
DEFAULT_SIZES = dict(
    det=dict(train=(256, 128), val=(64, 128)),
    seg=dict(train=(256, 128), val=(64, 128)),
    cls=dict(train=(2400, 64), val=(400, 64)))
MAX_OBJECTS = 5  # per detection / segmentation image
MIN_VISIBLE = 0.6  # fraction of an instance left visible by occlusion


# ---------------------------------------------------------------- drawing
def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """A (side, side, 3) float32 texture in [0, 255]."""
    kind = rng.integers(4)
    c1, c2 = rng.uniform(0, 255, (2, 3))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    if kind == 0:  # blurred colour noise
        noise = rng.uniform(0, 255, (side // 8 + 1, side // 8 + 1, 3))
        img = cv2.resize(
            noise.astype(np.float32), (side, side),
            interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # stripes at a random angle and period
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.08, 0.3)
        t = (np.cos(angle) * xx + np.sin(angle) * yy) / period
        mix = (np.sin(2 * np.pi * t) > 0).astype(np.float32)[..., None]
        img = c1 * mix + c2 * (1 - mix)
    elif kind == 2:  # linear gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        t = ((t - t.min()) / (np.ptp(t) + 1e-6))[..., None]
        img = c1 * t + c2 * (1 - t)
    else:  # checkerboard
        cells = rng.integers(3, 9)
        mix = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2)[..., None]
        img = c1 * mix + c2 * (1 - mix)
    return np.clip(img, 0, 255).astype(np.float32)


def _shape_polygon(rng: np.random.Generator, label: int,
                   centre: Tuple[float, float], radius: float) -> np.ndarray:
    """Outline of a shape of class ``CLASSES[label]`` as (K, 2) x, y."""
    name = CLASSES[label]
    rot = rng.uniform(0, 2 * np.pi)
    if name == 'circle':
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        radii = np.full(32, radius)
    elif name == 'rectangle':
        aspect = rng.uniform(0.45, 1.0)
        half = np.arctan(aspect)
        angles = np.array([half, np.pi - half, np.pi + half, -half]) + rot
        radii = np.full(4, radius)
    elif name == 'star':
        angles = np.linspace(0, 2 * np.pi, 10, endpoint=False) + rot
        radii = np.where(
            np.arange(10) % 2 == 0, radius, radius * rng.uniform(0.38, 0.5))
    else:  # triangle
        angles = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rot
        angles = angles + rng.uniform(-0.25, 0.25, 3)
        radii = np.full(3, radius)
    xs = centre[0] + radii * np.cos(angles)
    ys = centre[1] + radii * np.sin(angles)
    return np.stack([xs, ys], axis=1)


def _fill(polygon: np.ndarray, side: int) -> np.ndarray:
    """Boolean (side, side) mask of a polygon (sub-pixel vertices)."""
    mask = np.zeros((side, side), np.uint8)
    shift = 4  # vertices in 1/16 pixel
    pts = np.round((polygon - 0.5) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)


def _contrasting_colour(rng: np.random.Generator,
                        under: np.ndarray) -> np.ndarray:
    """A random colour at least 90 (L2, RGB) from the mean colour under
    the shape, so every shape is visible."""
    mean = under.reshape(-1, 3).mean(0)
    for _ in range(100):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - mean) >= 90:
            return colour
    return 255 - mean


def _visible_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons (flat x, y lists) of the visible part of an instance.

    Traced on the mask upsampled 2x, so that the outline runs along pixel
    edges: pycocotools turns the polygons back into exactly ``mask``.
    """
    up = cv2.resize(
        mask.astype(np.uint8),
        None,
        fx=2,
        fy=2,
        interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [((c.reshape(-1, 2) + 0.5) / 2).ravel().tolist() for c in contours
            if len(c) >= 3]


def draw_scene(rng: np.random.Generator, side: int,
               num_objects: int) -> Tuple[np.ndarray, List[dict]]:
    """One image with ``num_objects`` shapes.

    Returns:
        tuple: the (side, side, 3) uint8 image and, for each object from
        back to front, ``dict(label, mask)`` with its visible boolean mask.
    """
    img = _background(rng, side)
    objects = []
    for _ in range(num_objects):
        for _attempt in range(30):
            radius = rng.uniform(0.09, 0.24) * side
            centre = rng.uniform(radius * 0.7, side - radius * 0.7, 2)
            label = int(rng.integers(len(CLASSES)))
            poly = _shape_polygon(rng, label, centre, radius)
            mask = _fill(poly, side)
            if mask.sum() < 30:
                continue
            # every earlier object must keep MIN_VISIBLE of its full area
            ok = all((o['mask'] & ~mask).sum() >= MIN_VISIBLE * o['area']
                     for o in objects)
            if ok:
                break
        else:
            continue
        colour = _contrasting_colour(rng, img[mask])
        img[mask] = colour
        for o in objects:
            o['mask'] = o['mask'] & ~mask
        objects.append(dict(label=label, mask=mask, area=int(mask.sum())))
    img = img + rng.normal(0, 6, img.shape)  # sensor noise
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, [dict(label=o['label'], mask=o['mask']) for o in objects]


# ---------------------------------------------------------------- writers
def _write_coco(root: str, split: str, rng: np.random.Generator, num: int,
                side: int) -> None:
    img_dir = osp.join(root, 'images', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        img, objects = draw_scene(rng, side,
                                  int(rng.integers(2, MAX_OBJECTS + 1)))
        name = f'{i:06d}.jpg'
        Image.fromarray(img).save(osp.join(img_dir, name), quality=95)
        images.append(dict(id=i, file_name=name, height=side, width=side))
        for obj in objects:
            ys, xs = np.nonzero(obj['mask'])
            polys = _visible_polygons(obj['mask'])
            if not polys:
                continue
            x0, y0 = float(xs.min()), float(ys.min())
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=i,
                    category_id=obj['label'] + 1,
                    bbox=[
                        x0, y0,
                        float(xs.max()) + 1 - x0,
                        float(ys.max()) + 1 - y0
                    ],
                    area=float(obj['mask'].sum()),
                    segmentation=polys,
                    iscrowd=0))
    categories = [
        dict(id=k + 1, name=c, supercategory='shape')
        for k, c in enumerate(CLASSES)
    ]
    with open(osp.join(root, 'annotations', f'instances_{split}.json'),
              'w') as f:
        coco = dict(
            images=images, annotations=annotations, categories=categories)
        json.dump(coco, f)


def _write_ade(root: str, split: str, rng: np.random.Generator, num: int,
               side: int) -> None:
    img_dir = osp.join(root, 'images', split)
    ann_dir = osp.join(root, 'annotations', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num):
        img, objects = draw_scene(rng, side,
                                  int(rng.integers(1, MAX_OBJECTS + 1)))
        label_map = np.zeros((side, side), np.uint8)
        for obj in objects:
            label_map[obj['mask']] = obj['label'] + 1
        Image.fromarray(img).save(
            osp.join(img_dir, f'{i:06d}.jpg'), quality=95)
        Image.fromarray(label_map).save(osp.join(ann_dir, f'{i:06d}.png'))


def draw_single_shape(rng: np.random.Generator, side: int,
                      label: int) -> Tuple[np.ndarray, np.ndarray]:
    """One classification image: a single shape of class ``CLASSES[label]``.

    Returns:
        tuple: the (side, side, 3) uint8 RGB image and the shape's (side,
        side) boolean mask.
    """
    img = _background(rng, side)
    radius = rng.uniform(0.2, 0.4) * side
    centre = rng.uniform(radius * 0.8, side - radius * 0.8, 2)
    mask = _fill(_shape_polygon(rng, label, centre, radius), side)
    img[mask] = _contrasting_colour(rng, img[mask])
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255)
    return img.astype(np.uint8), mask


def _write_imagenet(root: str, split: str, rng: np.random.Generator, num: int,
                    side: int) -> None:
    for c in CLASSES:
        os.makedirs(osp.join(root, split, c), exist_ok=True)
    for i in range(num):
        label = i % len(CLASSES)
        img, _ = draw_single_shape(rng, side, label)
        Image.fromarray(img).save(
            osp.join(root, split, CLASSES[label], f'{i:06d}.png'))


WRITERS = dict(
    det=('coco', _write_coco, ('train', 'val')),
    seg=('ade', _write_ade, ('training', 'validation')),
    cls=('imagenet', _write_imagenet, ('train', 'val')))
#: written into each dataset folder: what the generator wrote there, so
#: that it rewrites only its own folders and removes its own old files
MANIFEST = 'tiny_shapes_manifest.json'


def _written_files(task: str, sizes: dict) -> List[str]:
    """The files the writer of ``task`` writes for ``sizes`` (paths relative
    to its dataset folder)."""
    files = []
    for split, key in zip(WRITERS[task][2], ('train', 'val')):
        num = sizes[key][0]
        if task == 'det':
            files.append(f'annotations/instances_{split}.json')
            files += [f'images/{split}/{i:06d}.jpg' for i in range(num)]
        elif task == 'seg':
            files += [f'images/{split}/{i:06d}.jpg' for i in range(num)]
            files += [f'annotations/{split}/{i:06d}.png' for i in range(num)]
        else:
            files += [
                f'{split}/{CLASSES[i % len(CLASSES)]}/{i:06d}.png'
                for i in range(num)
            ]
    return files


def read_manifest(root: str):
    """The manifest of a dataset folder the generator wrote, else ``None``.
    ``complete`` is false while (or if interrupted while) it writes."""
    try:
        with open(osp.join(root, MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and \
        manifest.get('generator') == 'mmboat tiny-shapes' else None


def is_complete(out_dir: str, task: str) -> bool:
    """Whether ``out_dir`` holds the whole ``task`` dataset, as written by
    :func:`make_tiny_datasets` (not an interrupted run's part)."""
    manifest = read_manifest(osp.join(out_dir, WRITERS[task][0]))
    return bool(manifest and manifest.get('complete'))


def _check_writable(root: str) -> None:
    """``root`` must be missing, empty or the generator's own folder."""
    if osp.exists(root) and not osp.isdir(root):
        raise NotADirectoryError(
            f'{root} is a file: tiny-shapes writes a dataset folder there; '
            'choose another output folder')
    if osp.isdir(root) and os.listdir(root) and read_manifest(root) is None:
        raise FileExistsError(
            f'{root} already holds files that tiny-shapes did not write (it '
            f'has no {MANIFEST}); they are left untouched. Choose another '
            'output folder (--out-dir / --data-root), or move them away')


def _remove_old_files(root: str) -> None:
    """Remove what the generator wrote into ``root`` before (its manifest
    lists the sizes), and the folders that this leaves empty."""
    manifest = read_manifest(root)
    if manifest is None:
        return
    folders = set()
    for rel in _written_files(manifest['task'], manifest['sizes']):
        path = osp.join(root, rel)
        if osp.isfile(path):
            os.remove(path)
        folders.add(osp.dirname(path))
    for folder in sorted(folders, key=len, reverse=True):
        while folder != root and osp.isdir(folder) and \
                not os.listdir(folder):
            os.rmdir(folder)
            folder = osp.dirname(folder)
    os.remove(osp.join(root, MANIFEST))


def _write_manifest(root: str, task: str, seed: int, sizes: dict,
                    complete: bool) -> None:
    with open(osp.join(root, MANIFEST), 'w') as f:
        json.dump(
            dict(
                generator='mmboat tiny-shapes',
                task=task,
                seed=seed,
                sizes={
                    k: list(v)
                    for k, v in sizes.items()
                },
                complete=complete),
            f,
            indent=1)


def make_tiny_datasets(out_dir: str = 'data/tiny_shapes',
                       seed: int = 0,
                       tasks: Sequence[str] = ('det', 'seg', 'cls'),
                       sizes: Dict[str, dict] = None) -> Dict[str, str]:
    """Write the tiny-shapes datasets under ``out_dir``.

    Each dataset folder (``out_dir/coco``, ``ade``, ``imagenet``) must be
    missing, empty, or one the generator wrote (it holds
    :data:`MANIFEST`); the files of the earlier run are removed first, so no
    stale image stays. A user's folder is never written into.

    Args:
        out_dir (str): destination folder. Default: 'data/tiny_shapes'.
        seed (int): a non-negative integer; the same seed writes the same
            files. Default: 0.
        tasks (Sequence[str]): any of 'det' (COCO), 'seg' (ADE20K),
            'cls' (ImageNet). Default: all three.
        sizes (dict, optional): per task and split (``train`` / ``val``),
            ``(number of images, image side)``; default
            :data:`DEFAULT_SIZES`.

    Returns:
        dict: task -> the folder of its dataset.

    Raises:
        ValueError: unknown task, negative seed.
        NotADirectoryError, FileExistsError: ``out_dir`` or a dataset
            folder is a file, or holds files the generator did not write.
    """
    unknown = sorted(set(tasks) - set(WRITERS))
    if unknown:
        raise ValueError(f'unknown tasks {unknown}: use any of '
                         f'{sorted(WRITERS)}')
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(
            f'{out_dir} is a file, not a folder: choose another output '
            'folder for the tiny-shapes datasets')
    roots = {task: osp.join(out_dir, WRITERS[task][0]) for task in tasks}
    for root in roots.values():  # all checked before anything is written
        _check_writable(root)
    for task, root in roots.items():
        _, writer, splits = WRITERS[task]
        _remove_old_files(root)
        os.makedirs(root, exist_ok=True)
        _write_manifest(root, task, seed, sizes[task], complete=False)
        for k, (split, key) in enumerate(zip(splits, ('train', 'val'))):
            num, side = sizes[task][key]
            # one independent stream per (task, split)
            rng = np.random.default_rng([seed, sorted(WRITERS).index(task), k])
            writer(root, split, rng, num, side)
        _write_manifest(root, task, seed, sizes[task], complete=True)
    return roots
