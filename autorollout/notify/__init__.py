"""Notifications: what the reconciler decided (a rollout, its verdict, a hold, a registry error),
delivered to chat and webhook sinks beside the Kubernetes Events the same decisions produce."""

from autorollout.notify.model import DISCARD, Notice, NoticeOutcome, NoticeSink

__all__ = ["DISCARD", "Notice", "NoticeOutcome", "NoticeSink"]
