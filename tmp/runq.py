import statistics, sys, time
from iommubench import runner
mode = sys.argv[1]
if mode == "poll":
    runner._Workers.wait_any_exit = lambda self, t: time.sleep(0.0005)
res = {}
for wl in ("prefault", "dma"):
    for w in (1, 2):
        vals = []
        for rep in range(5):
            pt = dict(workload=wl, driver="lockfree", workers=w, warmup_s=0.1, duration_s_requested=0.5)
            if wl == "prefault":
                pt.update(region_mib=64, chunk_pages=512)
            else:
                pt.update(allocator="rcache", invalidation="lazy", queues_per_worker=1, queue_depth=64, granule_pages=[1], dma_ns=0, inv_ns=0, completion="local", depot="list", dma_bits=48)
            r = runner.run_point(pt, 60)
            if r.status != "ok":
                print(r.error); continue
            vals.append(r.measures["runq_wait_share"])
        print(mode, wl, w, "runq %:", " ".join(f"{v*100:.2f}" for v in vals), flush=True)
