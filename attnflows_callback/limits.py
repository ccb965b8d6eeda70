"""Every size and count limit of the read side and the plugin, named in one place.

Hostile or huge files cost bounded time and memory (docs/format.md: "What a hostile or damaged
file can cost"), and every cache is bounded (:class:`~attnflows_callback.lru.LRU`) whatever the
number of runs and snapshots. Pure constants: the TensorBoard plugin imports them at start.
"""

# ---------------------------------------------------------------- reading a run (reader.py, store.py)
MAX_JSON_BYTES = 16 * 2**20  # run.json and status.json: anything larger is not ours
MAX_STATUS_BYTES = 2**16  # status.json as the reader reads it
MAX_READ_BYTES = 256 * 2**20  # any dataset read whole (probe, logits, summaries): a larger one is refused
MAX_ATTENTION_VALUES = 2**28  # one example's decoded attention (1 GiB of float32) at most
MAX_CLASSES = 2**16
OPEN_FILES = 16  # open shard handles a reader `Run` keeps

# ---------------------------------------------------------------- the plugin's caches (tb_plugin/)
OPEN_RUNS = 8  # open reader `Run`s kept (each holds up to OPEN_FILES open shards)
OPEN_RUNS_BYTES = 512 * 2**20  # and at most this much of their in-memory index (summaries, logits)
ATTENTION_CACHE_BYTES = 384 * 2**20  # decoded attention tensors kept (two examples' snapshots at 12x12x512)
DERIVED_PER_RUN = 32  # computed responses (summary, probe, head grids) kept per open run
RUN_TABLES = 16  # experiments whose run table is kept
REFUSED_NAMES = 4096  # run names already logged as pointing outside the logdir
READ_PROBLEM_RUNS = 4096  # runs whose unreadable shards are remembered after the run is closed
LISTINGS_KEPT = 4096  # /runs entries kept for runs that did not change
DERIVED_ARRAYS_BYTES = 160 * 2**20  # per-snapshot work kept by the plugin (head means as shown, head metrics)
WARM_QUEUE = 1024  # snapshots queued for the plugin's background thread to prepare ahead of the browser
AGGREGATE_INLINE_VALUES = 2**24  # /aggregate decodes at most this many weights in the request; more: in the background
