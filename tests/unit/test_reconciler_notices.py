"""The notices the reconciler's decisions make: a rolledOut one per moved container, with the
RolloutTriggered Event's text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autorollout.notify import NoticeOutcome
from reconciler.events import rollout_message, rollout_notices
from reconciler.plan import DigestChange, Rollout
from reconciler.workload import parse_workload
from tests.unit.reconciler_objects import D1, D2, IMAGE, SIDECAR, workload_object

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


def test_a_rollout_makes_one_rolled_out_notice_per_moved_container() -> None:
    w = parse_workload(
        "StatefulSet",
        workload_object(
            kind="StatefulSet", name="db", namespace="data", containers=[("app", IMAGE), ("side", SIDECAR)]
        ),
    )
    action = Rollout((DigestChange("app", IMAGE, D1, D2), DigestChange("side", SIDECAR, None, D1)), {})

    notices = rollout_notices(w, action, AT)

    assert [(n.container, n.image, n.old_digest, n.new_digest) for n in notices] == [
        ("app", IMAGE, D1, D2),
        ("side", SIDECAR, None, D1),
    ]
    for notice in notices:
        assert notice.outcome is NoticeOutcome.ROLLED_OUT
        assert (notice.kind, notice.namespace, notice.name, notice.at) == ("StatefulSet", "data", "db", AT)
        assert notice.detail == rollout_message(action)
