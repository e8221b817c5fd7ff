"""Tiny helper for writing the project's notebooks from Python lists of cells (maintainers).

    from nbgen import md, code, params, write
    write("notebooks/00_environment.ipynb", [md("# ..."), code(":dep ..."), params("let smoke: bool = false;")])
"""
import json

DEP = ':dep recrl-lib = { path = "../recrl-lib" }'


def _lines(text):
    text = text.strip("\n")
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + [parts[-1]]


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": _lines(text)}


def code(text, tags=()):
    meta = {"tags": list(tags)} if tags else {}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": _lines(text)}


def params(text):
    return code(text, tags=["parameters"])


def write(path, cells):
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Rust (recrl)", "language": "rust", "name": "recrl-rust"},
            "language_info": {"codemirror_mode": "rust", "file_extension": ".rs",
                              "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for i, c in enumerate(cells):
        c["id"] = f"c{i:02d}"
    with open(path, "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
