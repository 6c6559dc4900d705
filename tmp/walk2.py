import sys
sys.path.insert(0, "/work/wt-measure/tests")
from conftest import prefault_point
from iommubench.runner import run_point
for w in (1, 2):
    for reg in (128, 512):
        pt = prefault_point(cycles=0, warmup_s=0.1, duration_s_requested=0.5, workers=w, walkers=2, walker_safety="exclusive", unmap_pages=512, region_mib=reg, chunk_pages=32768, driver="lockfree")
        r = run_point(pt, 8)
        print(w, reg, r.status, r.error, r.measures.get("ops"), r.measures.get("walker_passes"), flush=True)
