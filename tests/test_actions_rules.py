"""Rule recognisers on synthetic stick-figure sequences: each action is found, and its look-alikes are not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgepose.actions import ActionEngine, ActionsConfig
from edgepose.actions.synthetic import Figure, lying, sequence, sitting, squatting, standing

FLOOR = 460.0


def run(keyframes, fps=30.0, noise=1.0, cfg=None, track_id=7, seed=0):
    eng = ActionEngine(cfg or ActionsConfig())
    events = []
    for t, pose in sequence(keyframes, fps, noise_px=noise, seed=seed):
        pose.track_id = track_id
        events += eng.update([pose], t)
    return events + eng.close()


def of(events, action, kind=None):
    return [e for e in events if e.action == action and (kind is None or e.kind == kind)]


def fall_keyframes(s: Figure, floor=FLOOR, dur=0.6):
    return [(0, s), (1.0, s), (1.0 + dur, lying(s, floor)), (5.0, lying(s, floor))]


def test_fall_is_detected_once_with_track_and_times():
    ev = run(fall_keyframes(standing(FLOOR)))
    falls = of(ev, "fall")
    assert len(falls) == 1
    f = falls[0]
    assert f.kind == "instant" and f.track_id == 7
    assert 0.8 <= f.start <= 1.2  # the drop began at 1.0 s
    assert 1.6 <= f.end <= 3.5  # confirmed after lying for fall_persist_s
    assert 0.5 <= f.confidence <= 1.0


@pytest.mark.parametrize("size,x", [(30.0, 100.0), (80.0, 320.0), (160.0, 900.0)])
def test_fall_is_scale_and_position_invariant(size, x):
    floor = 1000.0
    s = standing(floor, x=x, size=size)
    assert len(of(run(fall_keyframes(s, floor), noise=size / 80.0), "fall")) == 1


def test_sitting_down_quickly_is_not_a_fall():
    s = standing(FLOOR)
    ev = run([(0, s), (1.0, s), (1.35, sitting(s, FLOOR)), (5.0, sitting(s, FLOOR))])
    assert of(ev, "fall") == []
    assert [e.kind for e in of(ev, "sitting")] == ["start", "end"]


def test_bending_to_pick_something_up_is_not_a_fall():
    s = standing(FLOOR)
    bent = s.with_(tilt=95.0, l_arm=20.0, r_arm=20.0)
    ev = run([(0, s), (1.0, s), (1.4, bent), (3.5, bent), (4.0, s), (6.0, s)])
    assert of(ev, "fall") == []
    assert of(ev, "lying") == []


def test_lying_down_slowly_is_not_a_fall_but_is_lying():
    s = standing(FLOOR)
    ev = run(
        [
            (0, s),
            (1.0, s),
            (3.0, sitting(s, FLOOR)),
            (4.0, sitting(s, FLOOR)),
            (7.0, lying(s, FLOOR)),
            (10.0, lying(s, FLOOR)),
        ]
    )
    assert of(ev, "fall") == []
    assert [e.kind for e in of(ev, "lying")] == ["start", "end"]
    assert of(ev, "squat") == []  # knees bend and straighten while lying down: not a squat


def test_fall_needs_lying_to_persist():
    s = standing(FLOOR)
    # Drops fast to the floor and is up again before fall_persist_s: a dive or a trip-and-recover.
    ev = run([(0, s), (1.0, s), (1.5, lying(s, FLOOR)), (1.8, lying(s, FLOOR)), (2.5, s), (5.0, s)])
    assert of(ev, "fall") == []


def test_posture_sequence_standing_sitting_standing():
    s = standing(FLOOR)
    ev = run([(0, s), (2.0, s), (2.5, sitting(s, FLOOR)), (5.0, sitting(s, FLOOR)), (5.5, s), (8.0, s)])
    starts = [e.action for e in ev if e.kind == "start" and e.action in ("standing", "sitting", "lying")]
    assert starts == ["standing", "sitting", "standing"]
    sit = of(ev, "sitting", "end")[0]
    assert 2.0 <= sit.start <= 3.0 and 5.0 <= sit.end <= 6.0


def test_hands_raised_start_and_end():
    s = standing(FLOOR)
    up = s.with_(l_arm=170.0, r_arm=165.0)
    ev = run([(0, s), (1.0, s), (1.2, up), (3.0, up), (3.2, s), (5.0, s)])
    hr = of(ev, "hands_raised")
    assert [e.kind for e in hr] == ["start", "end"]
    assert 1.0 <= hr[0].start <= 1.3 and 2.9 <= hr[1].end <= 3.3
    assert set(hr[0].extra["hands"]) == {"left", "right"}
    # Both hands required: one raised hand is not enough.
    one = s.with_(l_arm=170.0)
    cfg = ActionsConfig(hands_raised_min_hands=2)
    assert of(run([(0, s), (1.0, one), (3.0, one)], cfg=cfg), "hands_raised") == []


def wave_keyframes(s: Figure, swings: int, period: float = 0.3, amp: float = 20.0):
    kf = [(0, s), (1.0, s)]
    for i in range(swings):
        kf.append((1.3 + period * i, s.with_(l_arm=120.0 + (amp if i % 2 else -amp), l_elbow=30.0)))
    t = kf[-1][0]
    return kf + [(t + 0.3, s), (t + 2.0, s)]


def test_waving_start_and_end():
    ev = run(wave_keyframes(standing(FLOOR), 8))
    w = of(ev, "waving")
    assert [e.kind for e in w] == ["start", "end"]
    assert w[0].extra["hand"] == "left"
    assert 1.5 <= w[0].start <= 2.8


def test_raised_still_hand_or_tiny_motion_is_not_waving():
    s = standing(FLOOR)
    up = s.with_(l_arm=120.0, l_elbow=30.0)
    assert of(run([(0, s), (1.0, up), (5.0, up)]), "waving") == []
    assert of(run(wave_keyframes(s, 10, amp=2.0)), "waving") == []


def test_squat_repetitions_are_counted():
    s = standing(FLOOR)
    kf = [(0, s)]
    for i in range(10):
        t = 1.0 + 1.6 * i
        kf += [(t, s), (t + 0.6, squatting(s, FLOOR)), (t + 0.8, squatting(s, FLOOR))]
    kf += [(kf[-1][0] + 0.6, s), (kf[-1][0] + 2.0, s)]
    ev = run(kf)
    sq = of(ev, "squat", "count")
    assert [e.count for e in sq] == list(range(1, 11))
    assert all(e.end > e.start for e in sq)
    # Half-depth knee bends do not reach squat_down_angle.
    shallow = [(0, s)] + [(1.0 + i, squatting(s, FLOOR, 0.3) if i % 2 else s) for i in range(8)]
    assert of(run(shallow), "squat") == []


def test_forgotten_track_ends_open_actions():
    s = standing(FLOOR)
    up = s.with_(l_arm=170.0, r_arm=170.0)
    eng = ActionEngine(ActionsConfig(forget_after_s=1.0))
    ev = []
    for t, p in sequence([(0, up), (2.0, up)], 30):
        p.track_id = 3
        ev += eng.update([p], t)
    assert [e.kind for e in of(ev, "hands_raised")] == ["start"]
    ev = eng.update([], 2.5)
    assert ev == []  # not gone long enough
    ev = eng.update([], 3.5)
    assert {(e.action, e.kind) for e in ev} == {("hands_raised", "end"), ("standing", "end")}
    assert 3 not in eng.rules


def test_two_people_are_kept_apart():
    s1, s2 = standing(FLOOR, x=200.0), standing(FLOOR, x=900.0)
    seq1 = sequence(fall_keyframes(s1), 30)
    seq2 = sequence([(0, s2), (5.0, s2)], 30)
    eng = ActionEngine()
    ev = []
    for (t, p1), (_, p2) in zip(seq1, seq2):
        p1.track_id, p2.track_id = 1, 2
        ev += eng.update([p1, p2], t)
    assert [e.track_id for e in of(ev, "fall")] == [1]


def test_config_validation():
    with pytest.raises(ValidationError):
        ActionsConfig(rules=["fall", "dance"])
    with pytest.raises(ValidationError):
        ActionsConfig(squat_up_angle=100, squat_down_angle=120)
    with pytest.raises(ValidationError):
        ActionsConfig(fall_min_drop=-1)
    with pytest.raises(ValidationError):
        ActionsConfig(unknown_field=1)


def test_rules_can_be_switched_off():
    ev = run(fall_keyframes(standing(FLOOR)), cfg=ActionsConfig(rules=["posture"]))
    assert of(ev, "fall") == [] and of(ev, "lying")
