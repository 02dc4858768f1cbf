"""The sensor watch's alarms as the alarm book sees them: each with its priority and
evidence; a tool worn within the line's own renewal plan held back (designed
suppression), and raised once past it."""

from __future__ import annotations

from api.routes.alarms import _sensor_conditions
from models.anomaly.watch import SensorAlarm


class Watch:
    def __init__(self, *alarms: SensorAlarm) -> None:
        self.alarms = list(alarms)

    def active(self) -> list[SensorAlarm]:
        return self.alarms


OFFSET = SensorAlarm("welding", "temperature_c", "offset", 10.0, 40.0, 60.0, 68.0, 32.0)
SPIKE = SensorAlarm("welding", "vibration_mm_s", "spike", 10.0, 11.0, 1.0, 9.0, 40.0)


def _wear(seen: float, on_plan: bool) -> SensorAlarm:
    return SensorAlarm(
        "printer", "wear", "wear", 5.0, 5.0, 0.5, seen, None, renewed_at=0.9, on_plan=on_plan
    )


def test_each_sensor_alarm_has_its_priority_and_evidence() -> None:
    offset, spike = _sensor_conditions(Watch(OFFSET, SPIKE))
    assert (offset.key.id, offset.priority) == ("sensor:welding:temperature_c", "high")
    assert offset.evidence["expected"] == 60.0
    assert offset.evidence["seen"] == 68.0
    assert offset.evidence["since_s"] == 10.0
    assert "read 68 °C where 60 °C was expected" in offset.message
    assert (spike.key.id, spike.priority) == ("sensor:welding:vibration_mm_s", "medium")
    assert _sensor_conditions(None) == []


def test_wear_within_the_renewal_plan_is_held_back_and_past_it_is_raised() -> None:
    assert _sensor_conditions(Watch(_wear(0.7, on_plan=True))) == []
    [past] = _sensor_conditions(Watch(_wear(1.1, on_plan=False)))
    assert (past.key.id, past.priority) == ("sensor:printer:wear", "low")
    assert past.evidence["renewed_at"] == 0.9
    assert "tool wear 1.10, past the 0.90" in past.message
