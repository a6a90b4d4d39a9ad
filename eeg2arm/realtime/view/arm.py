"""A simulated arm, moved by the decisions the way examples/arm_controller.py moves the real one: every decision
is a velocity command along x, `left` classes to -x and `right` classes to +x at SPEED times the decision's
probability, 0 while undecided (or for a class that names neither), held until the next decision."""
from __future__ import annotations

SPEED = 0.05  # m/s at full confidence, as examples/arm_controller.py
REACH = 0.25  # m either side of the start: the simulated arm stops at its ends
IDLE_S = 5.0  # the controller stops the arm when no decision comes for this long (a gap in the stream)


def velocity(label: str, confidence: float) -> float:
    """examples/arm_controller.py's command for a decision (confidence: its probability; ignored while undecided)."""
    direction = -1 if "left" in label else 1 if "right" in label else 0
    return direction * SPEED * confidence


class SimulatedArm:
    """Position x (m) along the rail, from 0; each command holds until the next, over the stream's time."""

    def __init__(self) -> None:
        self.x, self.vx, self.t = 0.0, 0.0, None

    def move(self, t: float, label: str, confidence: float) -> None:
        """The decision at `t` s into the stream: move under the previous command up to `t`, then take this one."""
        if self.t is not None:
            self.x = min(REACH, max(-REACH, self.x + self.vx * min(t - self.t, IDLE_S)))
        self.t, self.vx = t, velocity(label, confidence)
