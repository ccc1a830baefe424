"""The shipped artefacts pass their validators, and deliberately broken copies fail them loudly.

Run: VIGIL_BIN=target/debug/vigil python3 -m unittest discover -s tests/shipping -v
(needs `pip install -r tests/shipping/requirements.txt`).
"""
import copy
import json
import os
import tempfile
import unittest

import yaml

import validate

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SHIPPED = os.path.join(ROOT, "task-definition")
VIGIL = os.environ.get("VIGIL_BIN") or os.path.join(ROOT, "target", "debug", "vigil")


def load(name):
    with open(os.path.join(SHIPPED, name)) as f:
        return json.load(f)


def container(definition, name):
    return next(c for c in definition["containerDefinitions"] if c["name"] == name)


class TaskDefinitions(unittest.TestCase):
    def setUp(self):
        self.assertTrue(os.access(VIGIL, os.X_OK), f"no vigil binary at {VIGIL}: set VIGIL_BIN")

    def test_the_shipped_task_definitions_pass(self):
        for name in ("fargate-task.json", "ec2-task.json"):
            with self.subTest(name):
                self.assertEqual(validate.task_definition_errors(load(name), VIGIL), [])

    def broken(self, change, expected):
        definition = copy.deepcopy(load("fargate-task.json"))
        change(definition)
        errors = validate.task_definition_errors(definition, VIGIL)
        self.assertTrue(any(expected in e for e in errors), f"{expected!r} not in {errors}")

    def test_botocore_rejects_an_unknown_field(self):
        self.broken(lambda d: container(d, "vigil").update(essentail=False), 'Unknown parameter in containerDefinitions[1]: "essentail"')

    def test_botocore_rejects_a_wrong_type(self):
        self.broken(lambda d: container(d, "vigil").update(cpu="16"), "Invalid type for parameter containerDefinitions[1].cpu")

    def test_botocore_rejects_a_missing_required_field(self):
        self.broken(lambda d: d.pop("family"), 'Missing required parameter in input: "family"')

    def test_a_container_without_a_name_fails(self):
        self.broken(lambda d: container(d, "app").pop("name"), "every container needs a name")

    def test_an_essential_vigil_fails(self):
        self.broken(lambda d: container(d, "vigil").update(essential=True), "essential must be false")

    def test_a_restart_period_below_ecs_minimum_fails(self):
        self.broken(lambda d: container(d, "vigil")["restartPolicy"].update(restartAttemptPeriod=30), "restartAttemptPeriod = 30")

    def test_no_restart_policy_fails(self):
        self.broken(lambda d: container(d, "vigil").pop("restartPolicy"), "restartPolicy.enabled must be true")

    def test_a_root_user_fails(self):
        self.broken(lambda d: container(d, "vigil").update(user="0"), "non-root user")

    def test_an_image_by_tag_fails(self):
        self.broken(lambda d: container(d, "vigil").update(image="vigil:latest"), "pinned by digest")

    def test_no_shared_pid_namespace_fails(self):
        self.broken(lambda d: d.pop("pidMode"), 'pidMode must be "task"')

    def test_a_misspelt_setting_fails_vigil_check(self):
        env = lambda d: container(d, "vigil")["environment"].append({"name": "VIGIL_DRAIN_HORIZEN", "value": "3m"})
        self.broken(env, "not a vigil setting: VIGIL_DRAIN_HORIZEN")

    def test_an_invalid_setting_fails_vigil_check(self):
        env = lambda d: container(d, "vigil")["environment"].append({"name": "VIGIL_INTERVAL", "value": "fast"})
        self.broken(env, 'invalid VIGIL_INTERVAL="fast"')

    def test_a_health_check_out_of_ecs_ranges_fails(self):
        self.broken(lambda d: container(d, "vigil")["healthCheck"].update(interval=2), "healthCheck.interval = 2")

    def test_a_fargate_size_that_does_not_exist_fails(self):
        self.broken(lambda d: d.update(memory="3000"), "is not a Fargate size")


class ServiceTemplate(unittest.TestCase):
    def check(self, change=None):
        with open(os.path.join(SHIPPED, "service.yaml")) as f:
            text = f.read()
        if change:
            changed = change(text)
            self.assertNotEqual(changed, text, "the change did not apply")
            text = changed
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "service.yaml")
            with open(path, "w") as f:
                f.write(text)
            return validate.template_errors(path, [load("fargate-task.json"), load("ec2-task.json")])

    def test_the_shipped_template_passes(self):
        self.assertEqual(self.check(), [])

    def test_cfn_lint_rejects_a_misspelt_property(self):
        errors = self.check(lambda t: t.replace("HealthCheckPath:", "HealthCheckPth:"))
        self.assertTrue(any(e.startswith("cfn-lint:") and "HealthCheckPth" in e for e in errors), errors)

    def test_cfn_lint_rejects_a_value_out_of_range(self):
        errors = self.check(lambda t: t.replace("HealthCheckIntervalSeconds: 5", "HealthCheckIntervalSeconds: 1"))
        self.assertTrue(any(e.startswith("cfn-lint:") for e in errors), errors)

    def test_a_health_check_on_the_app_port_fails(self):
        errors = self.check(lambda t: t.replace('HealthCheckPort: "9797"', 'HealthCheckPort: "8080"'))
        self.assertTrue(any("health check must go to vigil" in e for e in errors), errors)

    def test_stopping_before_replacing_fails(self):
        errors = self.check(lambda t: t.replace("MinimumHealthyPercent: 100", "MinimumHealthyPercent: 50"))
        self.assertTrue(any("replace before stopping" in e for e in errors), errors)

    def test_slow_checks_outlast_vigils_drain(self):
        errors = self.check(lambda t: t.replace("HealthCheckIntervalSeconds: 5", "HealthCheckIntervalSeconds: 30"))
        self.assertTrue(any("VIGIL_DRAIN_SECONDS 25 is below" in e for e in errors), errors)


class Kubernetes(unittest.TestCase):
    PATH = os.path.join(SHIPPED, "kubernetes", "deployment.yaml")

    def check(self, change=None):
        with open(self.PATH) as f:
            documents = list(yaml.safe_load_all(f))
        if change:
            change(documents[0]["spec"]["template"]["spec"])
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "deployment.yaml")
            with open(path, "w") as f:
                yaml.safe_dump_all(documents, f)
            return validate.kubernetes_errors(path)

    def test_the_shipped_example_passes(self):
        self.assertEqual(self.check(), [])

    def test_the_schema_rejects_a_misspelt_field(self):
        errors = self.check(lambda pod: pod["containers"][0].update(readinesProbe=pod["containers"][0]["readinessProbe"]))
        self.assertTrue(any(e.startswith("kubernetes-validate") and "readinesProbe" in e for e in errors), errors)

    def test_the_schema_rejects_a_wrong_type(self):
        errors = self.check(lambda pod: pod.update(shareProcessNamespace="yes"))
        self.assertTrue(any(e.startswith("kubernetes-validate") for e in errors), errors)

    def test_readiness_on_the_app_port_fails(self):
        errors = self.check(lambda pod: pod["containers"][0]["readinessProbe"]["httpGet"].update(port=8080))
        self.assertTrue(any("readinessProbe must GET vigil's /health" in e for e in errors), errors)

    def test_liveness_on_vigil_fails(self):
        errors = self.check(lambda pod: pod["containers"][0]["livenessProbe"]["httpGet"].update(port=9797))
        self.assertTrue(any("livenessProbe must not point at vigil" in e for e in errors), errors)

    def test_a_separate_pid_namespace_fails(self):
        errors = self.check(lambda pod: pod.pop("shareProcessNamespace"))
        self.assertTrue(any("shareProcessNamespace must be true" in e for e in errors), errors)


if __name__ == "__main__":
    unittest.main()
