"""Learning the backdrop's colours from the image border, and scoring every colour against them."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageFilter

from backdrop.emulator.imaging import RGB

# Where a cluster's tolerance falls on the 0–255 backdrop score (255 is three tolerances away).
TOLERANCE = 85


@dataclass(frozen=True)
class Cluster:
    colour: RGB
    tolerance: float


def _border_samples(small: Image.Image) -> list[tuple[RGB, int]]:
    """The colours of a thin band around the picture, where a photo's backdrop shows, each with
    its edge: 0 top, 1 bottom, 2 left, 3 right."""
    width, height = small.size
    band = max(1, round(min(width, height) * 0.02))
    data = small.tobytes()
    samples: list[tuple[RGB, int]] = []
    for y in range(height):
        if y < band or y >= height - band:
            edges = [(x, 0 if y < band else 1) for x in range(width)]
        else:
            edges = [(x, 2) for x in range(band)] + [(x, 3) for x in range(width - band, width)]
        for x, edge in edges:
            i = 3 * (y * width + x)
            samples.append(((data[i], data[i + 1], data[i + 2]), edge))
    return samples


def backdrop_clusters(small: Image.Image, k: int = 6) -> list[Cluster]:
    """k-means of the border colours, keeping the clusters that look like backdrop: seen along
    the top, or on both sides, or on much of the border. A colour found only at the bottom (and
    perhaps one side) is more likely a subject cut by the frame: a person's body, a table's edge."""
    samples = _border_samples(small)
    colours = [colour for colour, _ in samples]
    centres, nearest = _kmeans(colours, k)
    per_edge = [0, 0, 0, 0]
    counts = [[0, 0, 0, 0] for _ in centres]
    for (_, edge), j in zip(samples, nearest, strict=True):
        per_edge[edge] += 1
        counts[j][edge] += 1
    candidates = []
    for j, cluster in enumerate(_clusters(colours, centres, nearest)):
        if cluster is None:
            continue
        top, _, left, right = (counts[j][e] / max(1, per_edge[e]) for e in range(4))
        seen = sum(counts[j])
        backdrop_like = top >= 0.08 or (left >= 0.08 and right >= 0.08) or seen >= 0.3 * len(samples)
        candidates.append((backdrop_like, seen, cluster))
    kept = [cluster for backdrop_like, _, cluster in candidates if backdrop_like]
    if not kept and candidates:
        kept = [max(candidates, key=lambda item: item[1])[2]]
    return kept


def _kmeans(colours: list[RGB], k: int, rounds: int = 8) -> tuple[list[RGB], list[int]]:
    """Deterministic k-means (Chebyshev distance), started from quantiles of brightness."""
    by_luma = sorted(colours, key=lambda c: (299 * c[0] + 587 * c[1] + 114 * c[2], c))
    centres = [by_luma[(2 * j + 1) * len(by_luma) // (2 * k)] for j in range(k)]
    nearest: list[int] = []
    for _ in range(rounds):
        nearest = []
        sums = [[0, 0, 0, 0] for _ in centres]
        for r, g, b in colours:
            best, choice = 256, 0
            for j, (cr, cg, cb) in enumerate(centres):
                distance = max(abs(r - cr), abs(g - cg), abs(b - cb))
                if distance < best:
                    best, choice = distance, j
            nearest.append(choice)
            total = sums[choice]
            total[0] += r
            total[1] += g
            total[2] += b
            total[3] += 1
        new = [
            (round(t[0] / t[3]), round(t[1] / t[3]), round(t[2] / t[3])) if t[3] else centres[j]
            for j, t in enumerate(sums)
        ]
        if new == centres:
            break
        centres = new
    return centres, nearest


def _clusters(colours: list[RGB], centres: list[RGB], nearest: list[int]) -> list[Cluster | None]:
    """Each centre as a cluster whose tolerance grows with its spread; None for the rare ones."""
    counts = [0] * len(centres)
    spreads = [0.0] * len(centres)
    for colour, j in zip(colours, nearest, strict=True):
        counts[j] += 1
        spreads[j] += chebyshev(colour, centres[j])
    return [
        Cluster(centre, min(50.0, max(22.0, 14.0 + 1.5 * spreads[j] / counts[j])))
        if counts[j] >= 0.04 * len(colours)
        else None
        for j, centre in enumerate(centres)
    ]


def chebyshev(a: RGB, b: RGB) -> int:
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]), abs(a[2] - b[2]))


def score_table(clusters: list[Cluster]) -> ImageFilter.Color3DLUT:
    """A 3D lookup table giving, for any colour, two backdrop scores (red and green channels):
    85 where the colour is exactly at a cluster's tolerance (255 at three times it), lower when it
    is more backdrop-like: by colour alone, and by colour once a shadow (the same colour, darker)
    is allowed."""

    def score(r: float, g: float, b: float) -> tuple[float, float, float]:
        colour = (r * 255, g * 255, b * 255)
        plain = shadowed = 3.0
        for cluster in clusters:
            cr, cg, cb = cluster.colour
            plain = min(plain, _distance(colour, cr, cg, cb) / cluster.tolerance)
            energy = cr * cr + cg * cg + cb * cb
            if energy > 3 * 60 * 60:
                dim = min(1.0, max(0.35, (colour[0] * cr + colour[1] * cg + colour[2] * cb) / energy))
                shadowed = min(shadowed, _distance(colour, cr * dim, cg * dim, cb * dim) / cluster.tolerance)
        return min(1.0, plain / 3), min(1.0, min(plain, shadowed) / 3), 0.0

    return ImageFilter.Color3DLUT.generate(25, score)


def backdrop_scores(picture: Image.Image, table: ImageFilter.Color3DLUT) -> tuple[Image.Image, Image.Image]:
    """The two backdrop scores of every pixel, as "L" maps: by colour, and with shadows allowed."""
    scores = picture.filter(table)
    return scores.getchannel("R"), scores.getchannel("G")


def _distance(colour: tuple[float, float, float], r: float, g: float, b: float) -> float:
    return max(abs(colour[0] - r), abs(colour[1] - g), abs(colour[2] - b))
