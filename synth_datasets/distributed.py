"""``ray_map``: run any map-callable as a Ray Data ``map_batches`` UDF (Ray is the engine, no scheduler here).

The callable is pickled once on the driver (contract 2: it pickles to its configuration only) and
unpickled in each actor of a pool, where it creates its live resources (model, cache connection)
lazily and keeps them for the following batches. Each batch is run through ``datasets``' own
``map`` inside the actor, so the rows, columns and types are those ``ds.map(fn, batched=True)`` gives.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .errors import InvalidParameterError, MissingDependencyError

_INDEX = "__synth_datasets_row__"


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise MissingDependencyError("ray_map needs Ray Data, which is not installed: "
                                     "`pip install 'synth-datasets[ray]'` (or `pip install 'ray[data]'`).") from e
    return ray


class _Apply:
    """The actor-pool UDF: one unpickled callable per actor, ``datasets.map`` per batch."""

    def __init__(self, payload: bytes, features: Any, with_indices: bool):
        import datasets
        from ray import cloudpickle

        datasets.disable_progress_bars()
        self.fn, self.features, self.with_indices = cloudpickle.loads(payload), features, with_indices

    def __call__(self, table):
        from datasets import Dataset, DatasetInfo

        kwargs: dict[str, Any] = {}
        fn = self.fn
        if self.with_indices:  # the global row index travels as a column; hand it to fn, then drop it
            rows = table.column(_INDEX).to_pylist()
            table = table.drop_columns([_INDEX])
            kwargs["with_indices"] = True
            fn = (lambda b, local, f=self.fn: f(b, [rows[i] for i in local]))
        block = Dataset(table, info=DatasetInfo(features=self.features))
        out = block.map(fn, batched=True, batch_size=None, keep_in_memory=True, new_fingerprint="ray_map", **kwargs)
        return out.data.table  # its schema metadata carries the output features


def ray_map(ds, fn: Callable, *, batch_size: int = 64, num_actors: int | None = None,
            num_blocks: int | None = None, with_indices: bool = False, progress: bool = True,
            num_cpus: float | None = None):
    """``ds.map(fn, batched=True, batch_size=batch_size)`` on a Ray cluster, same result.

    ``fn`` is any of our map-callables (``TextGenerator``, ``Conditions``, a curate filter's ``mark``
    ...) or any picklable batched function. It runs in a pool of Ray actors (``ActorPoolStrategy``):
    each actor unpickles ``fn`` once, so a model loads once per actor; the LLM response cache is
    SQLite (WAL) and is shared safely by actors on one machine. Rows come back in order, also when
    ``fn`` returns more rows than it got (``n`` samples per row). Blocks are whole batches, so each
    call sees the same batch as under ``ds.map`` (a ``batch_size`` larger than a block share gives
    fewer blocks than asked). Uses the running Ray cluster (``ray.init(...)``), or starts a local one.

    Args:
        ds (`datasets.Dataset`): the input.
        fn (`Callable`): ``fn(batch)`` or, with ``with_indices=True``, ``fn(batch, indices)``.
        batch_size (`int`, defaults to 64): rows per call.
        num_actors (`int`, *optional*): actors in the pool; default: autoscale from 1 to the cluster's CPUs.
        num_blocks (`int`, *optional*): blocks the rows are split into; default: 4 per actor at most.
        with_indices (`bool`, defaults to False): pass the global row indices (seeds match ``ds.map``'s).
        progress (`bool`, defaults to True): Ray Data's progress bars.
        num_cpus (`float`, *optional*): CPUs reserved per actor; default: the cluster's CPUs shared by the
            actors (at most 1 each), so ``num_actors`` above the CPU count still fits instead of waiting
            forever for resources (Ray's "Cluster resources are not enough" warning).

    Returns:
        `datasets.Dataset`: in memory, the rows ``ds.map`` would give, in the same order.

    Raises:
        MissingDependencyError: Ray is not installed (before any work).
        InvalidParameterError: ``fn`` cannot be pickled, or a parameter is out of range.

    Example:
        >>> import ray; ray.init(num_cpus=2, include_dashboard=False)                   # doctest: +SKIP
        >>> from datasets import Dataset
        >>> from synth_datasets import Conditions
        >>> from synth_datasets.distributed import ray_map
        >>> ds = Dataset.from_dict({"id": list(range(100))})
        >>> out = ray_map(ds, Conditions(label=["pos", "neg"], seed=0), batch_size=16)  # doctest: +SKIP
        >>> out.column_names, out.num_rows                                              # doctest: +SKIP
        (['id', 'label'], 100)
    """
    ray = _import_ray()
    import pyarrow as pa
    from datasets import Dataset
    from ray import cloudpickle
    from ray.data import ActorPoolStrategy, DataContext

    if not isinstance(ds, Dataset):
        raise InvalidParameterError(f"ds must be a datasets.Dataset, got {type(ds).__name__}; for a DatasetDict "
                                    "call ray_map on each split.")
    for name, v in (("batch_size", batch_size), ("num_actors", num_actors), ("num_blocks", num_blocks)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise InvalidParameterError(f"{name}={v!r} must be an integer >= 1: fix the parameter.")
    if with_indices and _INDEX in ds.column_names:
        raise InvalidParameterError(f"Column {_INDEX!r} is reserved by ray_map(with_indices=True): rename it.")
    try:
        payload = cloudpickle.dumps(fn)
    except Exception as e:
        raise InvalidParameterError(
            f"fn={fn!r} cannot be pickled ({type(e).__name__}: {e}); Ray sends it to worker processes. Keep "
            "only configuration in its state and create clients, locks and models lazily (contract 2).") from e
    if ds.num_rows == 0:
        return ds.map(fn, batched=True, batch_size=batch_size, with_indices=with_indices)

    table = ds.with_format("arrow")[:]
    if with_indices:
        table = table.append_column(_INDEX, pa.array(range(ds.num_rows), type=pa.int64()))
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    blocks = num_blocks or 4 * (num_actors or cpus)
    per_block = math.ceil(math.ceil(ds.num_rows / blocks) / batch_size) * batch_size  # whole batches
    parts = [table.slice(i, per_block) for i in range(0, ds.num_rows, per_block)]
    pool = ActorPoolStrategy(size=num_actors) if num_actors else ActorPoolStrategy(min_size=1, max_size=cpus)
    if num_cpus is None:
        num_cpus = min(1.0, cpus / (num_actors or cpus))
    elif not isinstance(num_cpus, (int, float)) or isinstance(num_cpus, bool) or not 0 < num_cpus <= cpus:
        raise InvalidParameterError(f"num_cpus={num_cpus!r} must be a number in (0, {cpus}] (the cluster's CPUs).")

    ctx = DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order, ctx.enable_progress_bars = True, progress
    try:
        mapped = ray.data.from_arrow(parts).map_batches(
            _Apply, fn_constructor_kwargs={"payload": payload, "features": ds.features, "with_indices": with_indices},
            batch_size=batch_size, batch_format="pyarrow", zero_copy_batch=True, compute=pool, num_cpus=num_cpus)
        tables = [t for t in ray.get(mapped.to_arrow_refs()) if t.num_columns]
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
    meta = next((t.schema.metadata for t in tables if t.schema.metadata), None)
    result = pa.concat_tables(tables, promote_options="default")
    return Dataset(result.replace_schema_metadata(meta) if meta else result)
