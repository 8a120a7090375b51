"""Notifications: what the reconciler decided (a rollout, its verdict, a hold, a registry error),
delivered to chat and webhook sinks beside the Kubernetes Events the same decisions produce.

`model` (the notice and the sink protocol), `formats` (each sink's JSON body, pure), `backoff`
(retry decisions, pure), `delivery` (one sink's queue and HTTP task), `dispatch` (the sinks together).
"""

from autorollout.notify.model import DISCARD, Notice, NoticeOutcome, NoticeSink

__all__ = ["DISCARD", "Notice", "NoticeOutcome", "NoticeSink"]
