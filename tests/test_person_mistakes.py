"""The simulated person's occasional mistakes: a wrong value (or a double press), then a correction."""

from __future__ import annotations

from simhome.person import Person


def _operate(
    p: Person, device: str, wanted: float, start: float, until: float, most: int = 99
) -> list[tuple[float, float]]:
    """Drive one device for [0, until) in 5 s steps (at most `most` sets): the person present and awake,
    who set it = them."""
    actual, t, sets = start, 0.0, []
    while t < until and len(sets) < most:
        v = p.tick(t, device, actual, wanted, True, True, "person")
        if v is not None:
            sets.append((t, v))
            actual = v
        t += 5.0
    return sets


def test_no_mistakes_by_default():
    p = Person(seed=0)
    for k in range(200):
        p.pending.clear()
        sets = _operate(p, "bedroom.fan", 2.0, 0.0, 1800.0)
        assert [v for _, v in sets] == [2.0], k
    assert p.mistake_count == {}


def test_a_wrong_level_is_corrected_after_a_human_delay():
    p = Person(seed=5, mistake_p=1.0)  # every action goes wrong
    sets = _operate(p, "bedroom.fan", 2.0, 0.0, 3600.0, most=1)
    assert len(sets) == 1 and sets[0][1] in (1.0, 3.0)  # a neighbouring level
    p.mistake_p = 0.0  # they notice and get it right
    t0 = sets[0][0]
    t, actual, fixed = t0 + 5.0, sets[0][1], None
    while t < t0 + 3600.0 and fixed is None:
        fixed = p.tick(t, "bedroom.fan", actual, 2.0, True, True, "person")
        t += 5.0
    assert fixed == 2.0 and t - t0 >= 10.0  # a human delay, not at once
    assert p.mistake_count == {"bedroom.fan": 1} and p.manual_count == {"bedroom.fan": 2}


def test_a_switch_pressed_twice_then_corrected():
    p = Person(seed=2, mistake_p=1.0)
    sets = _operate(p, "living.light", 1.0, 0.0, 3600.0, most=2)
    assert [v for _, v in sets] == [1.0, 0.0]  # on, then back off a few seconds later
    assert 1.0 <= sets[1][0] - sets[0][0] <= 10.0
    assert p.mistake_count == {"living.light": 1}


def test_an_unnoticed_mistake_stays():
    p = Person(seed=5, mistake_p=1.0, leave_grace=0.0)
    sets = _operate(p, "living.heating", 20.5, 17.0, 3600.0, most=1)
    wrong = sets[0][1]
    assert wrong in (19.5, 21.5)
    assert p.tick(2000.0, "living.heating", wrong, 20.5, False, False, "person") is None  # away: unnoticed
    assert p.tick(9000.0, "living.heating", wrong, 20.5, False, False, "person") is None


def test_mistake_rate_is_about_what_was_asked():
    p = Person(seed=11, mistake_p=0.025)
    for _ in range(2000):
        p.pending.clear()
        p.bounce.clear()
        _operate(p, "bedroom.fan", 2.0, 0.0, 600.0)
    first_actions = 2000
    rate = sum(p.mistake_count.values()) / first_actions
    assert 0.01 < rate < 0.045
