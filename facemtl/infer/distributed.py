"""``facemtl predict --dask ADDRESS``: the same per-image job on a Dask cluster.

Each Dask worker process keeps one analyzer (one onnxruntime session) for the whole job
(:func:`facemtl.infer.batch.worker_analyzer`); records come back in input order. The images
must be readable at the same paths on the workers (a shared file system), and the annotated
images are written there. Needs ``pip install 'facemtl[distributed]'``.
"""

from __future__ import annotations

from typing import Any, Iterator

from facemtl.infer.batch import Task, analyse_task

# Tasks in flight per worker thread: enough to keep workers busy, few enough to stream results.
IN_FLIGHT = 4


def analyse_on_dask(tasks: list[Task], address: str, settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Records of ``tasks`` computed on the cluster at ``address`` (``local[:N]``: a local
    cluster of N single-threaded worker processes, default 2), each worker with
    ``FaceAnalyzer(**settings)``, in input order."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if address == "local" or address.startswith("local:"):
        n = int(address.split(":", 1)[1]) if ":" in address else 2
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        address = cluster.scheduler_address
    try:
        with Client(address) as client:
            limit = IN_FLIGHT * max(sum(client.nthreads().values()), 1)
            futures = []
            for task in tasks:
                futures.append(client.submit(analyse_task, task, settings, pure=False))
                if len(futures) >= limit:
                    yield futures.pop(0).result()
            for future in futures:
                yield future.result()
    finally:
        if cluster is not None:
            cluster.close()
