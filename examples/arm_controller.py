"""A robot-arm controller on eeg2arm's decisions: subscribe to the LSL decision stream and turn every decided
frame into a velocity command (printed here: send it to your arm's driver instead).

    eeg2arm stream --lsl "My Amp" --onnx model.onnx --out-lsl arm     # the decoder, in one terminal
    python examples/arm_controller.py arm [IDLE_S [MAX_AGE_S]]          # this controller, in another; Ctrl-C ends it

A decision older than MAX_AGE_S (default 1 s) when it arrives (a stalled decoder, a congested network) stops the
arm instead of moving it: it says what the person wanted a while ago, not now.
"""
import sys

from mne_lsl.lsl import StreamInlet, local_clock, resolve_streams

SPEED = 0.05  # m/s along the arm's x axis at full confidence: "left" classes move -x, "right" classes +x
STOP = "vx=+0.0000 m/s (stopped: no decisions)"
name, idle = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
max_age = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
found = resolve_streams(timeout=30, name=name)
if not found:
    sys.exit(f"no decision stream named {name!r}: start `eeg2arm stream ... --out-lsl {name}` first")
inlet = StreamInlet(found[0])  # recovers: when the decoder comes back under the same name, decisions resume
inlet.open_stream()
inlet.time_correction(timeout=10)  # the first estimate takes a while; later calls return at once
classes = [c.removeprefix("p_") for c in inlet.get_sinfo().get_channel_names()[:-1]]  # p_<class>..., decision
print(f"subscribed to {name}: classes {classes}", flush=True)
silence_said = False  # the silence's stop is printed once per silence
try:
    while True:
        sample, stamp = inlet.pull_sample(timeout=idle)  # (K + 1,): probabilities, then the decision (-1: undecided)
        if stamp is None:  # the decoder stopped or fell silent: stop the arm (once) and keep listening
            if not silence_said:
                print(STOP, flush=True)
            silence_said = True
            continue
        silence_said = False
        age = local_clock() - (stamp + inlet.time_correction())  # the decoder's clock mapped onto this machine's
        if age > max_age:
            print(f"t={stamp:.3f} vx=+0.0000 m/s (stopped: the decision is {age:.1f} s old)", flush=True)
            continue
        decision = int(sample[-1])
        label = classes[decision] if decision >= 0 else "undecided"
        direction = -1 if "left" in label else 1 if "right" in label else 0
        vx = direction * SPEED * (sample[decision] if decision >= 0 else 0.0)  # slower when less sure
        print(f"t={stamp:.3f} vx={vx:+.4f} m/s ({label})", flush=True)
except KeyboardInterrupt:  # the operator ends the controller: the arm stops
    print(STOP.replace("no decisions", "controller ended"), flush=True)
