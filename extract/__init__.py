"""``poolserve extract``: batch inference over a whole dataset into Parquet shards.

Data flows one way: a dataset listing (``dataset``) -> shards of items (``shards``) -> per batch, decode,
box checks and preprocessing (``prepare``) -> the service's batch handlers (``infer``) -> rows
(``rows``) -> an atomically written shard. The engines (``local``, ``ray_engine``, ``http_engine``) only
decide where those steps run.
"""
