#!/usr/bin/env python3
"""Unit tests of the notebook runner's parameter handling (scripts/run_notebooks.py).

    .venv-nb/bin/python scripts/test_run_notebooks.py        (run by tests/notebooks.rs)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_notebooks as rn  # noqa: E402


class RustStrings(unittest.TestCase):
    def test_hand_written_literals(self):
        for text, literal in [
            ("plain", '"plain"'),
            ('say "hi"', '"say \\"hi\\""'),
            ("back\\slash", '"back\\\\slash"'),
            ("two\nlines\r\t", '"two\\nlines\\r\\t"'),
            ("nul\0", '"nul\\0"'),
            ("\x07bell", '"\\u{7}bell"'),
            ("é", '"\\u{e9}"'),
            ("🎉", '"\\u{1f389}"'),
            ("{braces} [x]", '"{braces} [x]"'),
        ]:
            self.assertEqual(rn.rust_str(text), literal)

    def test_no_json_escapes(self):
        # json.dumps wrote \\u00e9 and \\ud83c\\udf89, which Rust does not accept
        lit = rn.rust_str("é🎉")
        self.assertNotIn("\\u00", lit)
        self.assertNotIn("\\ud8", lit)


class Conversion(unittest.TestCase):
    def test_values_follow_the_declared_type(self):
        self.assertEqual(rn.convert("a", "[1, 2]", "String"), "[1, 2]")
        self.assertEqual(rn.convert("a", "{x}", "String"), "{x}")
        self.assertEqual(rn.convert("a", "5", "String"), "5")
        self.assertEqual(rn.convert("a", "true", "String"), "true")
        self.assertEqual(rn.convert("n", "7", "usize"), 7)
        self.assertEqual(rn.convert("lr", "2", "f64"), 2.0)
        self.assertIs(rn.convert("f", "TRUE", "bool"), True)
        self.assertEqual(rn.convert("v", "[1, 2]", "Vec<usize>"), [1, 2])

    def test_values_that_do_not_fit_are_errors(self):
        for name, raw, ty, says in [
            ("n", "abc", "usize", "an integer"),
            ("n", "-1", "usize", "non-negative"),
            ("n", "1.5", "usize", "an integer"),
            ("lr", "fast", "f64", "a number"),
            ("flag", "yes", "bool", "true or false"),
            ("v", "[1,", "Vec<usize>", "JSON"),
        ]:
            with self.assertRaises(rn.ParameterError) as e:
                rn.convert(name, raw, ty)
            self.assertIn(says, str(e.exception))
            self.assertIn(f"declared `{ty}`", str(e.exception))

    def test_only_declared_names_reach_a_notebook(self):
        declared = {"n": "usize", "name": "String"}
        typed, skipped = rn.typed_parameters("nb", declared, {"n": "3", "other": "x"})
        self.assertEqual(typed, {"n": 3})
        self.assertEqual(skipped, ["other"])


class Names(unittest.TestCase):
    def test_an_undeclared_name_stops_the_run_before_anything_runs(self):
        nb = os.path.join(rn.ROOT, "recrl-lib/tests/fixtures/notebooks/params.ipynb")
        with self.assertRaises(SystemExit) as e:
            rn.check_parameters([nb], {"let x = 1; std::process::exit(5); let y": "2"})
        self.assertIn("no parameters cell of these notebooks declares it", str(e.exception.code))
        self.assertIn("declared: flag, lr, n, name", str(e.exception.code))
        with self.assertRaises(SystemExit) as e:
            rn.check_parameters([nb], {"n": "seven"})
        self.assertIn("params.ipynb: -p n 'seven'", str(e.exception.code))
        rn.check_parameters([nb], {"n": "7", "name": "x"})  # fine


if __name__ == "__main__":
    unittest.main()
