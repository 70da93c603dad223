"""Event reasons the grid reconcilers emit (DESIGN.md section 6: CapWords constants).

Owns: every `reason` string of the Events written about grids, and which type each carries.

Invariants:
- Normal Events only for a change we made (a child created, updated or deleted, or pool
  entries pruned); a reconcile that changes nothing emits nothing.
- Every failure is a Warning, with the same reason as the status condition type that reports
  it where there is one (InvalidSpec, TemplateNotFound, ChildConflict, ApplyFailed), so the
  Event and the condition are found by the same word.
- The EventRecorder deduplicates repeats, so reporting a lasting failure on every reconcile
  costs no request.
"""

from __future__ import annotations

from typing import Final

# --- Normal
CREATED: Final = "Created"
UPDATED: Final = "Updated"
DELETED: Final = "Deleted"
DELETION_SCHEDULED: Final = "DeletionScheduled"
TEMPLATES_PRUNED: Final = "TemplatesPruned"

# --- Warning (the first four equal the condition types of grid/conditions.py)
INVALID_SPEC: Final = "InvalidSpec"
TEMPLATE_NOT_FOUND: Final = "TemplateNotFound"
CHILD_CONFLICT: Final = "ChildConflict"
APPLY_FAILED: Final = "ApplyFailed"
DELETE_FAILED: Final = "DeleteFailed"
PRUNE_FAILED: Final = "PruneFailed"
STATUS_UPDATE_FAILED: Final = "StatusUpdateFailed"

NORMAL_REASONS: Final = frozenset({CREATED, UPDATED, DELETED, DELETION_SCHEDULED, TEMPLATES_PRUNED})
WARNING_REASONS: Final = frozenset(
    {
        INVALID_SPEC,
        TEMPLATE_NOT_FOUND,
        CHILD_CONFLICT,
        APPLY_FAILED,
        DELETE_FAILED,
        PRUNE_FAILED,
        STATUS_UPDATE_FAILED,
    }
)
