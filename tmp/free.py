import sys
sys.path.insert(0, "/work/wt-measure/tests")
from conftest import prefault_point
from iommubench.runner import run_point
for safety in ("unsafe", "group-mutex", "exclusive"):
  for w in (0,1):
    pt = prefault_point(cycles=0, warmup_s=0.0, duration_s_requested=0.3, workers=1, walkers=w, walker_safety=safety, unmap_pages=512, region_mib=128, chunk_pages=32768)
    r = run_point(pt, 30); m = r.measures
    print(safety, w, r.status, m.get("ops"), m.get("tables_freed"), m.get("walker_passes"), m.get("walker_uaf_reads"), m.get("maps"), m.get("unmaps"), flush=True)
