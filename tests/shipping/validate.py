#!/usr/bin/env python3
"""Validates what users paste from task-definition/: the ECS task definitions, the CloudFormation
service template and the Kubernetes example.

Each artefact is checked first by the tool its platform uses (botocore's parameter validator on
ECS's RegisterTaskDefinition input shape, cfn-lint, kubernetes-validate against the Kubernetes
schemas), then by the rules vigil's own setup needs (pidMode, restart policy, health check
ranges, the health-check port, settings accepted by `vigil check`, ...).

usage: validate.py [--vigil PATH] FILE...     (exit 1 naming every problem)
"""
import json
import os
import re
import subprocess
import sys

VIGIL_PORT = 9797
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
KUBERNETES_VERSION = "1.31.0"

# Fargate's CPU units and the memory (MiB) each allows.
FARGATE_SIZES = {
    "256": [512, 1024, 2048],
    "512": list(range(1024, 4097, 1024)),
    "1024": list(range(2048, 8193, 1024)),
    "2048": list(range(4096, 16385, 1024)),
    "4096": list(range(8192, 30721, 1024)),
    "8192": list(range(16384, 61441, 4096)),
    "16384": list(range(32768, 122881, 8192)),
}


def ranged(errors, where, value, low, high):
    if value is not None and not (low <= value <= high):
        errors.append(f"{where} = {value}: must be {low} to {high}")


# --- ECS task definitions -------------------------------------------------------------------


def botocore_errors(definition):
    """The errors botocore itself raises before sending RegisterTaskDefinition."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(definition, shape)
    return [line.strip() for line in report.generate_report().splitlines() if line.strip()] if report.has_errors() else []


def vigil_check(vigil, environment):
    """Runs `vigil check` with exactly the container's environment; returns its complaint."""
    env = {item["name"]: item["value"] for item in environment}
    result = subprocess.run([vigil, "check"], env=env, capture_output=True, text=True, timeout=30)
    return None if result.returncode == 0 else (result.stderr.strip() or f"exit {result.returncode}")


def task_definition_errors(definition, vigil=None):
    errors = [f"botocore: {e}" for e in botocore_errors(definition)]
    if errors:
        return errors  # the shape is wrong; the checks below would only repeat it
    containers = definition["containerDefinitions"]
    if any(not c.get("name") for c in containers):
        return errors + ["every container needs a name (ECS refuses it without one)"]
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        errors.append(f"container names repeat: {names}")
    compat = definition.get("requiresCompatibilities", [])
    for value in compat:
        if value not in ("FARGATE", "EC2", "EXTERNAL", "MANAGED_INSTANCES"):
            errors.append(f"requiresCompatibilities: unknown {value!r}")
    if definition.get("networkMode") not in (None, "awsvpc", "bridge", "host", "none"):
        errors.append(f"networkMode: unknown {definition['networkMode']!r}")
    if definition.get("pidMode") != "task":
        errors.append('pidMode must be "task": vigil watches the app\'s processes through /proc')
    if "FARGATE" in compat:
        if definition.get("networkMode") != "awsvpc":
            errors.append("Fargate needs networkMode awsvpc")
        cpu, memory = definition.get("cpu"), definition.get("memory")
        if cpu not in FARGATE_SIZES or not str(memory).isdigit() or int(memory) not in FARGATE_SIZES[cpu]:
            errors.append(f"cpu {cpu} with memory {memory} is not a Fargate size")
    task_memory = int(definition["memory"]) if str(definition.get("memory", "")).isdigit() else None
    for container in containers:
        limit = container.get("memory")
        if task_memory is None and limit is None and container.get("memoryReservation") is None:
            errors.append(f"{container['name']}: no memory, memoryReservation or task memory")
    if task_memory is not None:
        reserved = sum(c.get("memoryReservation") or c.get("memory") or 0 for c in containers)
        if reserved > task_memory:
            errors.append(f"containers reserve {reserved} MiB, more than the task's {task_memory}")

    vigils = [c for c in containers if c["name"] == "vigil"]
    if len(vigils) != 1:
        return errors + [f"exactly one container named vigil expected, found {len(vigils)}"]
    v = vigils[0]
    if v.get("essential") is not False:
        errors.append("vigil: essential must be false (the task keeps serving if vigil stops)")
    policy = v.get("restartPolicy") or {}
    if policy.get("enabled") is not True:
        errors.append("vigil: restartPolicy.enabled must be true (the target group checks vigil's port)")
    ranged(errors, "vigil: restartPolicy.restartAttemptPeriod", policy.get("restartAttemptPeriod"), 60, 1800)
    if len(policy.get("ignoredExitCodes") or []) > 50:
        errors.append("vigil: restartPolicy.ignoredExitCodes holds at most 50 codes")
    check = v.get("healthCheck") or {}
    if check.get("command") != ["CMD", "/vigil", "probe"]:
        errors.append(f'vigil: healthCheck.command must be ["CMD", "/vigil", "probe"], not {check.get("command")}')
    ranged(errors, "vigil: healthCheck.interval", check.get("interval"), 5, 300)
    ranged(errors, "vigil: healthCheck.timeout", check.get("timeout"), 2, 60)
    ranged(errors, "vigil: healthCheck.retries", check.get("retries"), 1, 10)
    ranged(errors, "vigil: healthCheck.startPeriod", check.get("startPeriod"), 0, 300)
    if not any(p.get("containerPort") == VIGIL_PORT for p in v.get("portMappings", [])):
        errors.append(f"vigil: no portMapping for {VIGIL_PORT}, the load balancer's health check port")
    if v.get("readonlyRootFilesystem") is not True:
        errors.append("vigil: readonlyRootFilesystem must be true (vigil writes nothing)")
    user = str(v.get("user", ""))
    if user.split(":")[0] in ("", "0", "root"):
        errors.append(f"vigil: user must be a non-root user (the app's, to read its /proc/<pid>/fd), not {user!r}")
    if not DIGEST.search(v.get("image", "")):
        errors.append(f"vigil: image must be pinned by digest (...@sha256:<64 hex>), not {v.get('image')!r}")
    environment = v.get("environment", [])
    if any(item["name"] == "ECS_CONTAINER_METADATA_URI_V4" for item in environment):
        errors.append("vigil: ECS_CONTAINER_METADATA_URI_V4 is set by ECS, not by the task definition")
    if vigil is not None:
        complaint = vigil_check(vigil, environment)
        if complaint:
            errors.append(f"vigil check: {complaint}")
    for container in containers:
        if container is v or not container.get("essential", True):
            continue
        waits = [d for d in container.get("dependsOn", []) if d.get("containerName") == "vigil"]
        if not waits or waits[0].get("condition") not in ("START", "HEALTHY"):
            errors.append(f"{container['name']}: dependsOn vigil (START or HEALTHY) missing")
    return errors


# --- CloudFormation ---------------------------------------------------------------------------


def cfn_lint_errors(path):
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", "--format", "parseable", path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode == 0:
        return []
    lines = (result.stdout + result.stderr).strip().splitlines()
    return [f"cfn-lint: {line}" for line in lines] or [f"cfn-lint: exit {result.returncode}"]


def template_errors(path, task_definitions=()):
    errors = cfn_lint_errors(path)
    if errors:
        return errors
    from cfnlint.decode import decode

    template, matches = decode(path)
    if matches:
        return [f"cfn-lint decode: {m}" for m in matches]
    resources = template.get("Resources", {})
    groups = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"]
    services = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ECS::Service"]
    if len(groups) != 1 or len(services) != 1:
        return [f"one target group and one service expected, found {len(groups)} and {len(services)}"]
    group, service = groups[0], services[0]
    if str(group.get("HealthCheckPort")) != str(VIGIL_PORT) or group.get("HealthCheckPath") != "/health":
        errors.append(f"target group: health check must go to vigil, port {VIGIL_PORT} path /health")
    interval = group.get("HealthCheckIntervalSeconds", 30)
    unhealthy = group.get("UnhealthyThresholdCount", 2)
    timeout = group.get("HealthCheckTimeoutSeconds", 5)
    if timeout >= interval:
        errors.append(f"target group: timeout {timeout} s must be below the interval {interval} s")
    attributes = {a["Key"]: a["Value"] for a in group.get("TargetGroupAttributes", [])}
    delay = int(attributes.get("deregistration_delay.timeout_seconds", 300))
    # The worst case from a red /health to no new requests: the unhealthy checks plus one interval
    # of phase. vigil must keep answering red that long after a stop signal.
    detection = interval * (unhealthy + 1)
    if service.get("HealthCheckGracePeriodSeconds", 0) <= 0:
        errors.append("service: HealthCheckGracePeriodSeconds must cover the app's start")
    deployment = service.get("DeploymentConfiguration", {})
    if deployment.get("MinimumHealthyPercent", 100) < 100 or deployment.get("MaximumPercent", 200) < 200:
        errors.append("service: replace before stopping (MinimumHealthyPercent 100, MaximumPercent 200)")
    for definition in task_definitions:
        containers = {c["name"]: c for c in definition["containerDefinitions"]}
        for lb in service.get("LoadBalancers", []):
            target = containers.get(lb.get("ContainerName"))
            if target is None or not any(p.get("containerPort") == lb.get("ContainerPort") for p in target.get("portMappings", [])):
                errors.append(f"service: load balancer target {lb.get('ContainerName')}:{lb.get('ContainerPort')} is not in {definition['family']}")
        vigil = containers.get("vigil", {})
        env = {e["name"]: e["value"] for e in vigil.get("environment", [])}
        drain = int(env.get("VIGIL_DRAIN_SECONDS", "25"))
        if drain < detection:
            errors.append(
                f"{definition['family']}: VIGIL_DRAIN_SECONDS {drain} is below the target group's detection "
                f"time {detection} s (interval {interval} x ({unhealthy} + 1))"
            )
        stop = vigil.get("stopTimeout", 30)
        if drain >= stop:
            errors.append(
                f"{definition['family']}: VIGIL_DRAIN_SECONDS {drain} must stay below vigil's stopTimeout {stop}, "
                "or ECS kills vigil mid-drain"
            )
        horizon = env.get("VIGIL_DRAIN_HORIZON", "180s")
        seconds = int(horizon[:-1]) * (60 if horizon.endswith("m") else 1) if re.fullmatch(r"\d+[sm]", horizon) else None
        if seconds is not None and seconds < 2 * (detection + delay):
            errors.append(
                f"{definition['family']}: VIGIL_DRAIN_HORIZON {horizon} is less than twice the detection time plus "
                f"the deregistration delay ({detection} + {delay} s)"
            )
    return errors


# --- Kubernetes -------------------------------------------------------------------------------


def kubernetes_errors(path):
    import kubernetes_validate
    import yaml

    errors = []
    with open(path) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"kubernetes-validate {document.get('kind')}: {error.message} at {'/'.join(map(str, error.path))}")
        except Exception as error:  # an unknown kind or version: say it, do not pass it
            errors.append(f"kubernetes-validate {document.get('kind')}: {error}")
    if errors:
        return errors
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    if len(deployments) != 1:
        return [f"one Deployment expected, found {len(deployments)}"]
    pod = deployments[0]["spec"]["template"]["spec"]
    if pod.get("shareProcessNamespace") is not True:
        errors.append("pod: shareProcessNamespace must be true: vigil watches the app's processes")
    sidecars = [c for c in pod.get("initContainers", []) if c["name"] == "vigil"]
    if len(sidecars) != 1 or sidecars[0].get("restartPolicy") != "Always":
        errors.append("pod: vigil must be a native sidecar (initContainers, restartPolicy Always)")
    else:
        v = sidecars[0]
        security = v.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True or security.get("runAsNonRoot") is not True:
            errors.append("vigil: securityContext needs readOnlyRootFilesystem and runAsNonRoot")
        if not any(p.get("containerPort") == VIGIL_PORT for p in v.get("ports", [])):
            errors.append(f"vigil: no containerPort {VIGIL_PORT}")
    apps = pod.get("containers", [])
    for app in apps:
        probe = (app.get("readinessProbe") or {}).get("httpGet") or {}
        if probe.get("path") != "/health" or probe.get("port") not in (VIGIL_PORT, "vigil-health"):
            errors.append(f"{app['name']}: readinessProbe must GET vigil's /health on {VIGIL_PORT}")
        live = (app.get("livenessProbe") or {}).get("httpGet") or {}
        if live.get("port") in (VIGIL_PORT, "vigil-health"):
            errors.append(f"{app['name']}: livenessProbe must not point at vigil: a drain would restart the app")
    return errors


# --- command line -----------------------------------------------------------------------------


def errors_of(path, vigil=None, task_definitions=()):
    name = os.path.basename(path)
    if name.endswith(".json"):
        with open(path) as f:
            return task_definition_errors(json.load(f), vigil)
    if name.startswith("service") and name.endswith((".yaml", ".yml")):
        return template_errors(path, task_definitions)
    if name.endswith((".yaml", ".yml")):
        return kubernetes_errors(path)
    return [f"{path}: not a task definition (.json), service template (service*.yaml) or Kubernetes YAML"]


def main(argv):
    vigil = None
    if len(argv) >= 2 and argv[0] == "--vigil":
        vigil, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 64
    definitions = []
    for path in argv:
        if path.endswith(".json"):
            with open(path) as f:
                definitions.append(json.load(f))
    failed = False
    for path in argv:
        errors = errors_of(path, vigil, definitions)
        for error in errors:
            print(f"{path}: {error}", file=sys.stderr)
        failed |= bool(errors)
        if not errors:
            print(f"{path}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
