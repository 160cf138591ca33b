"""Checks on rendered Kubernetes manifests that schemas cannot express.

Every evently pod must outlast its preStop pause plus evently's own shutdown grace before it is
killed, probe liveness on /health/live and readiness on /health/ready, carry resource requests and
a memory limit, and run as non-root.
"""
import sys

import yaml

DEFAULT_SHUTDOWN_GRACE = 30

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
config = {}
for d in docs:
    if d["kind"] == "ConfigMap":
        config.update(d.get("data", {}))
grace = int(config.get("EVENTLY_SERVER__SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE))
failures = []
pods = 0
for d in docs:
    if d["kind"] not in ("Deployment", "StatefulSet"):
        continue
    pods += 1
    name = d["metadata"]["name"]
    spec = d["spec"]["template"]["spec"]
    c = spec["containers"][0]
    pause = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    if spec.get("terminationGracePeriodSeconds", 30) <= pause + grace:
        failures.append(f"{name}: terminationGracePeriodSeconds must exceed {pause} + {grace}")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health/live":
        failures.append(f"{name}: liveness must probe /health/live")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/health/ready":
        failures.append(f"{name}: readiness must probe /health/ready")
    if "startupProbe" not in c:
        failures.append(f"{name}: no startup probe")
    res = c.get("resources", {})
    if not res.get("requests") or "memory" not in res.get("limits", {}):
        failures.append(f"{name}: resource requests and a memory limit are required")
    if not spec.get("securityContext", {}).get("runAsNonRoot"):
        failures.append(f"{name}: must run as non-root")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"  {pods} pod templates: grace > preStop + {grace} s, probes, resources, non-root")
