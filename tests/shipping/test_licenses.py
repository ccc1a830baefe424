"""The dependency check of `.ci/licenses.py` passes on this workspace and fails on bad input."""
import importlib.util
import os
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("licenses", os.path.join(HERE, "..", "..", ".ci", "licenses.py"))
licenses = importlib.util.module_from_spec(spec)
spec.loader.exec_module(licenses)

REGISTRY = "registry+index-a"


def metadata(*packages):
    own = {"id": "own", "name": "own", "version": "1.0.0", "license": "Apache-2.0", "source": None}
    return {"workspace_members": ["own"], "packages": [own, *packages]}


def crate(name, license, source=REGISTRY):
    return {"id": name, "name": name, "version": "1.0.0", "license": license, "source": source}


class Licences(unittest.TestCase):
    def test_expressions(self):
        rows = [
            ("MIT OR Apache-2.0", True),
            ("MIT/Apache-2.0", True),
            ("(MIT OR Apache-2.0) AND Unicode-3.0", True),
            ("Apache-2.0 WITH LLVM-exception OR GPL-3.0", True),
            ("GPL-3.0", False),
            ("MIT AND GPL-3.0", False),
            ("GPL-2.0 OR LGPL-2.1", False),
        ]
        for expression, allowed in rows:
            self.assertEqual(licenses.satisfiable(expression), allowed, expression)

    def test_a_clean_tree_passes(self):
        self.assertEqual(licenses.problems(metadata(crate("a", "MIT"), crate("b", "Zlib"))), [])

    def test_bad_trees_fail(self):
        rows = [
            (crate("gpl", "GPL-3.0"), "not allowed"),
            (crate("none", None), "no SPDX licence"),
            (crate("fork", "MIT", "git+ssh://example/fork#abc"), "from git"),
            (crate("openssl", "Apache-2.0"), "banned"),
            (crate("other", "MIT", "registry+index-b"), "2 registries"),
        ]
        for package, expected in rows:
            found = licenses.problems(metadata(crate("a", "MIT"), package))
            self.assertTrue(any(expected in p for p in found), f"{package['name']}: {found}")

    def test_this_workspace_passes(self):
        self.assertEqual(licenses.main([]), 0)


if __name__ == "__main__":
    unittest.main()
