"""kube-autorollout: roll out workloads when the image behind a mutable tag moves at its registry.

This is the shared core: configuration, image references, registry access, credentials and
Kubernetes access. It never imports ``webhook`` or ``reconciler``; only ``autorollout.cli``, the
composition root, puts the halves together.
"""

__version__ = "0.1.0"
