"""Channel-importance criteria, selectable by name."""

from edgeprune.prune.importance import bn as _bn  # noqa: F401  (registers "bn")
from edgeprune.prune.importance import l1 as _l1  # noqa: F401  (registers "l1")
from edgeprune.prune.importance import lasso as _lasso  # noqa: F401  (registers "lasso")
from edgeprune.prune.importance import nisp as _nisp  # noqa: F401  (registers "nisp")
from edgeprune.prune.importance import taylor as _taylor  # noqa: F401  (registers "taylor")
from edgeprune.prune.importance.base import (
    Importance,
    ScoringContext,
    get_importance,
    importance_names,
    register_importance,
)

__all__ = ["Importance", "ScoringContext", "get_importance", "importance_names", "register_importance"]
