"""Retry decisions of the notification sinks: which answers are retried, how long each wait is
(exponential, capped, jittered, at least `Retry-After`), and when a notice is given up."""

from __future__ import annotations

import pytest

from autorollout.notify.backoff import Answer, classify, retry_delay

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, Answer.DELIVERED),
        (202, Answer.DELIVERED),
        (204, Answer.DELIVERED),
        (None, Answer.RETRY),
        (408, Answer.RETRY),
        (429, Answer.RETRY),
        (500, Answer.RETRY),
        (503, Answer.RETRY),
        (301, Answer.REJECTED),
        (400, Answer.REJECTED),
        (403, Answer.REJECTED),
        (404, Answer.REJECTED),
    ],
)
def test_which_answers_are_retried(status: int | None, answer: Answer) -> None:
    assert classify(status) is answer


def test_the_wait_doubles_up_to_the_cap() -> None:
    waits = [retry_delay(n, base=1.0, cap=10.0, jitter=1.0) for n in range(1, 7)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_spreads_each_wait_between_half_and_all_of_its_step() -> None:
    assert retry_delay(3, base=1.0, cap=60.0, jitter=0.0) == 2.0
    assert retry_delay(3, base=1.0, cap=60.0, jitter=0.5) == 3.0
    assert retry_delay(3, base=1.0, cap=60.0, jitter=1.0) == 4.0
    assert retry_delay(3, base=1.0, cap=60.0, jitter=7.0) == 4.0  # out of range: clamped


def test_retry_after_is_a_minimum_and_beyond_the_cap_gives_up() -> None:
    assert retry_delay(1, base=1.0, cap=60.0, jitter=0.0, retry_after=7.0) == 7.0
    assert retry_delay(4, base=1.0, cap=60.0, jitter=1.0, retry_after=0.0) == 8.0
    assert retry_delay(1, base=1.0, cap=60.0, jitter=0.0, retry_after=61.0) is None
