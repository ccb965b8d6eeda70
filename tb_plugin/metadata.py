"""Names and limits of the Attention Flows TensorBoard plugin."""

PLUGIN_NAME = "attnflows"
TAB_NAME = "Attention Flows"

# The frontend module TensorBoard loads in the tab's iframe (see plugin.frontend_metadata).
ES_MODULE_PATH = "/index.js"

# Bounds on query values: anything outside is a 400, never a slow or huge request.
MAX_PARAM_CHARS = 65536  # longest accepted query value (a long `heads` list)
MAX_STEP = 10**15  # snapshot files name steps with 12 digits; anything larger cannot exist
MAX_HEAD_PAIRS = 4096  # `heads` entries
MAX_MOST_CHANGED = 64  # `k` of /compare

# Caches: memory stays bounded whatever the number of runs and snapshots (limits: one module).
from attnflows_callback.limits import (  # noqa: E402,F401
    ATTENTION_CACHE_BYTES,
    DERIVED_PER_RUN,
    LISTINGS_KEPT,
    OPEN_RUNS,
    OPEN_RUNS_BYTES,
    READ_PROBLEM_RUNS,
    REFUSED_NAMES,
    RUN_TABLES,
)

RUN_TABLE_TTL_S = 2.0  # how long TensorBoard's run list is reused before asking again
SETTLE_S = 2.0  # a directory changed this recently is re-checked on every request (coarse mtimes)

# What-changed routes (/aggregate, /explain, /lifetimes): each answer stays small whatever the run.
MAX_LIFETIME_EDGES = 200  # /lifetimes: edges of the current graph given a strip, the strongest first
MAX_LIFETIME_STEPS = 64  # /lifetimes: snapshots traced, spread evenly over the run (first, last and current kept)
MAX_AGGREGATE_WORDS = 24  # /aggregate: words listed, largest change in influence first
