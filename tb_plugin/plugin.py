"""The Attention Flows TensorBoard plugin: loader, thin routes, static files.

Each route parses its query (:mod:`.params`), looks the run up in the table of discovered
runs (:mod:`.runs`), calls a pure ``*_impl`` function (:mod:`.api`) and answers through
``http_util.Respond``. Anything unexpected is logged and answered with a short 500; it
never reaches the rest of TensorBoard.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import threading
from pathlib import Path

from werkzeug import wrappers

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.context import RequestContext
from tensorboard.plugins import base_plugin

from attnflows_callback.lru import LRU
from attnflows_callback.schema import DATA_DIRNAME
from attnflows_callback.store import dead_writer

from . import api, changes, derived, display, metadata, params, registry
from .errors import ApiError, MethodNotAllowed, NotFound, describe, neutralise_bidi
from .runs import ActiveRuns, RunCache, RunCatalog, files_signature, settled

logger = logging.getLogger("attnflows_tb")

# Static files: the frontend engineer owns tb_plugin/static/. The allow-list is every
# regular (non-symlink, non-dot) file with one of these suffixes found under that folder
# when the plugin starts; a request names a file by its exact relative name
# (`/static/views/grid.js`), matched against that list, never joined into a path.
# Add a suffix here (with its Content-Type) to serve a new kind of file.
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
_STATIC_MARKER = f"/{metadata.PLUGIN_NAME}/static/"


def static_files(directory: Path = STATIC_DIR) -> dict[str, Path]:
    """The allow-list: relative posix name -> file, for the servable files under ``directory``."""
    found: dict[str, Path] = {}
    if not directory.is_dir():
        return found
    for folder, subdirs, files in os.walk(directory, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d)))
        for file in files:
            path = Path(folder) / file
            if file.startswith(".") or path.suffix not in STATIC_TYPES or path.is_symlink() or not path.is_file():
                continue
            found[path.relative_to(directory).as_posix()] = path
    return found


class AttentionFlowsLoader(base_plugin.TBLoader):
    """Loads :class:`AttentionFlowsPlugin`; a failure is logged and leaves TensorBoard running without it."""

    def load(self, context):
        try:
            return AttentionFlowsPlugin(context)
        except Exception:  # noqa: BLE001 - never break TensorBoard's start-up
            logger.exception("attnflows: the Attention Flows plugin could not start; TensorBoard runs without it")
            return None


def _view_options(args) -> dict:
    """The view transform of /aggregate and /explain: special tokens (default) and punctuation dropped as targets.

    ``targets`` (the display option of /flow, /compare and /attention, see display.py) sets both at
    once and wins over ``drop_special`` / ``drop_punctuation``, so the tab sends one vocabulary.
    """
    if params.text(args, "targets") is not None:
        _, drop_special, drop_punctuation = display.TARGETS[display.parse(args).targets]
        return {"drop_special": drop_special, "drop_punctuation": drop_punctuation}
    return {"drop_special": params.flag(args, "drop_special", default=True),
            "drop_punctuation": params.flag(args, "drop_punctuation", default=False)}


class PreparedJson(bytes):
    """A JSON body already serialised and gzipped (kept per run version, see ``_prepared``)."""


def _json_bytes(value) -> bytes:
    """Compact JSON, with every bidirectional control in every text neutralised (one pass over the text)."""
    return neutralise_bidi(json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)).encode("utf-8")


def _route(method):
    """A thin route: GET/HEAD only; ApiError -> its status and {"error": ...}; anything else -> logged 500."""

    @wrappers.Request.application
    @functools.wraps(method)
    def route(self, request):
        if request.method not in ("GET", "HEAD"):
            return _error(request, MethodNotAllowed("only GET requests are served"), [("Allow", "GET, HEAD")])
        try:
            result = method(self, request)
        except ApiError as err:
            return _error(request, err)
        except Exception:  # noqa: BLE001 - a plugin bug must not take TensorBoard down
            logger.exception("attnflows: %s failed", request.path)
            return http_util.Respond(request, _json_bytes({"error": "internal error (see the TensorBoard log)"}),
                                     "application/json", code=500)
        if isinstance(result, PreparedJson):
            return http_util.Respond(request, bytes(result), "application/json", content_encoding="gzip")
        if isinstance(result, bytes):
            return http_util.Respond(request, result, api.BINARY)
        return http_util.Respond(request, _json_bytes(result), "application/json")

    return route


def _error(request, err: ApiError, headers=None):
    return http_util.Respond(request, _json_bytes(api.error_body(err)), "application/json", code=err.http_code,
                             headers=headers)


def _writer_checked(listing: dict, run_dir: Path) -> dict:
    """A cached "running" is checked again: a killed writer changes no file, only its process is gone."""
    if listing.get("status") != "running":
        return listing
    gone = dead_writer(run_dir / DATA_DIRNAME)
    return listing if gone is None else {**listing, "status": "interrupted", "status_reason": gone}


class AttentionFlowsPlugin(base_plugin.TBPlugin):
    """Serves attnflows runs found in TensorBoard's logdir to the "Attention Flows" tab."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._data_provider = context.data_provider
        self._multiplexer = context.multiplexer
        self.catalog = RunCatalog(context.logdir, self._list_names)
        self.active_runs = ActiveRuns(self.catalog, RequestContext)
        self.runs = RunCache()
        self.attention = derived.StepCache()  # decoded tensors, and each step's work done once (derived.py)
        self.static = static_files()
        self._listings: LRU = LRU(metadata.LISTINGS_KEPT)  # run_dir -> (signature, checked_at, listing)
        self._listings_lock = threading.Lock()

    # ----------------------------------------------------------- TBPlugin API
    def get_plugin_apps(self):
        return {
            "/runs": self._serve_runs,
            "/probe": self._serve_probe,
            "/attention": self._serve_attention,
            "/summary": self._serve_summary,
            "/heads": self._serve_heads,
            "/flow": self._serve_flow,
            "/compare": self._serve_compare,
            "/registries": self._serve_registries,
            "/aggregate": self._serve_aggregate,
            "/explain": self._serve_explain,
            "/lifetimes": self._serve_lifetimes,
            metadata.ES_MODULE_PATH: self._serve_index,
            "/static/*": self._serve_static,
        }

    def is_active(self) -> bool:
        """True if TensorBoard lists a run holding attnflows data: a flag kept fresh off the request path."""
        return self.active_runs.active

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path=metadata.ES_MODULE_PATH, tab_name=metadata.TAB_NAME)

    def _list_names(self, ctx, experiment_id: str) -> list[str]:
        if self._data_provider is not None:
            return [run.run_name for run in self._data_provider.list_runs(ctx, experiment_id=experiment_id)]
        if self._multiplexer is not None:
            return list(self._multiplexer.Runs())
        return []

    # --------------------------------------------------------------- lookups
    def _open(self, request, name: str):
        run_dir = self.catalog.lookup(name, plugin_util.context(request.environ), plugin_util.experiment_id(request.environ))
        try:
            return self.runs.get(run_dir)
        except Exception as err:  # noqa: BLE001 - an unreadable run is not found, with the reason
            raise NotFound(f"run could not be opened: {describe(err)}") from None

    def _listing(self, name: str, run_dir: Path) -> dict:
        """A run's /runs entry; unchanged runs are answered without opening them again."""
        signature = files_signature(run_dir)
        with self._listings_lock:
            cached = self._listings.get(run_dir)
        fresh = (signature, self.runs.read_problems_noted)
        if cached is not None and cached[0] == fresh and settled(signature, cached[1]) and self.runs.peek(run_dir) is None:
            return _writer_checked({**cached[2], "run": name}, run_dir)
        entry = self.runs.get(run_dir)
        listing = entry.cached(("listing", name), lambda: api.run_listing_impl(name, entry))
        with self._listings_lock:
            self._listings.put(run_dir, ((entry.signature, self.runs.read_problems_noted), entry.checked_at, listing))
        return _writer_checked(listing, run_dir)

    @staticmethod
    def _prepared(entry, key: tuple, compute) -> PreparedJson:
        """A whole-run JSON answer, serialised and gzipped once per version of the run."""
        return entry.cached(("body",) + key, lambda: PreparedJson(gzip.compress(_json_bytes(compute()), 3, mtime=0)))

    # ----------------------------------------------------------------- routes
    @_route
    def _serve_runs(self, request):
        table = self.catalog.table(plugin_util.context(request.environ), plugin_util.experiment_id(request.environ))
        listings, skipped = [], []
        for name, run_dir in table.dirs.items():
            if not self.catalog.still_inside(name, run_dir):
                continue
            try:
                listings.append(self._listing(name, run_dir))
            except Exception as err:  # noqa: BLE001 - one bad run must not hide the others
                skipped.append({"run": name, "reason": describe(err)})
        return api.runs_impl(listings, skipped)

    @_route
    def _serve_probe(self, request):
        name = params.text(request.args, "run", required=True)
        entry = self._open(request, name)
        return self._prepared(entry, ("probe", name), lambda: api.probe_impl(name, entry))

    @_route
    def _serve_attention(self, request):
        args = request.args
        name = params.text(args, "run", required=True)
        query = dict(**params.snapshot(args), layer=params.integer(args, "layer", high=4096),
                     head=params.integer(args, "head", high=4096), display=display.parse(args))
        return api.attention_impl(name, self._open(request, name), self.attention, **query)

    @_route
    def _serve_summary(self, request):
        name = params.text(request.args, "run", required=True)
        stream = params.text(request.args, "stream")
        entry = self._open(request, name)
        return self._prepared(entry, ("summary", name, stream), lambda: api.summary_impl(name, entry, stream=stream))

    @_route
    def _serve_heads(self, request):
        args = request.args
        name = params.text(args, "run", required=True)
        query = dict(step=params.integer(args, "step", required=True),
                     example=params.integer(args, "example"),
                     stream=params.text(args, "stream"))
        entry = self._open(request, name)
        return self._prepared(entry, ("heads", name, tuple(sorted(query.items()))),
                              lambda: api.heads_impl(name, entry, self.attention, **query))

    @_route
    def _serve_flow(self, request):
        args = request.args
        name = params.text(args, "run", required=True)
        query = dict(**params.snapshot(args),
                     method=params.text(args, "method", required=True),
                     source=params.integer(args, "source", high=1 << 20),
                     layer=params.integer(args, "layer", high=4096),
                     tau=params.real(args, "tau", low=0.0, high=1.0, default=api.DEFAULT_TAU),
                     heads=params.heads(args),
                     residual=params.flag(args, "residual", default=True),
                     view=params.text(args, "view"), display=display.parse(args))
        if query["method"] not in api.FLOW_METHODS:
            raise MethodNotAllowed(f"method must be one of {list(api.FLOW_METHODS)}")
        return api.flow_impl(name, self._open(request, name), self.attention, **query)

    @_route
    def _serve_registries(self, request):
        return registry.registries_impl()

    @_route
    def _serve_compare(self, request):
        args = request.args
        name = params.text(args, "run", required=True)
        other_name = params.text(args, "other_run", required=True)
        query = dict(step=params.integer(args, "step", required=True),
                     other_step=params.integer(args, "other_step", required=True),
                     example=params.integer(args, "example"),
                     stream=params.text(args, "stream"),
                     tau=params.real(args, "tau", low=0.0, high=1.0, default=api.DEFAULT_TAU),
                     source=params.integer(args, "source", high=1 << 20),
                     heads=params.heads(args),
                     k=params.integer(args, "k", high=metadata.MAX_MOST_CHANGED),
                     mode=params.text(args, "mode") or "mean", display=display.parse(args))
        if query["k"] is None:
            query["k"] = api.DEFAULT_MOST_CHANGED
        entry = self._open(request, name)
        other = entry if other_name == name else self._open(request, other_name)
        return api.compare_impl(name, entry, other_name, other, self.attention, **query)

    @_route
    def _serve_aggregate(self, request):
        args = request.args
        name = params.text(args, "run", required=True)
        query = dict(step=params.integer(args, "step", required=True),
                     selection=params.text(args, "selection") or "all", stream=params.text(args, "stream"),
                     **_view_options(args))
        entry = self._open(request, name)
        try:
            return self._prepared(entry, ("aggregate", name, tuple(sorted(query.items()))),
                                  lambda: changes.aggregate_impl(name, entry, cache=self.attention, **query))
        except derived.Pending as pending:  # computed off the request path: the tab asks again (docs/http_api.md)
            return {"run": name, "step": query["step"], "pending": True, "ready": pending.ready, "needed": pending.needed}

    @_route
    def _serve_explain(self, request):
        args = request.args
        name = params.text(args, "run", required=True)
        query = dict(example=params.integer(args, "example", required=True), step=params.integer(args, "step"),
                     stream=params.text(args, "stream"),
                     tau=params.real(args, "tau", low=0.0, high=1.0, default=api.DEFAULT_TAU),
                     mode=params.text(args, "mode") or "mean", **_view_options(args))
        entry = self._open(request, name)
        return self._prepared(entry, ("explain", name, tuple(sorted(query.items()))),
                              lambda: changes.explain_impl(name, entry, **query))

    @_route
    def _serve_lifetimes(self, request):
        args = request.args
        name = params.text(args, "run", required=True)
        heads = params.heads(args)
        query = dict(**params.snapshot(args), view=params.text(args, "view") or "raw",
                     source=params.integer(args, "source", high=1 << 20),
                     layer=params.integer(args, "layer", high=4096),
                     tau=params.real(args, "tau", low=0.0, high=1.0, default=api.DEFAULT_TAU),
                     residual=params.flag(args, "residual", default=True))
        entry = self._open(request, name)
        key = ("lifetimes", name, tuple(sorted(query.items())), None if heads is None else tuple(heads))
        return self._prepared(entry, key, lambda: changes.lifetimes_impl(name, entry, self.attention, heads=heads,
                                                                         **query))

    # ---------------------------------------------------------------- static
    @wrappers.Request.application
    def _serve_index(self, request):
        return self._static_response(request, metadata.ES_MODULE_PATH.lstrip("/"))

    @wrappers.Request.application
    def _serve_static(self, request):
        path = request.path
        at = path.find(_STATIC_MARKER)
        return self._static_response(request, path[at + len(_STATIC_MARKER) :] if at >= 0 else "")

    def _static_response(self, request, name: str):
        if request.method not in ("GET", "HEAD"):
            return _error(request, MethodNotAllowed("only GET requests are served"), [("Allow", "GET, HEAD")])
        path = self.static.get(name)  # exact match against the allow-list; `name` never becomes a path
        if path is None:
            return _error(request, NotFound("no such static file"))
        try:
            content = path.read_bytes()
        except OSError:
            logger.warning("attnflows: static file %s could not be read", name, exc_info=True)
            return _error(request, NotFound("no such static file"))
        return http_util.Respond(request, content, STATIC_TYPES[path.suffix])
