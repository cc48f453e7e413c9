"""The expression over a clip's time: one target throughout, or keyframes (``"0:neutral,2.5:happy@0.8,5:surprised"``)
between which the action-unit change is interpolated smoothly (eased, in action-unit space)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..geometry.action_units import expression_action_units, parse_action_units
from ..labels import canonical_expression

__all__ = ["ExpressionKey", "ExpressionSchedule", "parse_keyframes"]


@dataclass(frozen=True)
class ExpressionKey:
    """At ``time`` seconds the face shows ``target`` at ``strength`` (``None``: the pipeline's geometry strength)."""

    time: float
    target: str
    strength: float | None = None


def parse_keyframes(spec: str) -> list[ExpressionKey]:
    """Keyframes from ``"0:neutral,2.5:happy@0.8,5:surprised"`` (``seconds:expression[@strength]``), sorted by time.
    Raises ``ValueError`` saying which part is wrong."""
    keys = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        time_text, colon, rest = part.partition(":")
        target, at, strength_text = rest.partition("@")
        if not colon or not target.strip():
            raise ValueError(f"keyframe {part!r}: expected seconds:expression[@strength], e.g. 2.5:happy@0.8")
        try:
            time = float(time_text)
            strength = float(strength_text) if at else None
        except ValueError:
            raise ValueError(f"keyframe {part!r}: the time and strength must be numbers") from None
        if not time >= 0:
            raise ValueError(f"keyframe {part!r}: the time must be at least 0 seconds")
        if strength is not None and not 0.0 <= strength <= 1.0:
            raise ValueError(f"keyframe {part!r}: the strength must be in [0, 1]")
        keys.append(ExpressionKey(time, canonical_expression(target), strength))
    if not keys:
        raise ValueError("no keyframes given; expected e.g. 0:neutral,2.5:happy@0.8")
    times = [key.time for key in keys]
    if len(set(times)) != len(times):
        raise ValueError(f"two keyframes at the same time in {spec!r}")
    return sorted(keys, key=lambda key: key.time)


class ExpressionSchedule:
    """What each face is moved toward at each moment of a clip.

    Args:
        keys: the keyframes (one key: the same target throughout); none with ``action_units`` alone.
        default_strength: the strength of keys that give none (the pipeline's ``geometry_strength``).
        action_units: units added throughout, on top of the keys (``--au``).
    """

    def __init__(
        self,
        keys: list[ExpressionKey],
        default_strength: float,
        action_units: str | Mapping[str, float] | None = None,
    ) -> None:
        self.keys = sorted(keys, key=lambda key: key.time)
        self.default_strength = float(default_strength)
        self.action_units = parse_action_units(action_units)
        if not self.keys and not self.action_units:
            raise ValueError("Pass a `target` expression, `keyframes`, `action_units`, or a mix.")

    @classmethod
    def constant(
        cls, target: str | None, strength: float, action_units: str | Mapping[str, float] | None = None
    ) -> ExpressionSchedule:
        """One target (or none: the action units alone) for the whole clip."""
        keys = [] if target is None else [ExpressionKey(0.0, canonical_expression(target), strength)]
        return cls(keys, strength, action_units)

    def _change(self, key: ExpressionKey, own: Mapping[str, float]) -> dict[str, float]:
        strength = self.default_strength if key.strength is None else key.strength
        return expression_action_units(key.target, strength, own)

    def change_at(self, time: float, own: Mapping[str, float]) -> dict[str, float]:
        """The action-unit change for a face whose own readings are ``own`` at ``time`` seconds: between two keys,
        their changes blended with an eased (smoothstep) weight, then the added units."""
        change: dict[str, float] = {}
        if self.keys:
            later = next((k for k, key in enumerate(self.keys) if key.time > time), len(self.keys))
            if later == 0 or later == len(self.keys):
                change = self._change(self.keys[min(later, len(self.keys) - 1)], own)
            else:
                before, after = self.keys[later - 1], self.keys[later]
                u = (time - before.time) / (after.time - before.time)
                u = u * u * (3 - 2 * u)
                first, second = self._change(before, own), self._change(after, own)
                change = {
                    name: (1 - u) * first.get(name, 0.0) + u * second.get(name, 0.0) for name in {*first, *second}
                }
        for name, value in self.action_units.items():
            change[name] = change.get(name, 0.0) + value
        return {name: value for name, value in change.items() if value != 0.0}
