"""Cloud provider plugins for NightOps.

Each provider lives in its own module and imports its cloud SDK there, so importing this
package never imports an SDK. The host finds providers through the ``nightops.providers``
entry-point group (see :mod:`nightops.plugins`) and imports only the ones a config needs.
Only the SDK-free sandbox is re-exported here.
"""

from nightops_providers.sandbox import SandboxCall, SandboxProvider

__all__ = ["SandboxCall", "SandboxProvider"]
