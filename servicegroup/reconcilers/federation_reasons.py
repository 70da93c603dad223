"""Event reasons of multi-cluster distribution (DESIGN.md section 6: CapWords constants).

Owns: every `reason` of the Events the federation controllers write, and the `reason` label
values of `servicegroup_federation_failures_total`.

Who the Events are about (Events are written to the cluster the controller runs in):
- hub side: the original grid (`Copy*`, `StatusSyncFailed`);
- member side: the local grid (`LocalGrid*`; a rejected or conflicting local grid that does
  not exist is still named as the involved object), and the parent-cluster Secret for the
  connection to the hub (`HubConnected`, `HubUnreachable`, `HubRequestFailed`,
  `InvalidHubCredentials`).

Invariants: Normal Events only for a change we made (or a connection made); every failure is
a Warning and counts in the failures metric under the same word; the EventRecorder
deduplicates repeats, so a lasting failure costs no request per reconcile.
"""

from __future__ import annotations

from typing import Final

# --- hub side, Normal
COPY_CREATED: Final = "CopyCreated"
COPY_UPDATED: Final = "CopyUpdated"
COPY_DELETED: Final = "CopyDeleted"
COPY_RELEASED: Final = "CopyReleased"  # the hub removed the member's finalizer itself
# --- hub side, Warning
COPY_CONFLICT: Final = "CopyConflict"
COPY_REJECTED: Final = "CopyRejected"
STATUS_SYNC_FAILED: Final = "StatusSyncFailed"

# --- member side, Normal
LOCAL_GRID_CREATED: Final = "LocalGridCreated"
LOCAL_GRID_UPDATED: Final = "LocalGridUpdated"
LOCAL_GRID_DELETED: Final = "LocalGridDeleted"
HUB_CONNECTED: Final = "HubConnected"
# --- member side, Warning
LOCAL_GRID_CONFLICT: Final = "LocalGridConflict"
LOCAL_GRID_REJECTED: Final = "LocalGridRejected"
HUB_UNREACHABLE: Final = "HubUnreachable"
HUB_REQUEST_FAILED: Final = "HubRequestFailed"
INVALID_HUB_CREDENTIALS: Final = "InvalidHubCredentials"

HUB_FAILURES: Final = (COPY_CONFLICT, COPY_REJECTED, STATUS_SYNC_FAILED)
MEMBER_FAILURES: Final = (
    LOCAL_GRID_CONFLICT,
    LOCAL_GRID_REJECTED,
    HUB_UNREACHABLE,
    HUB_REQUEST_FAILED,
    INVALID_HUB_CREDENTIALS,
    STATUS_SYNC_FAILED,
)
