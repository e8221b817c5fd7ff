#!/usr/bin/env python3
"""Run Rust (evcxr) notebooks headless, papermill-style.

    .venv-nb/bin/python scripts/run_notebooks.py [NOTEBOOK ...] [-p NAME VALUE ...] [--smoke]

* no NOTEBOOK: every notebooks/NN_*.ipynb, in order;
* parameters go into the cell tagged `parameters` through a Rust translator: a declared
  `let epochs: usize = 10;` becomes `let epochs: usize = 3;` for `-p epochs 3`. A name that
  none of the notebooks declares, or a value that does not parse as the declared type, stops
  the run before it starts; a notebook gets only the names it declares; strings become Rust
  string literals (Rust escapes), whatever they contain;
* the executed copy (and an HTML rendering) is written to notebooks/executed/ (or --out),
  even when a cell fails, and is marked trusted so JupyterLab shows its HTML outputs;
* a notebook fails on a compile error, a runtime error, a panic (evcxr reports a caught
  panic only on stderr, so stderr is scanned too), a `?` that returned an error early, or a
  cell running past --timeout. evcxr treats an early `?` return as success (it only prints
  the error to stderr), so each code cell gets a marker `println!` after its last statement
  (before a trailing displayed expression); a cell whose marker never prints stopped early.
  The executed copy shows the original source, without markers;
* prints `run  NAME (k/n) ...` as each notebook starts, then its cells' printed output as it
  arrives (`  NAME | line`: epochs, PPO steps, audit stages; --quiet leaves it out), then one
  line per notebook with its time and, on failure, the failing cell and error, then
  `notebooks: N passed, M failed`; exits 1 when any failed.
"""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import sys
import time

import tempfile

import nbformat
import papermill
import papermill.execute
import papermill.translators as translators
from nbclient.exceptions import CellExecutionError
from papermill.clientwrap import PapermillNotebookClient
from papermill.exceptions import PapermillExecutionError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LET_RE = re.compile(r"^\s*let\s+(?:mut\s+)?(\w+)\s*(?::\s*([^=]+?))?\s*=", re.M)
KERNEL = "recrl-rust"
MARKER = "RECRL_CELL_DONE"
MARKER_LINE_RE = re.compile(rf"^{MARKER} \d+\n?", re.M)
# A last statement that ends in `}` and starts like this is an item or a unit-valued loop: the
# marker can follow it. Any other trailing code may be an expression that evcxr displays.
ENDS_AS_STATEMENT_RE = re.compile(
    r"(for|while|loop|fn|pub|impl|struct|enum|mod|trait|use|const|static|type|let|extern)\b|#\[")


class RustTranslator(translators.Translator):
    """papermill has no Rust translator; parameters become typed `let` statements."""

    declared = {}  # name -> type, read from the notebook's parameters cell

    @classmethod
    def translate_none(cls, val):
        return "None"

    @classmethod
    def translate_str(cls, val):
        return rust_str(val)

    @classmethod
    def translate_bool(cls, val):
        return "true" if val else "false"

    @classmethod
    def translate_int(cls, val):
        return str(val)

    @classmethod
    def translate_float(cls, val):
        if math.isnan(val):
            return "f64::NAN"
        if math.isinf(val):
            return "f64::INFINITY" if val > 0 else "f64::NEG_INFINITY"
        s = repr(val)
        return s if any(c in s for c in ".eE") else s + ".0"

    @classmethod
    def translate_list(cls, val):
        return "vec![" + ", ".join(cls.translate(v) for v in val) + "]"

    @classmethod
    def translate_dict(cls, val):
        items = ", ".join(f"({cls.translate(k)}, {cls.translate(v)})" for k, v in val.items())
        return f"std::collections::HashMap::from([{items}])"

    @classmethod
    def comment(cls, cmt_str):
        return f"// {cmt_str}".strip()

    @classmethod
    def assign(cls, name, str_val):
        ty = cls.declared.get(name)
        if ty is None:
            return f"let {name} = {str_val};"
        compact = ty.replace(" ", "")
        if str_val.startswith('"') and compact not in ("&str", "&'staticstr"):
            str_val += ".into()"  # String, PathBuf, ...
        if compact in ("f32", "f64") and re.fullmatch(r"-?\d+", str_val):
            str_val += ".0"  # -p lr 1 for a float parameter
        return f"let {name}: {ty} = {str_val};"

    @classmethod
    def inspect(cls, parameters_cell):
        from papermill.models import Parameter

        return [Parameter(name=m.group(1), inferred_type_name=(m.group(2) or "None").strip(),
                          default=None, help="") for m in LET_RE.finditer(parameters_cell.source)]


# papermill looks a translator up by kernel name, then by language: evcxr writes "Rust".
for key in (KERNEL, "rust", "Rust"):
    translators.papermill_translators.register(key, RustTranslator)

_parameterize = papermill.execute.parameterize_notebook


def _parameterize_typed(nb, parameters, *args, **kwargs):
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            RustTranslator.declared = {m.group(1): m.group(2).strip()
                                       for m in LET_RE.finditer(cell.source) if m.group(2)}
            break
    return _parameterize(nb, parameters, *args, **kwargs)


papermill.execute.parameterize_notebook = _parameterize_typed


def rust_str(text):
    """A Rust string literal of `text` that reads back as exactly `text`: Rust's escapes for
    quotes, backslashes and control characters, `\\u{...}` for everything outside ASCII."""
    named = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}
    out = []
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    return '"' + "".join(out) + '"'


STRING_TYPES = {"String", "&str", "&'staticstr", "PathBuf", "std::path::PathBuf"}
INT_TYPES = {"usize", "isize", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "u128", "i128"}
FLOAT_TYPES = {"f32", "f64"}


class ParameterError(ValueError):
    """A -p NAME VALUE that does not fit the notebook's parameters cell."""


def declared_parameters(nb):
    """The parameters cell's `let NAME: TYPE = ...` declarations, {name: type}, or None when
    the notebook has no cell tagged `parameters`."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return {m.group(1): (m.group(2) or "").strip() for m in LET_RE.finditer(cell.source)}
    return None


def convert(name, raw, ty):
    """The value of `-p name raw` for a parameter declared with Rust type `ty`: strings stay
    strings whatever they look like, numbers and booleans must parse, lists and maps are JSON."""
    compact = ty.replace(" ", "")
    expected = None
    if compact in STRING_TYPES:
        return raw
    if compact == "bool":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        expected = "true or false"
    elif compact in INT_TYPES:
        try:
            value = int(raw)
            if compact.startswith("u") and value < 0:
                expected = "a non-negative integer"
            else:
                return value
        except ValueError:
            expected = "an integer"
    elif compact in FLOAT_TYPES:
        try:
            return float(raw)
        except ValueError:
            expected = "a number"
    elif compact.startswith(("Vec<", "std::collections::HashMap<", "HashMap<")):
        try:
            return json.loads(raw)
        except ValueError:
            expected = "JSON (a list or a map)"
    else:
        return parse_value(raw)
    raise ParameterError(f"-p {name} {raw!r}: `{name}` is declared `{ty}`, so the value must be {expected}")


def typed_parameters(nb_name, declared, raw):
    """The -p values (`raw`, name -> text) a notebook with these declarations takes, typed;
    the names it does not declare are left out (returned second)."""
    typed, skipped = {}, []
    for name, text in raw.items():
        if name not in declared:
            skipped.append(name)
            continue
        typed[name] = convert(name, text, declared[name] or "")
    return typed, skipped


def parse_value(text):
    """A value of an undeclared type: bool, int, float, list/dict as JSON, else a string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def cell_label(nb, index):
    """`code cell k (In [n])`: k counts code cells as in the original notebook (papermill's
    injected parameters cell is skipped), n is the execution count Jupyter shows."""
    k = sum(1 for c in nb.cells[: index + 1] if c.cell_type == "code"
            and "injected-parameters" not in c.metadata.get("tags", []))
    n = nb.cells[index].get("execution_count")
    return f"code cell {k}" + (f" (In [{n}])" if n else "")


def first_failure(nb):
    """(cell label, message) of the first cell with a panic or an error output."""
    for i, cell in enumerate(nb.cells):
        outs = cell.get("outputs", [])
        stderr = "".join(o.get("text", "") for o in outs
                         if o.get("output_type") == "stream" and o.get("name") == "stderr")
        m = re.search(r"panicked at [^\n]*\n([^\n]*)", stderr)
        if m:
            return cell_label(nb, i), f"panic: {m.group(1).strip()}"
        for out in outs:
            if out.get("output_type") == "error":
                return cell_label(nb, i), f"{out.get('ename')}: {first_line(out.get('evalue', ''))}"
    return None


def first_line(text):
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    return text.splitlines()[0] if text else ""


# --- early `?` returns ---------------------------------------------------------------------

def _skip_literal(src, i):
    """End index of the comment, string or char literal starting at i, or None."""
    if src.startswith("//", i):
        end = src.find("\n", i)
        return len(src) if end < 0 else end
    if src.startswith("/*", i):
        depth, j = 0, i
        while j < len(src):
            if src.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif src.startswith("*/", j):
                depth, j = depth - 1, j + 2
                if depth == 0:
                    return j
            else:
                j += 1
        return len(src)
    ident_before = i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")
    raw = re.compile(r'b?r(#*)"').match(src, i)
    if raw and not ident_before:
        end = src.find('"' + raw.group(1), raw.end())
        return len(src) if end < 0 else end + 1 + len(raw.group(1))
    if src[i] == '"' or (src.startswith('b"', i) and not ident_before):
        j = src.index('"', i) + 1
        while j < len(src) and src[j] != '"':
            j += 2 if src[j] == "\\" else 1
        return j + 1
    if src[i] == "'":  # a char literal; a lifetime is left alone
        if src.startswith("\\", i + 1):
            end = src.find("'", i + 3)
            return len(src) if end < 0 else end + 1
        if src[i + 2:i + 3] == "'":
            return i + 3
    return None


def tail_statement(src):
    """(start of the last top-level statement, end of the code): statements end at `;`, at a
    block `}` not continued by `else`, `.`, `?` or an operator, and at evcxr `:command` lines;
    comments and literals are skipped."""
    depth = last = code_end = 0
    i = 0
    while i < len(src):
        c = src[i]
        end = _skip_literal(src, i)
        if end is not None:
            if not src.startswith(("//", "/*"), i):
                code_end = end
            i = end
            continue
        if c == ":" and depth == 0 and src[src.rfind("\n", 0, i) + 1:i].strip() == "":
            end = src.find("\n", i)
            i = last = len(src) if end < 0 else end
            continue
        if not c.isspace():
            code_end = i + 1
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if c == "}" and depth == 0:
                rest = src[i + 1:].lstrip()
                if not re.match(r"(else\b|as\b|[.?)\]},;+\-*/%&|^=<>!])", rest):
                    last = i + 1
        elif c == ";" and depth == 0:
            last = i + 1
        i += 1
    return last, code_end


def add_marker(cell, k):
    """Puts `println!("RECRL_CELL_DONE k")` after the last statement of a code cell and keeps
    the original in the cell's metadata; cells of evcxr commands only are left alone."""
    src = cell.source
    last, code_end = tail_statement(src)
    tail = src[last:code_end].strip()
    if code_end == 0:
        return
    at = len(src) if (not tail or ENDS_AS_STATEMENT_RE.match(tail)) else last
    cell.metadata["recrl_check"] = {"k": k, "source": src, "displays": "?" in tail and at == last}
    cell.source = f'{src[:at]}\nprintln!("{MARKER} {k}");{src[at:]}'


def restore(cell):
    """Undoes add_marker: the original source and no marker lines. Returns the check, if any."""
    check = cell.metadata.pop("recrl_check", None)
    if check is None:
        return None
    cell.source = check["source"]
    for out in list(cell.get("outputs", [])):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            out["text"] = MARKER_LINE_RE.sub("", out["text"])
            if not out["text"]:
                cell.outputs.remove(out)
    return check


def early_return(cell):
    """Why a checked cell stopped early, or None; restores the cell either way."""
    outs = cell.get("outputs", [])
    stdout = "".join(o.get("text", "") for o in outs if o.get("name") == "stdout")
    check = restore(cell)
    if check is None:
        return None
    displayed = any(o.get("output_type") in ("execute_result", "display_data") for o in outs)
    if f"{MARKER} {check['k']}\n" in stdout + "\n" and (displayed or not check["displays"]):
        return None
    stderr = "".join(o.get("text", "") for o in outs if o.get("name") == "stderr").strip()
    said = first_line(stderr.splitlines()[-1]) if stderr else "its error went to stderr"
    return f"a `?` returned an error early: {said}"


_execute_cell = PapermillNotebookClient.execute_cell


def _execute_cell_checked(self, cell, cell_index, *args, **kwargs):
    """papermill's execute_cell, then fail the cell (an error output, execution stops) when
    its marker did not print."""
    cell = _execute_cell(self, cell, cell_index, *args, **kwargs)
    why = early_return(cell)
    if why:
        cell.outputs.append(nbformat.v4.new_output("error", ename="EarlyReturn", evalue=why,
                                                   traceback=[why]))
        raise CellExecutionError(why, "EarlyReturn", why)
    return cell


PapermillNotebookClient.execute_cell = _execute_cell_checked


def with_markers(path, tmp):
    """A copy of the notebook at path, with a marker in every code cell, written under tmp."""
    nb = nbformat.read(path, 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for k, cell in enumerate(code, start=1):
        add_marker(cell, k)
    marked = os.path.join(tmp, os.path.basename(path))
    nbformat.write(nb, marked)
    return marked


class Echo:
    """The cells' printed output as it arrives, one `  NAME | line` per line: the progress of
    a long notebook (epochs, PPO steps, audit stages) on the runner's console."""

    def __init__(self, name):
        self.name, self.pending = name, ""

    def write(self, text):
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if not MARKER_LINE_RE.match(line + "\n"):
                print(f"  {self.name} | {line}", flush=True)

    def flush(self):
        pass


def run_one(path, out_dir, params, timeout, html, echo=True):
    """Runs one notebook with the -p values (`params`, name -> text) it declares; with `echo`,
    the cells' printed output goes to the console as it arrives."""
    name = os.path.splitext(os.path.basename(path))[0]
    out = os.path.join(out_dir, name + ".ipynb")
    nb = nbformat.read(path, 4)
    declared = declared_parameters(nb)
    typed, unknown = typed_parameters(name, declared or {}, params)
    t0 = time.time()
    err = crash = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            papermill.execute_notebook(
                with_markers(path, tmp), out, parameters=typed,
                kernel_name=KERNEL, cwd=os.path.dirname(os.path.abspath(path)),
                execution_timeout=timeout, progress_bar=False, log_output=False,
                stdout_file=Echo(name) if echo else None, stderr_file=Echo(name) if echo else None)
    except PapermillExecutionError as e:
        err = f"In [{e.exec_count}]: {e.ename}: {first_line(e.evalue)}"
    except Exception as e:  # a cell timeout, a dead kernel, ...: the message says which
        err = crash = f"{type(e).__name__}: {first_line(e)}"
    if os.path.exists(out):
        executed = nbformat.read(out, 4)
        for cell in executed.cells:  # a cell that never finished still has its marker
            restore(cell)
        executed.metadata.get("papermill", {})["input_path"] = path
        nbformat.write(executed, out)
        failure = first_failure(executed)
        if failure:  # the executed copy names the cell as a reader sees it
            label, message = failure
            err = f"{label}: {crash or message}"
        if html:
            subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--log-level", "WARN", out],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "nbformat.sign", "--log-level", "WARN", out],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return name, time.time() - t0, err, unknown


def check_parameters(paths, params):
    """Exits with a message before anything runs when a -p name is not declared by any of the
    notebooks, or its value does not fit a declared type."""
    declared = {}
    for path in paths:
        for name, ty in (declared_parameters(nbformat.read(path, 4)) or {}).items():
            declared.setdefault(name, []).append((os.path.basename(path), ty))
    for name, text in params.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            sys.exit(f"run_notebooks: -p {name!r}: no parameters cell of these notebooks declares it "
                     f"(declared: {known})")
        for nb_name, ty in declared[name]:
            try:
                convert(name, text, ty)
            except ParameterError as e:
                sys.exit(f"run_notebooks: {nb_name}: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/NN_*.ipynb)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--smoke", action="store_true", help="inject smoke = true (notebooks shrink their work)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    ap.add_argument("--out", default=os.path.join(ROOT, "notebooks", "executed"), help="executed copies")
    ap.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    ap.add_argument("--quiet", action="store_true", help="no cell output on the console, only a line per notebook")
    ap.add_argument("--timings", help="append {notebook, seconds, ok} JSON lines to this file")
    a = ap.parse_args()

    paths = a.notebooks or sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]_*.ipynb")))
    if not paths:
        sys.exit("run_notebooks: no notebooks found")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        sys.exit(f"run_notebooks: no such notebook: {', '.join(missing)}")
    params = dict(a.parameter)
    if a.smoke:
        params["smoke"] = "true"
    check_parameters(paths, params)
    os.makedirs(a.out, exist_ok=True)
    passed, failed = 0, 0
    for k, path in enumerate(paths):
        print(f"run  {os.path.basename(path)} ({k + 1}/{len(paths)}) ...", flush=True)
        name, secs, err, unknown = run_one(path, a.out, params, a.timeout, not a.no_html, not a.quiet)
        if unknown:
            print(f"note: {name} does not declare {', '.join(unknown)}; not given to it")
        print(f"{'FAIL' if err else 'ok  '} {name} ({secs:.1f}s){' - ' + err if err else ''}", flush=True)
        if a.timings:
            with open(a.timings, "a") as f:
                f.write(json.dumps({"notebook": name, "seconds": round(secs, 1), "ok": err is None}) + "\n")
        passed, failed = passed + (err is None), failed + (err is not None)
    print(f"executed copies in {os.path.relpath(a.out)}")
    print(f"notebooks: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
