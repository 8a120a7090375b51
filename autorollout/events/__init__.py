"""Registry events: each source's push notification parsed (pure, one module per source) into the
images whose tag moved, as the registry said; the product believes nothing until its own lookup.

The receiver (`autorollout.events.receiver`) serves them over HTTP and hands the images to a
callback; the command line wires that callback to the reconciler's cycle.
"""

from autorollout.events.model import ImageEvent, MalformedEventError

__all__ = ["ImageEvent", "MalformedEventError"]
