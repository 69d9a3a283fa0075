"""Channel-importance criteria, selectable by name."""

from edgeprune.prune.importance import l1 as _l1  # noqa: F401  (registers "l1")
from edgeprune.prune.importance.base import (
    Importance,
    ScoringContext,
    get_importance,
    importance_names,
    register_importance,
)

__all__ = ["Importance", "ScoringContext", "get_importance", "importance_names", "register_importance"]
