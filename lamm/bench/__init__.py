"""Benchmarks: how fast each part of the platform is, one module per benchmark (`lamm bench ...`).

- `model`, `model_worker`: training and inference throughput and memory of our models, with
  schnetpack's PaiNN side by side (the worker is the peers' shim: it runs one case per process);
- `store_reads`: store reads/s against fairchem's pickled-Data LMDB (`lamm bench data`);
- `batching`: stores -> Batch objects per second with DataLoader workers (`lamm bench batching`);
- `balance`: the load-balance simulation of the samplers (`lamm bench balance`);
- `throughput`, `throughput_stats`, `throughput_figures`: real DDP steps per sampler, their
  statistics, the fitted cost model and Fig. 6 (`lamm bench throughput`).

Nothing the pipeline trains with imports this package: `import lamm.data, lamm.models,
lamm.training` loads no benchmark code (a test checks it).
"""
