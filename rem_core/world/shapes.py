"""Object shapes as unions of oriented boxes, for vehicles of every subtype and road users.

A shape is built in an object frame with x forward, y left and z up from the ground, then
re-centred on the tight box around all its parts: that box is the object's label box.
Parts differ in form, not only in size, so a bus, a pickup's open bed or a ladder on a roof
leaves its own trace in a point cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rem_core.errors import InputError

__all__ = ["TOW_BED_Z", "Shape", "make_shape"]

#: Height of a tow truck's bed above the road: the car it carries stands on it.
TOW_BED_Z = 1.05


@dataclass(frozen=True)
class Shape:
    """Parts of one object around its label box.

    Attributes:
        dims: ``(3,)`` length, width, height of the label box, metres.
        center: ``(P, 3)`` part centres relative to the label box centre, object frame.
        half: ``(P, 3)`` part half extents.
        rotation: ``(P, 3, 3)`` object-from-part rotation.
        reflectivity: ``(P,)`` in [0, 1].
    """

    dims: np.ndarray
    center: np.ndarray
    half: np.ndarray
    rotation: np.ndarray
    reflectivity: np.ndarray


def _rot(yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    return rz @ ry


class _Builder:
    """Collects parts given as extents along x and z (ground at z = 0)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []

    def box(
        self,
        x0: float,
        x1: float,
        z0: float,
        z1: float,
        width: float,
        refl: float,
        y: float = 0.0,
        yaw: float = 0.0,
        pitch: float = 0.0,
    ) -> None:
        center = np.array([(x0 + x1) / 2, y, (z0 + z1) / 2])
        half = np.array([(x1 - x0) / 2, width / 2, (z1 - z0) / 2])
        self.parts.append((center, half, _rot(yaw, pitch), refl))

    def articulate(self, first: int, hitch_x: float, angle: float) -> None:
        """Turn parts ``first:`` about a vertical axis through ``(hitch_x, 0)``."""
        rot = _rot(angle)
        pivot = np.array([hitch_x, 0.0, 0.0])
        for i in range(first, len(self.parts)):
            center, half, r, refl = self.parts[i]
            self.parts[i] = (rot @ (center - pivot) + pivot, half, rot @ r, refl)

    def build(self) -> Shape:
        center = np.stack([p[0] for p in self.parts])
        half = np.stack([p[1] for p in self.parts])
        rotation = np.stack([p[2] for p in self.parts])
        signs = np.array(
            [[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=float
        )
        corners = np.einsum("pij,pkj->pki", rotation, signs[None] * half[:, None]) + center[:, None]
        lo = corners.reshape(-1, 3).min(0)
        hi = corners.reshape(-1, 3).max(0)
        lo[2] = 0.0  # label boxes stand on the ground
        mid = (lo + hi) / 2
        return Shape(
            dims=hi - lo,
            center=center - mid,
            half=half,
            rotation=rotation,
            reflectivity=np.array([p[3] for p in self.parts]),
        )


def _axles(
    b: _Builder, length: float, width: float, xs: tuple[float, ...], r: float = 0.34
) -> None:
    for x in xs:
        b.box(x - r, x + r, 0.0, 2 * r - 0.05, width - 0.04, 0.03)


def _car(
    b: _Builder, L: float, W: float, H: float, belt: float, cab: tuple[float, float], paint: float
) -> None:
    """A passenger car: lower body, a narrower glass cabin, two axles."""
    b.box(-L / 2, L / 2, 0.25, belt, W, paint)
    b.box(cab[0] * L, cab[1] * L, belt, H, 0.9 * W, 0.05)
    _axles(b, L, W, (0.33 * L, -0.32 * L))


def _passenger(
    subtype: str, rng: np.random.Generator, b: _Builder, paint: float
) -> tuple[float, float, float]:
    u = rng.uniform
    if subtype == "sedan":
        L, W, H = u(4.3, 4.95), u(1.75, 1.9), u(1.38, 1.5)
        _car(b, L, W, H, 0.62 * H, (-0.32, 0.18), paint)
    elif subtype == "hatchback":
        L, W, H = u(3.7, 4.25), u(1.68, 1.8), u(1.45, 1.56)
        _car(b, L, W, H, 0.6 * H, (-0.47, 0.12), paint)
    elif subtype == "suv":
        L, W, H = u(4.5, 5.05), u(1.85, 2.0), u(1.65, 1.85)
        _car(b, L, W, H, 0.55 * H, (-0.48, 0.22), paint)
    elif subtype == "pickup":
        L, W, H = u(5.2, 5.9), u(1.9, 2.05), u(1.8, 1.95)
        belt = 0.55 * H
        b.box(-L / 2, L / 2, 0.4, belt, W, paint)  # body and bed floor
        b.box(-0.1 * L, 0.22 * L, belt, H, 0.92 * W, 0.05)  # cab
        b.box(-L / 2, -0.12 * L, belt, belt + 0.4, 0.08, paint, y=W / 2 - 0.04)  # bed walls
        b.box(-L / 2, -0.12 * L, belt, belt + 0.4, 0.08, paint, y=-W / 2 + 0.04)
        b.box(-L / 2, -L / 2 + 0.08, belt, belt + 0.4, W, paint)  # tailgate
        _axles(b, L, W, (0.32 * L, -0.3 * L))
    elif subtype == "van":
        L, W, H = u(4.8, 5.6), u(1.9, 2.05), u(1.9, 2.5)
        b.box(-L / 2, 0.36 * L, 0.3, H, W, paint)
        b.box(0.36 * L, L / 2, 0.3, 0.5 * H, W, paint)
        _axles(b, L, W, (0.33 * L, -0.32 * L))
    else:
        raise InputError(f"subtype: {subtype!r} is not a passenger vehicle")
    return L, W, H


def _bus(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A bus: one long body with a roof unit, on large wheels."""
    u = rng.uniform
    L, W, H = u(10.5, 13.0), u(2.5, 2.55), u(2.9, 3.15)
    b.box(-L / 2, L / 2, 0.35, H, W, paint)
    b.box(-0.2 * L, 0.05 * L, H, H + u(0.25, 0.4), 0.7 * W, paint)  # roof unit
    _axles(b, L, W, (0.32 * L, -0.25 * L), r=0.5)


def _box_truck(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A box truck: a cab ahead of a tall cargo box on a chassis."""
    u = rng.uniform
    L, W, H = u(7.0, 9.5), u(2.35, 2.5), u(3.2, 3.7)
    b.box(L / 2 - 2.2, L / 2, 0.45, u(2.5, 2.8), W - 0.1, paint)  # cab
    b.box(-L / 2, L / 2 - 2.4, 0.95, H, W, u(0.3, 0.6))  # cargo box
    b.box(-L / 2 + 0.5, L / 2 - 2.2, 0.5, 0.95, 1.0, 0.05)  # chassis
    _axles(b, L, W, (L / 2 - 1.2, -0.3 * L), r=0.5)


def _tractor_trailer(rng: np.random.Generator, b: _Builder, paint: float, parked: bool) -> None:
    """A tractor and its trailer; a parked one stands articulated half the time."""
    u = rng.uniform
    L, W, H = u(14.0, 18.0), u(2.5, 2.6), u(3.8, 4.1)
    b.box(L / 2 - 2.6, L / 2, 0.6, u(3.0, 3.8), W - 0.1, paint)  # cab
    b.box(L / 2 - 6.0, L / 2 - 2.6, 0.6, 1.2, 1.2, 0.05)  # tractor chassis
    _axles(b, L, W, (L / 2 - 1.3, L / 2 - 4.8), r=0.5)
    first = len(b.parts)
    hitch = L / 2 - 4.5
    b.box(-L / 2, hitch + 1.0, 1.25, H, W, u(0.3, 0.6))  # trailer
    _axles(b, L, W, (-L / 2 + 1.5, -L / 2 + 2.8), r=0.5)
    if parked and rng.random() < 0.5:
        b.articulate(first, hitch, u(-0.2, 0.2))


def _car_carrier(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A car carrier: a cab and two decks, each with a row of cars and an empty slot now
    and then."""
    u = rng.uniform
    L, W = u(16.0, 21.0), 2.55
    b.box(L / 2 - 2.6, L / 2, 0.6, 3.4, W - 0.1, paint)  # cab
    b.box(-L / 2, L / 2 - 2.8, 0.7, 0.95, W, 0.05)  # lower deck
    b.box(-L / 2, L / 2 - 0.8, 2.25, 2.4, W, 0.05)  # upper deck
    for deck_z0, deck_z1, x_end in ((0.95, 2.15, L / 2 - 2.9), (2.4, 3.75, L / 2 - 1.0)):
        x = -L / 2 + 0.2
        while x + 4.4 <= x_end:
            if rng.random() < 0.8:  # an empty slot now and then
                b.box(x, x + 4.3, deck_z0, deck_z1, 1.8, u(0.08, 0.5))
            x += 4.6
    _axles(b, L, W, (L / 2 - 1.3, -L / 2 + 2.0), r=0.5)


def _roof_load(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A car with a long load on its roof."""
    u = rng.uniform
    base = rng.choice(["sedan", "suv", "van"])
    L, W, H = _passenger(str(base), rng, b, paint)
    load = u(L + 0.8, L + 2.2)  # a ladder or kayak overhanging both ends
    shift = u(-0.4, 0.4)
    b.box(shift - load / 2, shift + load / 2, H, H + u(0.12, 0.25), u(0.35, 0.6), u(0.2, 0.7))


def _flatbed_ramp(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A flatbed truck with its loading ramp lowered from the bed to the road."""
    u = rng.uniform
    L, W = u(7.2, 9.0), u(2.3, 2.5)
    ramp = u(2.0, 2.8)
    angle = np.arcsin(min(1.0 / ramp, 0.9))  # the ramp runs from the bed down to the road
    run = ramp * np.cos(angle)
    bed_rear = -L / 2 + run
    b.box(L / 2 - 2.3, L / 2, 0.5, u(2.5, 2.7), W - 0.1, paint)  # cab
    b.box(bed_rear, L / 2 - 2.4, 0.95, 1.1, W, u(0.2, 0.4))  # flat bed
    b.box(bed_rear - ramp / 2, bed_rear + ramp / 2, 0.5 - 0.04, 0.5 + 0.04, W - 0.2, u(0.2, 0.5))
    cx, cz = bed_rear - run / 2, 0.55
    c, h, r, refl = b.parts[-1]
    b.parts[-1] = (np.array([cx, 0.0, cz]), h, _rot(0.0, -angle), refl)
    _axles(b, L, W, (L / 2 - 1.2, bed_rear + 1.2), r=0.45)


def _roof_box(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A car with a cargo box on its roof."""
    u = rng.uniform
    base = rng.choice(["sedan", "hatchback", "suv"])
    L, W, H = _passenger(str(base), rng, b, paint)
    box_l = u(1.4, 2.0)  # a closed cargo box on roof bars, within the car's length
    shift = u(-0.35, 0.05) * L
    b.box(
        shift - box_l / 2,
        shift + box_l / 2,
        H + 0.06,
        H + u(0.38, 0.48),
        u(0.75, 0.9),
        u(0.3, 0.6),
    )


def _tall_load(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A pickup with a load stacked in its bed, above the cab."""
    u = rng.uniform
    L, W, H = _passenger("pickup", rng, b, paint)
    top = u(2.2, 2.55)  # furniture or crates stacked in the bed, above the cab
    b.box(-L / 2 + 0.15, -0.14 * L, 0.55 * H, top, u(1.3, 1.65), u(0.15, 0.6))


def _open_door(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A car with one or two doors of one side standing open."""
    u = rng.uniform
    base = rng.choice(["sedan", "suv", "hatchback"])
    L, W, H = _passenger(str(base), rng, b, paint)
    # One or two doors of one side stand open, turned about their front hinges.
    side = rng.choice([-1.0, 1.0])
    hinges = [0.12 * L] if rng.random() < 0.6 else [0.12 * L, -0.12 * L]
    for hinge in hinges:
        door, angle = u(0.95, 1.1), u(0.6, 1.1)
        dx, dy = -np.cos(angle) * door / 2, side * (W / 2 + np.sin(angle) * door / 2)
        b.box(
            hinge + dx - door / 2,
            hinge + dx + door / 2,
            0.3,
            0.85 * H,
            0.06,
            paint,
            y=dy,
            yaw=-side * angle,
        )


def _tow_truck(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A flatbed tow truck; the car it carries is an object of its own ("towed_car")."""
    u = rng.uniform
    L, W = u(7.0, 8.0), u(2.3, 2.45)
    b.box(L / 2 - 2.3, L / 2, 0.5, u(2.4, 2.7), W - 0.1, paint)  # cab
    b.box(-L / 2, L / 2 - 2.4, TOW_BED_Z - 0.12, TOW_BED_Z, W, u(0.2, 0.4))  # tilt bed
    b.box(-L / 2 + 0.6, L / 2 - 2.3, 0.5, TOW_BED_Z - 0.12, 1.0, 0.05)  # chassis
    _axles(b, L, W, (L / 2 - 1.2, -L / 2 + 1.4), r=0.45)


def _microcar(rng: np.random.Generator, b: _Builder, paint: float) -> None:
    """A microcar: a short, narrow car."""
    u = rng.uniform
    L, W, H = u(2.0, 2.6), u(1.0, 1.4), u(1.35, 1.55)
    _car(b, L, W, H, 0.55 * H, (-0.45, 0.25), paint)


def _vehicle(subtype: str, rng: np.random.Generator, parked: bool) -> _Builder:
    """The parts of a random vehicle of a subtype (see ``make_shape``)."""
    u = rng.uniform
    b = _Builder()
    paint = u(0.08, 0.5)
    if subtype in ("sedan", "hatchback", "suv", "pickup", "van"):
        _passenger(subtype, rng, b, paint)
    elif subtype == "bus":
        _bus(rng, b, paint)
    elif subtype == "box_truck":
        _box_truck(rng, b, paint)
    elif subtype == "tractor_trailer":
        _tractor_trailer(rng, b, paint, parked)
    elif subtype == "car_carrier":
        _car_carrier(rng, b, paint)
    elif subtype == "roof_load":
        _roof_load(rng, b, paint)
    elif subtype == "flatbed_ramp":
        _flatbed_ramp(rng, b, paint)
    elif subtype == "roof_box":
        _roof_box(rng, b, paint)
    elif subtype == "tall_load":
        _tall_load(rng, b, paint)
    elif subtype == "open_door":
        _open_door(rng, b, paint)
    elif subtype == "tow_truck":
        _tow_truck(rng, b, paint)
    elif subtype == "towed_car":
        _passenger(str(rng.choice(["sedan", "hatchback", "suv"])), rng, b, paint)
    elif subtype == "microcar":
        _microcar(rng, b, paint)
    else:
        raise InputError(f"subtype: unknown vehicle subtype {subtype!r}")
    return b


def _pedestrian(rng: np.random.Generator) -> _Builder:
    u = rng.uniform
    b = _Builder()
    H, W, stride = u(1.55, 1.95), u(0.5, 0.7), u(0.3, 0.75)
    cloth = u(0.05, 0.35)
    b.box(-stride / 2, stride / 2, 0.0, 0.48 * H, 0.4 * W, cloth)  # legs
    b.box(-0.13, 0.13, 0.48 * H, 0.86 * H, W, cloth)  # torso and arms
    b.box(-0.1, 0.1, 0.86 * H, H, 0.2, 0.1)  # head
    return b


def _cyclist(rng: np.random.Generator) -> _Builder:
    u = rng.uniform
    b = _Builder()
    L, H = u(1.6, 1.9), u(1.6, 1.85)
    b.box(-L / 2, L / 2, 0.0, 0.95, 0.12, u(0.2, 0.5))  # bicycle
    b.box(-0.35, 0.05, 0.95, H, u(0.45, 0.65), u(0.05, 0.35))  # rider's upper body
    b.box(-0.2, 0.2, 0.4, 0.95, 0.4, u(0.05, 0.35))  # legs
    return b


def make_shape(cls: str, subtype: str, rng: np.random.Generator, parked: bool = False) -> Shape:
    """A random instance of an object class and subtype.

    Args:
        cls: ``vehicle``, ``pedestrian`` or ``cyclist``.
        subtype: a vehicle subtype (see ``rem_core.config.VEHICLE_SUBTYPES``), or the class name.
        rng: the source of the instance's dimensions.
        parked: parked tractor-trailers may stand articulated.

    Returns:
        The object's parts around its label box.
    """
    if cls == "vehicle":
        return _vehicle(subtype, rng, parked).build()
    if cls == "pedestrian":
        return _pedestrian(rng).build()
    if cls == "cyclist":
        return _cyclist(rng).build()
    raise InputError(f"class: unknown object class {cls!r}")
